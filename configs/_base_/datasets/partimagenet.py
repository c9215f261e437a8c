# PartImageNet_OOD val (2,957 images, COCO-format part polygons) for object / part
# segmentation from the CAST hierarchy. Layout:
#   data/PartImageNet/annotations/val.json
#   data/PartImageNet/images/val/<file_name of the json>
# Image and part map: short side resized to 224 (the map with nearest), centre crop 224; SEEDS
# with the MoCo preset (196 superpixels, 15 bins, 20 iterations) on the crop.
data_root = 'data/PartImageNet'
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='cast_mm.LoadPartImageNetMasks'),
    dict(type='ResizeShortestEdge', scale=224, max_size=1_000_000),
    dict(type='CenterCrop', crop_size=224),
    dict(type='cast_mm.SEEDSSuperpixels', preset='moco'),
    dict(type='cast_mm.PackSuperpixelSegInputs')
]
test_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='cast_mm.PartImageNetDataset',
        data_root=data_root,
        ann_file='annotations/val.json',
        data_prefix=dict(img_path='images/val'),
        pipeline=test_pipeline))
# Segments labelled by CLIP (open_clip model name and pretrained tag, as the official
# notebook: ViT-B-16 / openai); level 4 gives the objects, level 3 the parts.
test_evaluator = dict(
    type='cast_mm.PartImageNetMetric',
    labeler=dict(model_name='ViT-B-16', pretrained='openai', prompt='a photo of a {}',
                 device='cuda'),
    object_level=4,
    part_level=3)
test_cfg = dict(type='TestLoop')

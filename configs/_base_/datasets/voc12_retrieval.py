# Pascal VOC 2012 for the unsupervised prototype-retrieval protocol: one test pass
# over the memory split (train+ = SegmentationClassAug / aug.txt, 10,582 images, as written by
# mmseg's tools/dataset_converters/voc_aug.py) and the query split (val, 1,449 images).
# Images are resized so the longer side is 512; SEEDS (1024 superpixels, 5 bins, 15
# iterations) on the resized image; predictions go back to the original size.
dataset_type = 'PascalVOCDataset'
data_root = 'data/VOCdevkit/VOC2012'
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(512, 512), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='cast_mm.SEEDSSuperpixels', preset='seg', num_superpixels=1024),
    dict(type='cast_mm.PackSuperpixelSegInputs')
]
test_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='cast_mm.PrototypeRetrievalDataset',
        memory=dict(
            type=dataset_type,
            data_root=data_root,
            data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClassAug'),
            ann_file='ImageSets/Segmentation/aug.txt',
            pipeline=test_pipeline),
        query=dict(
            type=dataset_type,
            data_root=data_root,
            data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
            ann_file='ImageSets/Segmentation/val.txt',
            pipeline=test_pipeline)))
test_evaluator = dict(type='cast_mm.PrototypeRetrievalMetric', top_k=20)
test_cfg = dict(type='TestLoop')

# Pascal VOC 2012 train+ (10,582 images: SegmentationClassAug / aug.txt, as written by mmseg's
# tools/dataset_converters/voc_aug.py) and val with SEEDS superpixels, following the SPML
# fine-tuning of CAST (scripts/spml/finetune_cast.sh): random scale 0.5-1.5 of the original
# image (VOC images have a longer side of 500), 512 crops padded with the mean colour, flip;
# test images resized so the longer side is 512, predicted whole and resized back. SEEDS with
# 1024 superpixels, 5 bins, 15 iterations on the final image (the official training ran SEEDS
# on the crop downscaled by 2, which cast_mm cannot: superpixel maps match the image).
dataset_type = 'PascalVOCDataset'
data_root = 'data/VOCdevkit/VOC2012'
crop_size = (512, 512)
pad_color = (104, 116, 124)  # the normalisation mean, BGR as loaded
superpixels = dict(type='cast_mm.SEEDSSuperpixels', preset='seg', num_superpixels=1024)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(500, 500), ratio_range=(0.5, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Pad', size=crop_size, pad_val=dict(img=pad_color, seg=255)),
    superpixels,
    dict(type='cast_mm.PackSuperpixelSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='cast_mm.CheckImage'),  # arrays as files load: H x W x 3 uint8
    dict(type='Resize', scale=(512, 512), keep_ratio=True),
    dict(type='LoadAnnotations'),
    superpixels,
    dict(type='cast_mm.PackSuperpixelSegInputs')
]
train_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='cast_mm.ResumableInfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClassAug'),
        ann_file='ImageSets/Segmentation/aug.txt',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
        ann_file='ImageSets/Segmentation/val.txt',
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

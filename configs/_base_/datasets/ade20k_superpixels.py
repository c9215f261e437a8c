# ADE20K (150 classes) with SEEDS superpixels, following the official CAST fine-tuning data
# (segm/data/config/ade20k.py, superpixels as in segm/data/base.py): images resized into
# (2048, 512) with ratio 0.5-2.0, 512 crops (cat_max_ratio 0.75), flip, photometric
# distortion, padded to the crop; superpixels on the final padded crop with a budget of
# H * W / 16**2 (1024 at 512^2). Global batch 8 (one official process); 1 image x 8 GPUs here.
dataset_type = 'ADE20KDataset'
data_root = 'data/ade/ADEChallengeData2016'
crop_size = (512, 512)
img_scale = (2048, 512)
# Padding colour of the crop (the normalisation mean, BGR as loaded): padded pixels look like
# the zero-padded normalised crops of the official pipeline.
pad_color = (104, 116, 124)
superpixels = dict(type='cast_mm.SEEDSSuperpixels', preset='seg')
# ADE20KDataset reduces the zero label ('other' becomes 255, ignored) and LoadAnnotations takes
# that from the dataset (MMSegmentation deprecates setting it on the transform).
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=img_scale, ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='Pad', size=crop_size, pad_val=dict(img=pad_color, seg=255)),
    superpixels,
    dict(type='cast_mm.PackSuperpixelSegInputs')
]
# Slide inference computes superpixels per window; the map computed here serves
# test_cfg.mode='whole' and single-image inference (mmseg.apis.inference_model).
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='cast_mm.CheckImage'),  # arrays as files load: H x W x 3 uint8
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations'),
    superpixels,
    dict(type='cast_mm.PackSuperpixelSegInputs')
]
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='TestTimeAug',
        transforms=[
            [dict(type='Resize', scale_factor=r, keep_ratio=True) for r in img_ratios],
            [
                dict(type='RandomFlip', prob=0., direction='horizontal'),
                dict(type='RandomFlip', prob=1., direction='horizontal')
            ],
            [dict(type='LoadAnnotations')],
            [superpixels],
            [dict(type='cast_mm.PackSuperpixelSegInputs')],
        ])
]
train_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='cast_mm.ResumableInfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

# Pascal Context, 60 classes including background (mmseg PascalContextDataset), with SEEDS
# superpixels, following the official CAST fine-tuning data (segm/data/config/
# pascal_context.py): short side 520 (img_scale (4160, 520)), ratio 0.5-2.0, 480 crops,
# budget H * W / 16**2 (900 at 480^2).
_base_ = ['./ade20k_superpixels.py']
dataset_type = 'PascalContextDataset'
data_root = 'data/VOCdevkit/VOC2010/'
crop_size = (480, 480)
img_scale = (4160, 520)
pad_color = (104, 116, 124)
superpixels = dict(type='cast_mm.SEEDSSuperpixels', preset='seg')
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
# Global batch 16: one official process with 16 images; 2 images x 8 GPUs here.
train_dataloader = dict(
    batch_size=2,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClassContext'),
        ann_file='ImageSets/SegmentationContext/train.txt',
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClassContext'),
        ann_file='ImageSets/SegmentationContext/val.txt',
        pipeline=test_pipeline))
test_dataloader = val_dataloader

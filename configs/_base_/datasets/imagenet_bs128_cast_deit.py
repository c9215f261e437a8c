# ImageNet-1k for supervised CAST (DeiT recipe: deit/main_suppix.py + timm
# create_transform). The torchvision/timm transforms are expressed with their mmpretrain
# equivalents (as in mmpretrain's imagenet_bs64_swin_224.py); superpixels are computed on the
# final augmented image, after crop, flip, RandAugment and RandomErasing, as officially.
dataset_type = 'ImageNet'
data_root = 'data/imagenet'
data_preprocessor = dict(
    type='cast_mm.SuperpixelClsDataPreprocessor',
    num_classes=1000,
    # ImageNet RGB mean / std (timm IMAGENET_DEFAULT_MEAN/STD x 255)
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

bgr_mean = data_preprocessor['mean'][::-1]
bgr_std = data_preprocessor['std'][::-1]

train_pipeline = [
    dict(type='LoadImageFromFile'),
    # RandomResizedCropAndInterpolation(224, scale 0.08-1, ratio 3/4-4/3, bicubic)
    dict(type='RandomResizedCrop', scale=224, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    # rand-m9-mstd0.5-inc1 (timm); color jitter 0.3 is ignored when RandAugment is set
    dict(
        type='RandAugment',
        policies='timm_increasing',
        num_policies=2,
        total_level=10,
        magnitude_level=9,
        magnitude_std=0.5,
        hparams=dict(pad_val=[round(x) for x in bgr_mean], interpolation='bicubic')),
    # --reprob 0.25 --remode pixel --recount 1: per-pixel normal noise in normalised space
    dict(
        type='RandomErasing',
        erase_prob=0.25,
        mode='rand',
        min_area_ratio=0.02,
        max_area_ratio=1 / 3,
        fill_color=bgr_mean,
        fill_std=bgr_std),
    # 196 SEEDS superpixels, histogram bins 5, 15 iterations (datasets_seeds.py)
    dict(type='cast_mm.SEEDSSuperpixels', preset='deit'),
    dict(type='cast_mm.PackSuperpixelClsInputs'),
]

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='cast_mm.CheckImage'),  # arrays as files load: H x W x 3 uint8
    # Resize(int(224 / 0.875) = 256, bicubic) + CenterCrop(224)
    dict(type='ResizeEdge', scale=256, edge='short', backend='pillow', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='cast_mm.SEEDSSuperpixels', preset='deit'),
    dict(type='cast_mm.PackSuperpixelClsInputs'),
]

train_dataloader = dict(
    batch_size=128,  # 8 GPUs x 128 (scripts/deit/train_imagenet1k_cast.sh)
    drop_last=True,  # as deit/main_suppix.py's training loader
    num_workers=8,
    persistent_workers=True,
    dataset=dict(type=dataset_type, data_root=data_root, split='train', pipeline=train_pipeline),
    # repeated augmentation (--repeated-aug, DeiT default)
    sampler=dict(type='cast_mm.ResumableRepeatAugSampler', shuffle=True),
)

val_dataloader = dict(
    # official eval batch is 1.5 x 128; CAST outputs depend on batch composition
    batch_size=192,
    num_workers=8,
    persistent_workers=True,
    dataset=dict(type=dataset_type, data_root=data_root, split='val', pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1, 5))

test_dataloader = val_dataloader
test_evaluator = val_evaluator

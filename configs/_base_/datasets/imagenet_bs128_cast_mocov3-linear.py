# ImageNet-1k for linear probing of MoCo-v3 CAST (main_lincls_suppix.py): torchvision
# RandomResizedCrop(224) + flip for training, Resize(256) + CenterCrop(224) for validation,
# superpixels as in pre-training (196, histogram bins 15, 20 iterations).
dataset_type = 'ImageNet'
data_root = 'data/imagenet'
data_preprocessor = dict(
    type='cast_mm.SuperpixelClsDataPreprocessor',
    num_classes=1000,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224, backend='pillow', interpolation='bilinear'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='cast_mm.SEEDSSuperpixels', preset='moco'),
    dict(type='cast_mm.PackSuperpixelClsInputs'),
]

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='cast_mm.CheckImage'),  # arrays as files load: H x W x 3 uint8
    dict(type='ResizeEdge', scale=256, edge='short', backend='pillow', interpolation='bilinear'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='cast_mm.SEEDSSuperpixels', preset='moco'),
    dict(type='cast_mm.PackSuperpixelClsInputs'),
]

train_dataloader = dict(
    batch_size=128,  # 8 GPUs x 128 = 1024 (-b 1024)
    num_workers=8,
    persistent_workers=True,
    dataset=dict(type=dataset_type, data_root=data_root, split='train', pipeline=train_pipeline),
    sampler=dict(type='cast_mm.ResumableDefaultSampler', shuffle=True),
)

val_dataloader = dict(
    batch_size=256,  # official validation batch
    num_workers=8,
    persistent_workers=True,
    dataset=dict(type=dataset_type, data_root=data_root, split='val', pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1, 5))

test_dataloader = val_dataloader
test_evaluator = val_evaluator

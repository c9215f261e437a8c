# The README's bundled default: CAST-S with the official ADE20K recipe (cast-s_ade20k.py) shrunk
# to train on a CPU in a few minutes, on a synthetic ADE20K-layout dataset generated into
# data/cast_demo_ade20k on first use (cast_mm.DemoADE20KDataset; no download).
# Changes from the recipe, all for size: 128 crops (64 superpixels, clusters 32/16/8/4), no
# pretrained checkpoint (none ships offline), AdamW (from scratch, SGD at lr 1e-3 barely moves
# in 200 steps), 200 iterations at batch 4, evaluation and checkpoint at the end.
_base_ = ['./cast-s_ade20k.py']
data_root = 'data/cast_demo_ade20k'
crop_size = (128, 128)
superpixels = dict(type='cast_mm.SEEDSSuperpixels', preset='seg')
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(160, 128), ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='Pad', size=crop_size, pad_val=dict(img=(104, 116, 124), seg=255)),
    superpixels,
    dict(type='cast_mm.PackSuperpixelSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='cast_mm.CheckImage'),  # arrays as files load: H x W x 3 uint8
    dict(type='Resize', scale=(160, 128), keep_ratio=True),
    dict(type='LoadAnnotations'),
    superpixels,
    dict(type='cast_mm.PackSuperpixelSegInputs')
]
demo_dataset = dict(type='cast_mm.DemoADE20KDataset', data_root=data_root)
train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    dataset=dict(**demo_dataset, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    dataset=dict(**demo_dataset, pipeline=test_pipeline))
test_dataloader = val_dataloader
model = dict(
    data_preprocessor=dict(size=(128, 128)),
    backbone=dict(num_clusters=(32, 16, 8, 4), img_size=128, init_cfg=None),
    test_cfg=dict(mode='slide', crop_size=(128, 128), stride=(96, 96)))
optim_wrapper = dict(
    _delete_=True, type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=3e-4, weight_decay=0.01, fused=True))
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=0, end=200, by_epoch=False)
]
train_cfg = dict(max_iters=200, val_interval=200)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=200, max_keep_ckpts=1, save_best=None))
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0)

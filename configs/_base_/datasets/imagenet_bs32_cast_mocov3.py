# ImageNet-1k two-view pipeline for MoCo-v3 CAST pre-training (moco-v3 BYOL
# augmentations of main_moco_suppix.py, in mmpretrain's mocov3 ViT form: crop scale 0.08-1).
# Each view gets its own superpixels, computed after all its augmentations (before
# normalisation): 196 SEEDS superpixels, histogram bins 15, 20 iterations
# (suppix_utils/datasets_seeds.py).
dataset_type = 'ImageNet'
data_root = 'data/imagenet'
data_preprocessor = dict(
    type='cast_mm.SuperpixelSelfSupDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)


def _view(blur_prob, solarize_prob):
    return [
        dict(type='RandomResizedCrop', scale=224, crop_ratio_range=(0.08, 1.),
             backend='pillow'),
        # torchvision's ColorJitter on a PIL image, as officially (mmcv 2.1's adjust_hue, used
        # by mmpretrain's ColorJitter, overflows on negative hue shifts with numpy >= 2)
        dict(type='NumpyToPIL', to_rgb=True),
        dict(type='RandomApply',
             transforms=[dict(type='torchvision/ColorJitter', brightness=0.4, contrast=0.4,
                              saturation=0.2, hue=0.1)],
             prob=0.8),
        dict(type='PILToNumpy', to_bgr=True),
        dict(type='RandomGrayscale', prob=0.2, keep_channels=True,
             channel_weights=(0.114, 0.587, 0.2989)),
        dict(type='GaussianBlur', magnitude_range=(0.1, 2.0), magnitude_std='inf',
             prob=blur_prob),
        dict(type='Solarize', thr=128, prob=solarize_prob),
        dict(type='RandomFlip', prob=0.5),
    ]


train_pipeline = [
    dict(type='LoadImageFromFile'),
    # view 1: blur p 1.0, no solarize; view 2: blur p 0.1, solarize p 0.2
    dict(type='MultiView', num_views=[1, 1], transforms=[_view(1., 0.), _view(0.1, 0.2)]),
    # one superpixel map per view
    dict(type='ApplyToList', scatter_key='img', collate_keys=['superpixels'],
         transforms=[dict(type='cast_mm.SEEDSSuperpixels', preset='moco')]),
    dict(type='cast_mm.PackSuperpixelClsInputs'),
]

# One view as the linear probe and the hierarchy tools see an image (main_lincls_suppix.py's
# validation: Resize(256) + CenterCrop(224)), superpixels as in pre-training. No data loader
# uses it; cast_mm.apis.HierarchyExtractor and tools/hierarchy_explorer.py do.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='cast_mm.CheckImage'),  # arrays as files load: H x W x 3 uint8
    dict(type='ResizeEdge', scale=256, edge='short', backend='pillow', interpolation='bilinear'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='cast_mm.SEEDSSuperpixels', preset='moco'),
    dict(type='cast_mm.PackSuperpixelClsInputs'),
]

train_dataloader = dict(
    batch_size=32,  # 8 GPUs x 32 = 256 (scripts/moco/train_imagenet1k_cast.sh, -b 256)
    drop_last=True,  # as main_moco_suppix.py's loader
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='cast_mm.ResumableDefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, split='train', pipeline=train_pipeline))

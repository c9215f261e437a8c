# CAST-S + UPerNet: mmseg's ViT-UPerNet model (_base_/models/upernet_vit-b16_ln_mln.py as
# vit_deit-s16_upernet_8xb2-160k_ade20k-512x512 sets it for DeiT-S: UPerHead + FCNHead
# auxiliary on the 384-wide levels, no neck) with CAST-S in place of DeiT-S.
# CAST's four hierarchy levels are painted on stride-16 grids, the grid of DeiT-S's 16-pixel
# patches, so the head sees maps of the same sizes as on DeiT-S (out_strides=(4, 8, 16, 32)
# gives a pyramid instead: docs/segmentation.md).
# Normalisation: ImageNet statistics, as mmseg's ViT configs and the DeiT pre-training of the
# CAST-S weights use.
norm_cfg = dict(type='cast_mm.MaskedSyncBN', requires_grad=True)
data_preprocessor = dict(
    type='cast_mm.SuperpixelSegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    size=(512, 512),
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='cast_mm.SuperpixelEncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='cast_mm.CAST',
        arch='small',
        mode='segmentation',
        pos_embed='learned',
        img_size=224,
        num_clusters=(320, 160, 80, 40),
        out_type='feature_maps',
        out_indices=(0, 1, 2, 3),
        out_strides=(16, 16, 16, 16),
        drop_path_rate=0.1,  # as mmseg's DeiT-S
        norm_cfg=dict(type='cast_mm.MaskedSyncBN'),
        mask_padding=True,
        # The official DeiT ImageNet CAST-S weights (README, "Pretrained models").
        init_cfg=dict(type='Pretrained',
                      checkpoint='https://huggingface.co/twke/CAST/resolve/main/'
                      'snapshots/deit/imagenet1k/cast_small/best_checkpoint.pth',
                      prefix='backbone.')),
    decode_head=dict(
        type='UPerHead',
        in_channels=[384, 384, 384, 384],
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=512,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=384,
        in_index=3,
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

# MoCo-v3 CAST-S (moco-v3/main_moco_suppix.py, moco-v3/suppix_utils/builder.py MoCo_SupPix):
# encoder = CAST with the fixed 2-D sin-cos position table (cast_models/cast.py) and the
# MoCo-v3 initialisation (xavier-uniform linears, qkv bound from the separate q/k/v fan, class
# token N(0, 1e-6)); projector C -> 4096 -> 4096 -> 256 (no biases, BN + ReLU, last BN
# affine-free); predictor 256 -> 4096 -> 256; symmetric InfoNCE with temperature 0.2 and loss
# x 2T; momentum encoder m = 0.99 -> 1 on a cosine schedule (--moco-m 0.99 --moco-m-cos;
# mmpretrain's CosineEMA takes 1 - m). The official script converts every BatchNorm to
# SyncBatchNorm: here the backbone, projector and predictor norms are synchronised over the
# processes (cast_mm.MaskedSyncBN: any device; plain BN in a single process).
temperature = 0.2
model = dict(
    type='cast_mm.SuperpixelMoCoV3',
    base_momentum=0.01,
    backbone=dict(
        type='cast_mm.CAST',
        arch='small',
        mode='classification',
        pos_embed='sincos',
        norm_cfg=dict(type='cast_mm.MaskedSyncBN'),
        init_cfg=dict(type='CASTMoCoV3')),
    neck=dict(
        type='NonLinearNeck',
        in_channels=384,
        hid_channels=4096,
        out_channels=256,
        num_layers=3,
        with_bias=False,
        with_last_bn=True,
        with_last_bn_affine=False,
        with_last_bias=False,
        with_avg_pool=False,
        norm_cfg=dict(type='cast_mm.MaskedSyncBN')),
    head=dict(
        type='MoCoV3Head',
        predictor=dict(
            type='NonLinearNeck',
            in_channels=256,
            hid_channels=4096,
            out_channels=256,
            num_layers=2,
            with_bias=False,
            with_last_bn=True,
            with_last_bn_affine=False,
            with_last_bias=False,
            with_avg_pool=False,
            norm_cfg=dict(type='cast_mm.MaskedSyncBN')),
        loss=dict(type='CrossEntropyLoss', loss_weight=2 * temperature),
        temperature=temperature))

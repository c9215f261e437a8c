# MoCo-v3 CAST-S (spec §6, moco-v3/suppix_utils/builder.py MoCo_SupPix): encoder = CAST with
# the fixed 2-D sin-cos position table (cast_models/cast.py); projector C -> 4096 -> 4096 -> 256
# (no biases, BN + ReLU, last BN affine-free); predictor 256 -> 4096 -> 256; symmetric InfoNCE
# with temperature 0.2 and loss x 2T; momentum encoder m = 0.99 -> 1 on a cosine schedule
# (--moco-m 0.99 --moco-m-cos; mmpretrain's CosineEMA takes 1 - m).
temperature = 0.2
model = dict(
    type='cast_mm.SuperpixelMoCoV3',
    base_momentum=0.01,
    backbone=dict(type='cast_mm.CAST', arch='small', mode='classification', pos_embed='sincos'),
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
        with_avg_pool=False),
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
            with_avg_pool=False),
        loss=dict(type='CrossEntropyLoss', loss_weight=2 * temperature),
        temperature=temperature))

# CAST-S + mmseg's SegFormer head (all-MLP decoder, SegformerHead as in mmseg's
# segformer_mit-b0 model: 256 channels, dropout 0.1) on ADE20K, with the data, schedule and
# initialisation of cast-s_upernet_ade20k.py. CAST's four levels are painted on the 4/8/16/32
# pyramid SegFormer's head reads (its MiT encoder's strides); no auxiliary head.
#   tools/dist_train.sh configs/cast/cast-s_segformer-head_ade20k.py 8
_base_ = ['./cast-s_upernet_ade20k.py']
norm_cfg = dict(type='cast_mm.MaskedSyncBN', requires_grad=True)
model = dict(
    backbone=dict(out_strides=(4, 8, 16, 32)),
    decode_head=dict(
        _delete_=True,
        type='SegformerHead',
        in_channels=[384, 384, 384, 384],
        in_index=[0, 1, 2, 3],
        channels=256,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=None)

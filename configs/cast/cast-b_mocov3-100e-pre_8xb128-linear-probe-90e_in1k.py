# Linear probe of MoCo-v3 CAST-B on ImageNet-1k: the CAST-S recipe. README: 72.4 top-1.
_base_ = ['./cast-s_mocov3-100e-pre_8xb128-linear-probe-90e_in1k.py']

model = dict(
    backbone=dict(
        arch='base',
        init_cfg=dict(checkpoint='https://huggingface.co/twke/CAST/resolve/main/'
                      'snapshots/moco/imagenet1k/cast_base/checkpoint_0099.pth.tar')),
    head=dict(in_channels=768))

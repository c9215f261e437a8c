# CAST-B + superpixel mask transformer on Pascal Context (see cast-b_ade20k.py).
_base_ = ['./cast-s_pascal-context.py']
model = dict(
    backbone=dict(
        arch='base',
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/cast-b_deit_in1k.pth',
                      prefix='backbone.')),
    decode_head=dict(in_channels=768, channels=768, num_heads=12))

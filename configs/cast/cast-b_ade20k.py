# CAST-B + superpixel mask transformer on ADE20K: the CAST-S recipe (cast-s_ade20k.py) with the
# base backbone (768 wide) and a decoder of the same width (12 heads), initialised from a
# converted CAST-B DeiT checkpoint.
_base_ = ['./cast-s_ade20k.py']
model = dict(
    backbone=dict(
        arch='base',
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/cast-b_deit_in1k.pth',
                      prefix='backbone.')),
    decode_head=dict(in_channels=768, channels=768, num_heads=12))

# CAST-B + SegFormer-style all-MLP hierarchy head on Pascal Context.
_base_ = ['./cast-s_hierarchy-mlp-head_pascal-context.py']
model = dict(
    backbone=dict(
        arch='base',
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/cast-b_deit_in1k.pth',
                      prefix='backbone.')),
    decode_head=dict(in_channels=768, channels=768))

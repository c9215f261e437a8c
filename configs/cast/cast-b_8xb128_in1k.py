# Supervised CAST-B (768 dims; cast_deit.cast_base) with the CAST-S DeiT recipe
# (the official repository only ships the cast_small script).
_base_ = ['./cast-s_8xb128_in1k.py']

model = dict(backbone=dict(arch='base'), head=dict(in_channels=768))

# Supervised CAST-BD (base-deep: 768 dims, depths 6, 3, 3, 3; cast_deit.cast_base_deep) with
# the CAST-S DeiT recipe (only the cast_small script is official).
_base_ = ['./cast-s_8xb128_in1k.py']

model = dict(backbone=dict(arch='base-deep'), head=dict(in_channels=768))

# Supervised CAST-SD (small-deep: depths 6, 3, 3, 3; cast_deit.cast_small_deep) with
# the CAST-S DeiT recipe (the official repository only ships the cast_small script).
_base_ = ['./cast-s_8xb128_in1k.py']

model = dict(backbone=dict(arch='small-deep'))

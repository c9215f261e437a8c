# MoCo-v3 CAST-B pre-training on ImageNet-1k: the CAST-S recipe (README table:
# batch 256, 100 epochs, 72.4 linear-probe top-1).
_base_ = ['./cast-s_mocov3-100e_8xb32_in1k.py']

model = dict(backbone=dict(arch='base'), neck=dict(in_channels=768))

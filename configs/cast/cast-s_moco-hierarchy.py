_base_ = ['./cast-b_moco-hierarchy.py']
# CAST-S (MoCo-v3 ImageNet-1k convention).
model = dict(arch='small')

# CAST-S variant of cast-b_partimagenet.py (MoCo-v3 ImageNet-1k CAST-S checkpoint).
_base_ = ['./cast-b_partimagenet.py']
model = dict(backbone=dict(arch='small'))

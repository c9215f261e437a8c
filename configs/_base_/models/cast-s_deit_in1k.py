# Supervised CAST-S classifier (cast_models/cast_deit.py, deit/main_suppix.py): learned
# position embedding, normalised stage-4 class token -> linear head; drop path 0.1
# (--drop-path 0.1), label smoothing 0.1, Mixup alpha 0.8 / CutMix alpha 1.0, switch prob 0.5,
# on every batch.
model = dict(
    type='cast_mm.SuperpixelImageClassifier',
    backbone=dict(
        type='cast_mm.CAST',
        arch='small',
        mode='classification',
        pos_embed='learned',
        drop_path_rate=0.1),
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=384,
        # timm ViT head init: truncated normal std .02, zero bias
        init_cfg=dict(type='TruncNormal', layer='Linear', std=.02),
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')),
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]))

# CAST-S + SegFormer-style all-MLP hierarchy head on Pascal Context (recipe of
# cast-s_pascal-context.py, decoder of cast-s_hierarchy-mlp-head_ade20k.py).
_base_ = ['./cast-s_pascal-context.py']
model = dict(
    decode_head=dict(
        _delete_=True,
        type='cast_mm.HierarchyMLPHead',
        in_channels=384,
        channels=256,
        num_classes=60,
        num_levels=4,
        dropout_ratio=0.1,
        ignore_index=255,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
                         avg_non_ignore=True)))
# This head reads the stage tokens itself: the segmentor builds the backbone without level
# fusion (and with its last pooling frozen), so every trained parameter gets a gradient.
find_unused_parameters = False

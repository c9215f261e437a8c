# MoCo-v3 CAST pre-training schedule (scripts/moco/train_imagenet1k_cast.sh): AdamW,
# lr 1.5e-4 x batch / 256, weight decay 0.1 on all parameters, 100 epochs with 10 warm-up
# epochs; linear warm-up and half-cosine to 0 are both updated per iteration.
# fused=True is torch's one-kernel optimiser step (the same update up to float rounding), an
# implementation choice of ours, not a recipe value.
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1.5e-4, weight_decay=0.1, fused=True))

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=10,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=90, eta_min=0., by_epoch=True, begin=10, end=100,
         convert_to_iter_based=True),
]

train_cfg = dict(type='cast_mm.ResumableEpochBasedTrainLoop', max_epochs=100)

auto_scale_lr = dict(base_batch_size=256)

# DeiT schedule for supervised CAST: AdamW, lr 5e-4 x global batch / 512 (= 1e-3 at
# 8 x 128), eps 1e-8, weight decay 0.05 with 1-D parameters (norms, biases), pos_embed and
# cls_token exempt; 5 warm-up epochs from 1e-6, then cosine to 1e-5, stepped per epoch as
# timm's scheduler is; 300 epochs.
# fused=True is torch's one-kernel optimiser step (the same update up to float rounding), an
# implementation choice of ours, not a recipe value.
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=5e-4 * 1024 / 512, weight_decay=0.05, eps=1e-8,
                   betas=(0.9, 0.999), fused=True),
    paramwise_cfg=dict(
        flat_decay_mult=0.0,
        custom_keys={
            '.cls_token': dict(decay_mult=0.0),
            '.pos_embed': dict(decay_mult=0.0)
        }))

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6 / 1e-3, by_epoch=True, begin=0, end=5),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=5, end=300),
]

train_cfg = dict(type='cast_mm.ResumableEpochBasedTrainLoop', max_epochs=300, val_interval=1)
val_cfg = dict()
test_cfg = dict()

# lr above is for a global batch of 1024; --auto-scale-lr rescales it for other batches
auto_scale_lr = dict(base_batch_size=1024)

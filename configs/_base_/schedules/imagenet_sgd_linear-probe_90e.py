# Linear-probe schedule (main_lincls_suppix.py): SGD momentum 0.9, no weight decay,
# lr --lr 30 x batch / 256 (= 120 at -b 1024), cosine decay per epoch over 90 epochs.
# fused=True is torch's one-kernel optimiser step (the same update up to float rounding), an
# implementation choice of ours, not a recipe value.
optim_wrapper = dict(optimizer=dict(type='SGD', lr=30 * 1024 / 256, momentum=0.9,
                                    weight_decay=0., fused=True))

param_scheduler = [dict(type='CosineAnnealingLR', T_max=90, eta_min=0., by_epoch=True,
                        begin=0, end=90)]

train_cfg = dict(type='cast_mm.ResumableEpochBasedTrainLoop', max_epochs=90, val_interval=1)
val_cfg = dict()
test_cfg = dict()

auto_scale_lr = dict(base_batch_size=1024)

# Official CAST fine-tuning schedule on ADE20K (segm/train_cast.py, segm/config.yml,
# segm/optim/scheduler.py): SGD nesterov, momentum 0.9, lr 1e-3, no weight decay; polynomial
# decay (power 0.9) to 1e-5 stepped every iteration, no warm-up, over 64 epochs. One official
# epoch is ceil(20210 / 8) = 2527 iterations (global batch 8, last batch kept), so the run is
# 2527 x 64 = 161,728 iterations ("160k").
# fused=True is torch's one-kernel optimiser step (the same update up to float rounding), an
# implementation choice of ours, not a recipe value.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=1e-3, momentum=0.9, nesterov=True, weight_decay=0.,
                   fused=True))
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=0, end=161728, by_epoch=False)
]
# Officially evaluated every 2 epochs and reported from the last checkpoint; here every 16k
# iterations, with the last and the best checkpoint kept.
train_cfg = dict(type='cast_mm.ResumableIterBasedTrainLoop', max_iters=161728, val_interval=16000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='cast_mm.AtomicCheckpointHook', by_epoch=False, interval=16000,
                    max_keep_ckpts=3, save_best='mIoU'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'),
    # SIGTERM / SIGUSR1: finish the iteration, checkpoint, exit 75 (docs/reliability.md)
    preemption=dict(type='cast_mm.PreemptionCheckpointHook'))
# The official global batch: one process with 8 images (here e.g. 8 GPUs x 1 image, with
# synchronised BatchNorm); `--auto-scale-lr` rescales lr for other global batches.
auto_scale_lr = dict(enable=False, base_batch_size=8)

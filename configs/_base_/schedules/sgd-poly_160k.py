# Official CAST fine-tuning schedule (spec §4.4): SGD nesterov, momentum 0.9, lr 1e-3, no weight
# decay; per-iteration polynomial decay (power 0.9) to 1e-5, no warm-up. 160k iterations is
# ADE20K's 64 epochs at a global batch of 8 (20210 / 8 * 64 = 161.7k).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=1e-3, momentum=0.9, nesterov=True, weight_decay=0.))
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=0, end=160000, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=160000, val_interval=16000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=16000, max_keep_ckpts=3,
                    save_best='mIoU'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
# The recipe's global batch (1 image x 8 GPUs); `--auto-scale-lr` rescales lr for others.
auto_scale_lr = dict(enable=False, base_batch_size=8)

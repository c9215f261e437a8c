# Linear probe of MoCo-v3 CAST-S on ImageNet-1k (main_lincls_suppix.py): frozen
# encoder kept in eval mode, 1000-class linear head (init N(0, 0.01^2), zero bias), SGD lr 30 x
# 1024 / 256, 90 epochs, batch 1024. README: 68.1 top-1.
# The encoder comes from the official MoCo-v3 checkpoint (base encoder only; downloaded on
# first use, converted when loaded), or from this repository's own pre-training: set
# model.backbone.init_cfg.checkpoint to its file (its state_dict also has 'backbone.' keys).
_base_ = [
    '../_base_/datasets/imagenet_bs128_cast_mocov3-linear.py',
    '../_base_/schedules/imagenet_sgd_linear-probe_90e.py',
    'mmpretrain::_base_/default_runtime.py',
    '../_base_/cast_env.py',
]
# Validated every epoch; the reported top-1 is the best epoch's (model_best.pth.tar officially).
default_hooks = dict(
    checkpoint=dict(type='cast_mm.AtomicCheckpointHook', interval=1, max_keep_ckpts=1,
                    save_best='accuracy/top1', rule='greater'),
    # SIGTERM / SIGUSR1: finish the iteration, checkpoint, exit 75 (docs/reliability.md)
    preemption=dict(type='cast_mm.PreemptionCheckpointHook'))
# A collective that waits longer than this (seconds) for a lost peer fails.
env_cfg = dict(dist_cfg=dict(timeout=300))

model = dict(
    type='cast_mm.SuperpixelImageClassifier',
    frozen_backbone=True,
    backbone=dict(
        type='cast_mm.CAST',
        arch='small',
        mode='classification',
        pos_embed='sincos',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://huggingface.co/twke/CAST/resolve/main/'
            'snapshots/moco/imagenet1k/cast_small/checkpoint_0099.pth.tar',
            prefix='backbone.')),
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=384,
        init_cfg=dict(type='Normal', layer='Linear', std=0.01),
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))

# MoCo-v3 CAST-S pre-training on ImageNet-1k (scripts/moco/train_imagenet1k_cast.sh):
# batch 256, 100 epochs (10 warm-up), AdamW lr 1.5e-4, wd 0.1; README: 68.1 linear-probe top-1.
# AMP as officially: add --amp to tools/train.py.
# To continue from the official weights (model name cast-s_mocov3-100e_8xb32_in1k): pass
# --cfg-options load_from=https://huggingface.co/twke/CAST/resolve/main/snapshots/moco/
# imagenet1k/cast_small/checkpoint_0099.pth.tar (converted when loaded: encoder, projector and
# predictor load; the momentum encoder copies the encoder at the first step). Only the
# encoder: model.backbone.init_cfg=dict(type='Pretrained', checkpoint=URL, prefix='backbone.').
_base_ = [
    '../_base_/models/cast-s_mocov3.py',
    '../_base_/datasets/imagenet_bs32_cast_mocov3.py',
    '../_base_/schedules/mocov3_bs256_adamw_100e.py',
    'mmpretrain::_base_/default_runtime.py',
    '../_base_/cast_env.py',
]

default_hooks = dict(
    checkpoint=dict(type='cast_mm.AtomicCheckpointHook', max_keep_ckpts=3),
    # SIGTERM / SIGUSR1: finish the iteration, checkpoint, exit 75 (docs/reliability.md)
    preemption=dict(type='cast_mm.PreemptionCheckpointHook'))
# A collective that waits longer than this (seconds) for a lost peer fails.
env_cfg = dict(dist_cfg=dict(timeout=300))

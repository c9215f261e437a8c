# Supervised CAST-S on ImageNet-1k, DeiT recipe (scripts/deit/train_imagenet1k_cast.sh
# + deit/main_suppix.py defaults): 8 GPUs x 128, 300 epochs, published top-1 80.4.
# Not reproduced from the official script: model EMA (0.99996, unused for the reported
# accuracy) and AMP (add --amp to tools/train.py).
# Official weights (model name cast-s_deit_in1k; downloaded on first use, converted when
# loaded): tools/test.py configs/cast/cast-s_8xb128_in1k.py https://huggingface.co/twke/CAST/
# resolve/main/snapshots/deit/imagenet1k/cast_small/best_checkpoint.pth (the same URL as
# --cfg-options load_from=URL fine-tunes from it).
_base_ = [
    '../_base_/models/cast-s_deit_in1k.py',
    '../_base_/datasets/imagenet_bs128_cast_deit.py',
    '../_base_/schedules/imagenet_bs1024_adamw_cast_deit.py',
    'mmpretrain::_base_/default_runtime.py',
    '../_base_/cast_env.py',
]

randomness = dict(seed=0, diff_rank_seed=True)  # --seed 0, plus the rank as officially
# The official script keeps checkpoint.pth (last epoch) and best_checkpoint.pth (best top-1,
# the published weights).
default_hooks = dict(
    checkpoint=dict(type='cast_mm.AtomicCheckpointHook', interval=1, max_keep_ckpts=1,
                    save_best='accuracy/top1', rule='greater'),
    # SIGTERM / SIGUSR1: finish the iteration, checkpoint, exit 75 (docs/reliability.md)
    preemption=dict(type='cast_mm.PreemptionCheckpointHook'))
# A collective that waits longer than this (seconds) for a lost peer fails.
env_cfg = dict(dist_cfg=dict(timeout=300))

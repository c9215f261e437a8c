# MoCo-v3 CAST-S pre-training on COCO train2017 (scripts/moco/train_coco_cast.sh):
# encoder cast_seg_small_pretrain (segmentation architecture with block fusion, tokens
# pooled on the stem grid, output = mean of the fused tokens, no frozen pooling), batch 256,
# 400 epochs with 40 warm-up, AdamW lr 1.5e-4, wd 0.1. README: VOC 38.4 mIoU by retrieval
# (checkpoint_0149), 67.6 after VOC fine-tuning (checkpoint_0399).
_base_ = [
    '../_base_/models/cast-s_mocov3.py',
    '../_base_/datasets/coco-moco_bs32_cast.py',
    '../_base_/schedules/mocov3_bs256_adamw_100e.py',
    'mmpretrain::_base_/default_runtime.py',
    '../_base_/cast_env.py',
]

model = dict(
    backbone=dict(
        mode='segmentation',
        num_clusters=(64, 32, 16, 8),
        token_resolution='feature',
        out_type='fused_mean',
        freeze_last_pool=False))

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=40,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=360, eta_min=0., by_epoch=True, begin=40, end=400,
         convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=400)
# The official script keeps every 50th epoch (checkpoint_0049 ... checkpoint_0399): epoch 150
# feeds cast-s_voc-retrieval.py and epoch 400 cast-s_voc-finetune.py. Keep those
# (epoch_50.pth ... epoch_400.pth), plus the latest epoch for resuming (latest_epoch_N.pth).
default_hooks = dict(
    checkpoint=dict(type='cast_mm.AtomicCheckpointHook', interval=50, max_keep_ckpts=-1),
    # SIGTERM / SIGUSR1: finish the iteration, checkpoint, exit 75 (docs/reliability.md)
    preemption=dict(type='cast_mm.PreemptionCheckpointHook'))
# A collective that waits longer than this (seconds) for a lost peer fails.
env_cfg = dict(dist_cfg=dict(timeout=300))
custom_hooks = [
    dict(type='cast_mm.AtomicCheckpointHook', interval=1, max_keep_ckpts=1,
         filename_tmpl='latest_epoch_{}.pth')
]
# the last pooling's class-token update feeds nothing in the fused-mean output
find_unused_parameters = True

# CAST-S fine-tuned on Pascal VOC 2012 train+ (scripts/spml/finetune_cast.sh, SPML; README:
# 67.6 mIoU on val from the COCO MoCo-v3 checkpoint of epoch 400). 30k iterations at a global
# batch of 4 (1 image x 4 GPUs), BatchNorms synchronised over the GPUs (USE_SYNCBN), SGD
# momentum 0.9, lr 3e-3 (biases x2, no decay on biases), weight decay 1e-4, 100 warm-up
# iterations, poly 0.9; cross entropy over labelled pixels; whole-image inference.
#   tools/dist_train.sh configs/cast/cast-s_voc-finetune.py 4
# The classifier is the official one: Linear(384, 384, no bias) + BN + ReLU + Linear(384, 21)
# on every fused segment token (cast_mm.SegmentMLPHead; officially 1x1 convolutions on the
# per-pixel map of the same embeddings). Differences from the official recipe: the sin-cos
# position table stays fixed (SPML fine-tuned a copy of it).
_base_ = [
    '../_base_/models/cast-s_segmenter.py', '../_base_/datasets/voc12_aug_superpixels.py',
    '../_base_/default_runtime.py', '../_base_/schedules/sgd-poly_160k.py'
]
model = dict(
    data_preprocessor=dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]),
    backbone=dict(
        pos_embed='sincos',  # MoCo-v3 convention
        drop_path_rate=0.,
        # The official MoCo-v3 COCO weights of epoch 400 (converted when loaded), or this
        # repository's own pre-training (cast-s_mocov3-400e_8xb32_coco.py), last epoch
        init_cfg=dict(type='Pretrained',
                      checkpoint='https://huggingface.co/twke/CAST/resolve/main/'
                      'snapshots/moco/coco/cast_small/checkpoint_0399.pth.tar',
                      prefix='backbone.')),
    decode_head=dict(
        _delete_=True,
        type='cast_mm.SegmentMLPHead',
        in_channels=384,
        channels=384,
        num_classes=21,
        norm_cfg=dict(type='cast_mm.MaskedSyncBN'),
        ignore_index=255,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
                         avg_non_ignore=True)),
    test_cfg=dict(_delete_=True, mode='whole'))
optim_wrapper = dict(
    optimizer=dict(lr=3e-3, momentum=0.9, nesterov=False, weight_decay=1e-4),
    paramwise_cfg=dict(bias_lr_mult=2., bias_decay_mult=0.))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=100),
    dict(type='PolyLR', eta_min=0., power=0.9, begin=100, end=30000, by_epoch=False)
]
train_cfg = dict(max_iters=30000, val_interval=3000)
default_hooks = dict(checkpoint=dict(interval=3000))
auto_scale_lr = dict(base_batch_size=4)

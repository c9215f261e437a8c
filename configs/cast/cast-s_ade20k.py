# CAST-S + superpixel mask transformer on ADE20K: the official fine-tuning recipe
# (scripts/segmenter/train_ade20k_cast.sh; paper: 43.1 mIoU). Officially one process with a
# batch of 8; here 8 GPUs x 1 image with BatchNorm statistics synchronised over the 8
# (cast_mm.MaskedSyncBN). 64 epochs = 161,728 iterations, SGD nesterov lr 1e-3, poly 0.9 to
# 1e-5, crop 512, no encoder drop path, decoder dropout 0.1, cross entropy over labelled
# pixels, fp32 (the official run did not use AMP; --amp is an option), backbone initialised
# from the official DeiT checkpoint; evaluation slides 512 windows with stride 480, an image
# smaller than the window resized up to it first.
#   tools/dist_train.sh configs/cast/cast-s_ade20k.py 8
_base_ = [
    '../_base_/models/cast-s_segmenter.py', '../_base_/datasets/ade20k_superpixels.py',
    '../_base_/default_runtime.py', '../_base_/schedules/sgd-poly_160k.py'
]
model = dict(
    decode_head=dict(num_classes=150),
    test_cfg=dict(
        mode='slide', crop_size=(512, 512), stride=(480, 480), resize_to_window=True))

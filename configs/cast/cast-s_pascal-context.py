# CAST-S + superpixel mask transformer on Pascal Context (60 classes incl. background): the
# official fine-tuning recipe (scripts/segmenter/train_context_cast.sh; paper: 49.1 mIoU).
# Officially one process with a batch of 16; here 8 GPUs x 2 images with synchronised
# BatchNorm. 256 epochs = 80,128 iterations, crop 480, evaluation slides 480 windows with
# stride 448 (smaller images resized up to the window); otherwise as cast-s_ade20k.py.
#   tools/dist_train.sh configs/cast/cast-s_pascal-context.py 8
_base_ = [
    '../_base_/models/cast-s_segmenter.py', '../_base_/datasets/pascal_context_superpixels.py',
    '../_base_/default_runtime.py', '../_base_/schedules/sgd-poly_80k.py'
]
model = dict(
    data_preprocessor=dict(size=(480, 480)),
    decode_head=dict(num_classes=60, ignore_index=255),
    test_cfg=dict(
        mode='slide', crop_size=(480, 480), stride=(448, 448), resize_to_window=True))

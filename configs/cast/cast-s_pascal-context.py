# CAST-S + superpixel mask transformer on Pascal Context (60 classes incl. background): the
# official fine-tuning recipe (spec §4.4): 80k iterations at 2 images x 8 GPUs, crop 480,
# slide 480 / 320, otherwise as cast-s_ade20k.py.
_base_ = [
    '../_base_/models/cast-s_segmenter.py', '../_base_/datasets/pascal_context_superpixels.py',
    '../_base_/default_runtime.py', '../_base_/schedules/sgd-poly_80k.py'
]
model = dict(
    data_preprocessor=dict(size=(480, 480)),
    decode_head=dict(num_classes=60, ignore_index=255),
    test_cfg=dict(mode='slide', crop_size=(480, 480), stride=(320, 320)))

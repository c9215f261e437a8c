# CAST-S + superpixel mask transformer on ADE20K: the official fine-tuning recipe
# (spec §4.4; paper: CAST-S Segmenter, ADE20K). 160k iterations at 1 image x 8 GPUs,
# SGD nesterov lr 1e-3, poly 0.9 to 1e-5, crop 512, slide 512 / 512, drop path 0.1,
# decoder dropout 0.1, backbone initialised from the converted official DeiT checkpoint.
#   tools/dist_train.sh configs/cast/cast-s_ade20k.py 8
_base_ = [
    '../_base_/models/cast-s_segmenter.py', '../_base_/datasets/ade20k_superpixels.py',
    '../_base_/default_runtime.py', '../_base_/schedules/sgd-poly_160k.py'
]
model = dict(
    decode_head=dict(num_classes=150),
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(512, 512)))

# Unsupervised semantic segmentation of Pascal VOC 2012 val by nearest-prototype retrieval
# (README: 38.4 mIoU with the COCO MoCo-v3 CAST-S checkpoint of epoch 150).
# Every image is segmented into the 40 groups of hierarchy level 4 (segmentation-mode CAST-S,
# segments 320/160/80/40); a group's prototype is the mean normalised MoCo projection (256-d)
# of its pixels. Train+ groups, labelled by their majority class, form the memory; each val
# group takes the majority label of its 20 nearest memory prototypes. One test pass:
#   python tools/test.py configs/cast/cast-s_voc-retrieval.py \
#       work_dirs/cast-s_mocov3-400e_8xb32_coco/epoch_150.pth
_base_ = [
    '../_base_/datasets/voc12_retrieval.py', '../_base_/models/cast_hierarchy.py',
    '../_base_/default_runtime.py'
]
model = dict(
    # The MoCo encoder's weights in the segmentation architecture; the sin-cos position table
    # of the 28 x 28 pre-training grid is resized to each superpixel map.
    backbone=dict(mode='segmentation', num_clusters=(320, 160, 80, 40)),
    # The MoCo-v3 projector (neck.* of a cast_mm MoCo checkpoint).
    neck=dict(
        type='mmpretrain.NonLinearNeck',
        in_channels=384,
        hid_channels=4096,
        out_channels=256,
        num_layers=3,
        with_bias=False,
        with_last_bn=True,
        with_last_bn_affine=False,
        with_last_bias=False,
        with_avg_pool=False,
        norm_cfg=dict(type='BN1d')),
    levels=(4, ),
    prototype_level=4,
    output_shape='ori_shape')
# ~420k memory prototypes: retrieve on the GPU.
test_evaluator = dict(device='cuda')

# COCO train2017 images (no labels) for MoCo-v3 CAST pre-training
# (scripts/moco/train_coco_cast.sh reads an ImageFolder on data/coco/train). Same two-view
# pipeline and per-view superpixels as on ImageNet.
_base_ = ['./imagenet_bs32_cast_mocov3.py']

train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root='data/coco',
        data_prefix='train2017',
        with_label=False,
        pipeline={{_base_.train_pipeline}}))

# PartImageNet object and part segmentation by the CAST-B hierarchy (the official
# notebook's cast_base (MoCo-v3, ImageNet-1k, 100 epochs) scores 29.67 object / 13.21 part
# mean per-image Jaccard). Level 4 (8 segments) = objects, level 3 (16) = parts, each segment
# named by open_clip among the objects / the parts of its object.
#   python tools/test.py configs/cast/cast-b_partimagenet.py CHECKPOINT
# CHECKPOINT: a cast_mm MoCo-v3 CAST-B checkpoint, or the official one by path or URL
# (https://huggingface.co/twke/CAST/resolve/main/snapshots/moco/imagenet1k/cast_base/
# checkpoint_0099.pth.tar, converted when loaded).
_base_ = [
    '../_base_/datasets/partimagenet.py', '../_base_/models/cast_hierarchy.py',
    '../_base_/default_runtime.py'
]
# Levels 3 and 4; the ground truth is resized and cropped with the image (img_shape).
model = dict(backbone=dict(arch='base'))

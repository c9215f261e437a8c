# PartImageNet object and part segmentation by the CAST-B hierarchy (spec §7.3; the official
# notebook's cast_base (MoCo-v3, ImageNet-1k, 100 epochs) scores 29.67 object / 13.21 part
# mean per-image Jaccard). Level 4 (8 segments) = objects, level 3 (16) = parts, each segment
# named by open_clip among the objects / the parts of its object.
#   python tools/test.py configs/cast/cast-b_partimagenet.py CHECKPOINT
# CHECKPOINT: a cast_mm MoCo-v3 CAST-B checkpoint, or the converted official one
# (tools/model_converters/cast_official_to_mm.py).
_base_ = ['../_base_/datasets/partimagenet.py', '../_base_/default_runtime.py']
model = dict(
    type='cast_mm.HierarchySegmentor',
    data_preprocessor=dict(
        type='cast_mm.SuperpixelSegDataPreProcessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(
        type='cast_mm.CAST',
        arch='base',
        mode='classification',
        pos_embed='sincos',
        img_size=224,
        # Padded token slots are masked, so batching does not change an image's hierarchy
        # (spec §10.1); the official notebook ran one image at a time.
        mask_padding=True),
    levels=(3, 4),
    # ground truth is resized and cropped with the image
    output_shape='img_shape')

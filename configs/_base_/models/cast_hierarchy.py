# Test-time hierarchy model (cast_mm.HierarchySegmentor): a CAST backbone whose pooling levels
# become pixel label maps; ImageNet mean/std on RGB, as every official CAST model.
model = dict(
    type='cast_mm.HierarchySegmentor',
    data_preprocessor=dict(
        type='cast_mm.SuperpixelSegDataPreProcessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(
        type='cast_mm.CAST',
        arch='small',
        mode='classification',
        pos_embed='sincos',
        img_size=224,
        # Padded token slots are masked, so batching does not change an image's hierarchy;
        # the official notebooks ran one image at a time.
        mask_padding=True),
    levels=(3, 4),
    output_shape='img_shape')

# CAST-S + superpixel mask-transformer decoder: the official Segmenter fine-tuning model
# (spec §4.1-§4.2: cast_seg_deit.cast_small encoder, 2-layer decoder of width 384, 6 heads,
# dropout 0.1; segment counts 320/160/80/40).
# Normalisation: the official fine-tuning used ImageNet statistics x255 rounded to 2 decimals.
data_preprocessor = dict(
    type='cast_mm.SuperpixelSegDataPreProcessor',
    mean=[123.68, 116.28, 103.53],
    std=[58.4, 57.12, 57.38],
    bgr_to_rgb=True,
    size=(512, 512),  # training batches are padded to the crop
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='cast_mm.SuperpixelEncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='cast_mm.CAST',
        arch='small',
        mode='segmentation',
        pos_embed='learned',
        img_size=224,
        num_clusters=(320, 160, 80, 40),
        drop_path_rate=0.1,
        # Padded token slots are masked, so an image's output does not depend on the batch
        # (spec §10.1); for a single image with compact ids it equals the official model.
        mask_padding=True,
        # Converted official DeiT ImageNet checkpoint (README, "Official checkpoints"):
        #   python3 tools/model_converters/cast_official_to_mm.py \
        #       snapshots/deit/imagenet1k/cast_small/best_checkpoint.pth \
        #       checkpoints/cast-s_deit_in1k.pth --trust-pickle
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/cast-s_deit_in1k.pth',
                      prefix='backbone.')),
    decode_head=dict(
        type='cast_mm.SuperpixelMaskTransformerHead',
        in_channels=384,
        channels=384,
        num_classes=150,
        num_layers=2,
        num_heads=6,
        dropout=0.1,
        ignore_index=255,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    # Superpixels of each sliding window: SEEDS with the official parameters (spec §4.3).
    window_superpixels=dict(type='cast_mm.SEEDSSuperpixels', preset='seg'),
    train_cfg=dict(),
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(512, 512)))

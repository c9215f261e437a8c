# CAST-S + superpixel mask-transformer decoder: the official Segmenter fine-tuning model
# (segm/train_cast.py with segm/config.yml: cast_seg_deit.cast_small encoder built without
# drop path, segment counts 320/160/80/40; 2-layer decoder of width 384, 6 heads, dropout 0.1
# on attention weights and projections, no drop path; cross entropy averaged over the pixels
# that are not ignored).
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
        # create_cast_deit builds the encoder with no arguments: no drop path (the launcher's
        # --drop-path value is not passed on).
        drop_path_rate=0.,
        # The official run is one process with the whole batch, so its BatchNorms (stem,
        # level fusion) see every image of the batch. Statistics synchronised over the
        # processes give the same under DDP; a single process is plain BN.
        norm_cfg=dict(type='cast_mm.MaskedSyncBN'),
        # Padded token slots are masked out of attention and pooling, so an image's output does
        # not depend on the batch; for a single image with compact ids it equals the official
        # model. (The fusion BatchNorm still counts padded slots in its statistics, as
        # officially; mask_padding=False is the official padded computation.)
        mask_padding=True,
        # The official DeiT ImageNet CAST-S weights, as the official fine-tuning starts:
        # downloaded on first use into torch hub's cache, converted when loaded (README,
        # "Pretrained models").
        init_cfg=dict(type='Pretrained',
                      checkpoint='https://huggingface.co/twke/CAST/resolve/main/'
                      'snapshots/deit/imagenet1k/cast_small/best_checkpoint.pth',
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
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
                         avg_non_ignore=True)),
    # Superpixels of each sliding window: SEEDS with the official parameters.
    window_superpixels=dict(type='cast_mm.SEEDSSuperpixels', preset='seg'),
    train_cfg=dict(),
    # Official evaluation (segm/eval/miou_cast.py): windows of the crop size, stride crop - 32,
    # an image smaller than the window resized up to it first (shorter side to the window).
    test_cfg=dict(
        mode='slide', crop_size=(512, 512), stride=(480, 480), resize_to_window=True))

# CAST-S + UPerNet on ADE20K, beside mmseg's vit_deit-s16_upernet_8xb2-160k_ade20k-512x512
# (42.87 mIoU): the same head (UPerHead + FCNHead auxiliary, no neck), schedule (AdamW 6e-5,
# 1,500 warm-up iterations, 160k iterations; mmseg 1.2.2's file of that name inherits the 80k
# schedule, its published result is the 160k run), batch (8 GPUs x 2 images) and data (ADE20K,
# 512 crops, whole-image test), with CAST-S from the official DeiT ImageNet weights in place of
# DeiT-S and SEEDS superpixels computed on every crop and test image.
#   tools/dist_train.sh configs/cast/cast-s_upernet_ade20k.py 8
_base_ = [
    '../_base_/models/cast-s_upernet.py', '../_base_/datasets/ade20k_superpixels.py',
    '../_base_/default_runtime.py', '../_base_/schedules/adamw-poly_160k_vit.py'
]
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader

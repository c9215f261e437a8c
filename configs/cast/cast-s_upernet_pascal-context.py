# CAST-S + UPerNet on Pascal Context (60 classes including background): the model and optimiser
# of cast-s_upernet_ade20k.py on the data of cast-s_pascal-context.py (short side 520, 480
# crops), 80k iterations (mmseg's Pascal Context length) at 8 GPUs x 2 images.
#   tools/dist_train.sh configs/cast/cast-s_upernet_pascal-context.py 8
_base_ = [
    '../_base_/models/cast-s_upernet.py', '../_base_/datasets/pascal_context_superpixels.py',
    '../_base_/default_runtime.py', '../_base_/schedules/adamw-poly_160k_vit.py'
]
model = dict(
    data_preprocessor=dict(size=(480, 480)),
    decode_head=dict(num_classes=60),
    auxiliary_head=dict(num_classes=60))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=80000, by_epoch=False)
]
train_cfg = dict(max_iters=80000, val_interval=8000)
default_hooks = dict(checkpoint=dict(interval=8000))
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader

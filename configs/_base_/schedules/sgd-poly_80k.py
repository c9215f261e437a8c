# Official CAST fine-tuning schedule on Pascal Context: as sgd-poly_160k.py over 256 epochs at a
# global batch of 16: ceil(4996 / 16) = 313 iterations per epoch, 313 x 256 = 80,128 iterations
# ("80k").
_base_ = ['./sgd-poly_160k.py']
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=0, end=80128, by_epoch=False)
]
train_cfg = dict(max_iters=80128, val_interval=8000)
default_hooks = dict(checkpoint=dict(interval=8000))
auto_scale_lr = dict(base_batch_size=16)

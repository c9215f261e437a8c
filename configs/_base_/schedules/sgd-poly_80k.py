# Official CAST fine-tuning schedule for Pascal Context (spec §4.4): as sgd-poly_160k.py, with
# 80k iterations (4996 / 16 * 256 epochs = 79.9k at a global batch of 16).
_base_ = ['./sgd-poly_160k.py']
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=0, end=80000, by_epoch=False)
]
train_cfg = dict(max_iters=80000, val_interval=8000)
default_hooks = dict(checkpoint=dict(interval=8000))
auto_scale_lr = dict(base_batch_size=16)

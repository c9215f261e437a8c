# mmseg's ViT-UPerNet schedule (vit_vit-b16_mln_upernet_8xb2-160k_ade20k-512x512.py): AdamW
# lr 6e-5, betas (0.9, 0.999), weight decay 0.01, none on position embedding, class token and
# norms; linear warm-up over 1,500 iterations from 1e-6 x lr, then linear decay (poly, power 1)
# to 0 at 160k iterations; evaluated and checkpointed every 16k. fused=True is torch's
# one-kernel optimiser step (the same update up to float rounding), an implementation choice.
_base_ = ['./sgd-poly_160k.py']
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01, fused=True),
    paramwise_cfg=dict(
        custom_keys={
            'pos_embed': dict(decay_mult=0.),
            'cls_token': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False)
]
train_cfg = dict(max_iters=160000, val_interval=16000)
# 8 GPUs x 2 images.
auto_scale_lr = dict(base_batch_size=16)

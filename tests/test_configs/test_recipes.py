"""Every training config in configs/cast reproduces the official recipe (table of values below).

Each row holds the values of the official training code (segm/train_cast.py + segm/config.yml
for Segmenter, deit/main_suppix.py for DeiT, moco-v3/main_moco_suppix.py and
main_lincls_suppix.py for MoCo-v3, scripts/spml/finetune_cast.sh for SPML, and the launch
scripts in scripts/). Where a config knowingly differs, the row holds our value and a comment
says why (the same differences are listed in docs/segmentation.md and docs/classification.md).
A config added to configs/cast without a row here, or without an entry in EVALUATION_ONLY,
fails ``test_every_config_has_a_row``.
"""
import inspect
import os
import os.path as osp
from typing import Any, Dict, List

import pytest
import torch.nn as nn
from helpers import REPO, TINY_ARCH, load_config
from helpers.seg import shrink_head
from mmengine.config import Config

CONFIGS = osp.join(REPO, 'configs', 'cast')

#: Configs that train nothing (hierarchy evaluation, retrieval): checked to have no train loop.
EVALUATION_ONLY = {
    'cast-b_moco-hierarchy.py', 'cast-s_moco-hierarchy.py', 'cast-b_partimagenet.py',
    'cast-s_partimagenet.py', 'cast-s_voc-retrieval.py'
}


# --------------------------------------------------------------------------- reading configs
def _plain(obj: Any) -> Any:
    """Config values as plain dicts and lists (tuples become lists)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


#: Steps that are not part of a recipe: ``cast_mm.CheckImage`` returns what ``LoadImageFromFile``
#: loads (``H x W x 3`` uint8) unchanged and only converts or refuses user-given arrays.
_NOT_RECIPE = ('cast_mm.CheckImage', )


def _transforms(pipeline: List[Dict]) -> List[Any]:
    """A pipeline as ``[type, {arguments}]`` pairs (nested pipelines likewise)."""
    out = []
    for t in pipeline:
        if t['type'] in _NOT_RECIPE:
            continue
        args = {k: v for k, v in t.items() if k != 'type'}
        if t['type'] == 'MultiView':
            args['transforms'] = [_transforms(view) for view in t['transforms']]
        elif t['type'] in ('ApplyToList', 'RandomApply'):
            args['transforms'] = _transforms(t['transforms'])
        out.append([t['type'], _plain(args)])
    return out


def _checkpoint_hooks(cfg: Config) -> List[Dict]:
    """What the checkpoint hooks keep (hook class and scope left out)."""
    hooks = [cfg.default_hooks.checkpoint]
    hooks += [h for h in cfg.get('custom_hooks', []) if h['type'].endswith('CheckpointHook')]
    return [{k: v for k, v in _plain(h).items() if k not in ('type', '_scope_')} for h in hooks]


def _reduces_zero_label(dataset: Dict) -> bool:
    """Whether a segmentation dataset config ignores label 0: its ``reduce_zero_label``, or the
    default of its dataset class (``LoadAnnotations`` takes the dataset's)."""
    if 'reduce_zero_label' in dataset:
        return dataset['reduce_zero_label']
    from mmengine.registry import DefaultScope
    from mmseg.registry import DATASETS

    import cast_mm  # noqa: F401  (registers cast_mm's datasets)
    with DefaultScope.overwrite_default_scope('mmseg'):
        dataset_cls = DATASETS.get(dataset['type'])
    for cls in dataset_cls.__mro__:
        param = inspect.signature(cls.__init__).parameters.get('reduce_zero_label')
        if '__init__' in vars(cls) and param is not None:
            return param.default
    raise AssertionError(f'{dataset["type"]} takes no reduce_zero_label')


def recipe_values(name: str) -> Dict[str, Any]:
    """The recipe values of a config, read from ``Config.fromfile`` (no model is built)."""
    cfg = load_config(name)
    model = cfg.model
    backbone = model.backbone
    loader = cfg.train_dataloader
    values = dict(
        arch=backbone.arch,
        mode=backbone.mode,
        pos_embed=backbone.get('pos_embed', 'learned'),
        num_clusters=list(backbone.get('num_clusters') or []) or None,
        backbone_norm=backbone.get('norm_cfg', dict(type='BN'))['type'],
        drop_path=backbone.get('drop_path_rate', 0.),
        mask_padding=backbone.get('mask_padding', False),
        init=None if backbone.get('init_cfg') is None else
        {k: v for k, v in _plain(backbone.init_cfg).items() if k != 'checkpoint'},
        optimizer=_plain(cfg.optim_wrapper.optimizer),
        optim_wrapper=cfg.optim_wrapper.get('type', 'OptimWrapper'),
        paramwise=_plain(cfg.optim_wrapper.get('paramwise_cfg')),
        schedule=_plain(cfg.param_scheduler),
        length=cfg.train_cfg.get('max_iters', cfg.train_cfg.get('max_epochs')),
        batch_per_gpu=loader.batch_size,
        base_batch=cfg.auto_scale_lr.base_batch_size,
        drop_last=loader.get('drop_last', False),
        train_pipeline=_transforms(loader.dataset.pipeline),
        mean=list(model.get('data_preprocessor', cfg.get('data_preprocessor', {})).get('mean')),
        std=list(model.get('data_preprocessor', cfg.get('data_preprocessor', {})).get('std')),
        checkpoints=_checkpoint_hooks(cfg),
    )
    if 'decode_head' in model:  # mmseg
        head = model.decode_head
        values.update(
            head=head.type,
            head_norm=head.get('norm_cfg', {}).get('type'),
            decoder_dropout=head.get('dropout', head.get('dropout_ratio')),
            loss=_plain(head.loss_decode),
            ignore_index=head.get('ignore_index', 255),  # mmseg's default
            test_cfg=_plain(model.test_cfg),
            window_superpixels=_plain(model.get('window_superpixels')),
            test_pipeline=_transforms(cfg.test_dataloader.dataset.pipeline),
            reduce_zero_label=[_reduces_zero_label(cfg.train_dataloader.dataset),
                               _reduces_zero_label(cfg.test_dataloader.dataset)],
            find_unused_parameters=cfg.get('find_unused_parameters', False),
        )
        if backbone.get('out_type') == 'feature_maps':  # mmseg's stock heads
            values['feature_maps'] = {k: _plain(backbone[k]) for k in
                                      ('out_type', 'out_indices', 'out_strides')}
        for part in ('auxiliary_head', 'neck'):
            if model.get(part) is not None:
                values[part] = _plain(model[part])
    else:  # mmpretrain
        head = model.head
        values.update(
            classifier=model.type,
            head=head.type,
            head_init=_plain(head.get('init_cfg')),
            loss=_plain(head.loss),
            augments=_plain(model.get('train_cfg', {}).get('augments')),
            frozen_backbone=model.get('frozen_backbone', False),
        )
        if 'neck' in model and model.neck is not None:
            values['neck_norm'] = model.neck.get('norm_cfg', dict(type='SyncBN'))['type']
            values['predictor_norm'] = head.predictor.get('norm_cfg',
                                                          dict(type='SyncBN'))['type']
            values['temperature'] = head.temperature
            values['base_momentum'] = model.base_momentum
        if 'val_dataloader' in cfg and cfg.val_dataloader:
            values['val_batch'] = cfg.val_dataloader.batch_size
            values['test_pipeline'] = _transforms(cfg.val_dataloader.dataset.pipeline)
    return values


def built_values(name: str) -> Dict[str, Any]:
    """Values that only the built model shows (a tiny-width copy: the recipe is width-free)."""
    from mmengine.registry import DefaultScope

    from cast_mm.registry import MODELS
    cfg = load_config(name)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        return _built_values(cfg, MODELS)


def _built_values(cfg: Config, registry) -> Dict[str, Any]:
    from cast_mm.models import CAST
    model_cfg = cfg.model
    width = TINY_ARCH['embed_dims']
    model_cfg.backbone.arch = dict(TINY_ARCH, depths=(2, 1, 1, 1))
    model_cfg.backbone.init_cfg = None
    head = model_cfg.get('decode_head', model_cfg.get('head'))
    if 'decode_head' in model_cfg:
        for seg_head in (head, model_cfg.get('auxiliary_head')):
            if seg_head is not None:
                shrink_head(seg_head, width)
    elif 'in_channels' in head:
        head.in_channels = width
    if model_cfg.get('neck') is not None:  # MoCo projector and predictor
        model_cfg.neck.update(in_channels=width, hid_channels=64)
        head.predictor.hid_channels = 64
    model = registry.build(model_cfg)
    backbone = next(m for m in model.modules() if isinstance(m, CAST))
    norms = sorted({type(m).__name__ for m in backbone.modules()
                    if isinstance(m, nn.modules.batchnorm._BatchNorm)})
    drop_paths = [getattr(block.drop_path, 'drop_prob', 0.) for block in backbone.blocks]
    values = dict(built_backbone_norms=norms, built_max_drop_path=round(max(drop_paths), 6))
    head = getattr(model, 'decode_head', None)
    if head is not None:
        # every active dropout of the head: the mask transformer's on attention weights, after
        # the attention projection and in the MLP; the MLP heads' before their classifier
        values['built_head_dropouts'] = sorted({
            m.p for m in head.modules()
            if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0})
        values['built_loss_avg_non_ignore'] = head.loss_decode.avg_non_ignore
        values['built_head_norms'] = sorted({
            type(m).__name__ for m in head.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm)})
    return values


# ------------------------------------------------------------------------- official values
def _seg_pipeline(scale, crop, superpixels=None):
    sp = superpixels or {'preset': 'seg'}
    train = [
        ['LoadImageFromFile', {}],
        ['LoadAnnotations', {}],
        ['RandomResize', {'scale': scale, 'ratio_range': [0.5, 2.0], 'keep_ratio': True}],
        ['RandomCrop', {'crop_size': crop, 'cat_max_ratio': 0.75}],
        ['RandomFlip', {'prob': 0.5}],
        ['PhotoMetricDistortion', {}],
        # official: zero padding of the normalised crop, i.e. the mean colour before it
        ['Pad', {'size': crop, 'pad_val': {'img': [104, 116, 124], 'seg': 255}}],
        ['cast_mm.SEEDSSuperpixels', sp],
        ['cast_mm.PackSuperpixelSegInputs', {}],
    ]
    test = [
        ['LoadImageFromFile', {}],
        ['Resize', {'scale': scale, 'keep_ratio': True}],
        ['LoadAnnotations', {}],
        ['cast_mm.SEEDSSuperpixels', sp],
        ['cast_mm.PackSuperpixelSegInputs', {}],
    ]
    return train, test


_ADE_TRAIN, _ADE_TEST = _seg_pipeline([2048, 512], [512, 512])
_PC_TRAIN, _PC_TEST = _seg_pipeline([4160, 520], [480, 480])
_CE = {'type': 'CrossEntropyLoss', 'use_sigmoid': False, 'loss_weight': 1.0,
       'avg_non_ignore': True}  # torch CrossEntropyLoss(ignore_index=255): mean over labelled

#: CAST-S Segmenter on ADE20K (segm/train_cast.py, segm/config.yml, miou_cast.py).
SEGMENTER_ADE20K = dict(
    arch='small', mode='segmentation', pos_embed='learned', num_clusters=[320, 160, 80, 40],
    # official: one process, BN over the whole batch; ours: BN synchronised over the GPUs
    backbone_norm='cast_mm.MaskedSyncBN',
    drop_path=0.0,  # create_cast_deit passes no drop path to the encoder
    # ours: padded slots masked out of attention / pooling (batch invariance); official False
    mask_padding=True,
    init={'type': 'Pretrained', 'prefix': 'backbone.'},  # the official DeiT ImageNet weights
    # timm create_optimizer('sgd') is nesterov; fused: torch's one-kernel update, the same step
    # up to float rounding (tests/test_engine/test_fused_optimizers.py)
    optimizer={'type': 'SGD', 'lr': 1e-3, 'momentum': 0.9, 'nesterov': True,
               'weight_decay': 0.0, 'fused': True},
    optim_wrapper='OptimWrapper',  # fp32: train_cast.py's --amp defaults off
    paramwise=None,
    schedule=[{'type': 'PolyLR', 'eta_min': 1e-5, 'power': 0.9, 'begin': 0, 'end': 161728,
               'by_epoch': False}],
    length=161728,  # 64 epochs x ceil(20210 / 8)
    batch_per_gpu=1, base_batch=8,  # official global batch 8 in one process; 8 GPUs here
    drop_last=False,
    train_pipeline=_ADE_TRAIN, test_pipeline=_ADE_TEST,
    reduce_zero_label=[True, True],  # label 0 ('other') is ignored, train and test
    mean=[123.68, 116.28, 103.53], std=[58.4, 57.12, 57.38],
    # official: checkpoint.pth overwritten every epoch, the last one evaluated
    checkpoints=[{'by_epoch': False, 'interval': 16000, 'max_keep_ckpts': 3,
                  'save_best': 'mIoU'}],
    head='cast_mm.SuperpixelMaskTransformerHead', head_norm=None,
    decoder_dropout=0.1,  # segm/config.yml decoder.mask_transformer.dropout
    loss=_CE, ignore_index=255,
    # miou_cast.py: stride crop - 32, an image smaller than the window resized up to it
    test_cfg={'mode': 'slide', 'crop_size': [512, 512], 'stride': [480, 480],
              'resize_to_window': True},
    window_superpixels={'type': 'cast_mm.SEEDSSuperpixels', 'preset': 'seg'},
    find_unused_parameters=False,  # official True; every parameter gets a gradient here
    built_backbone_norms=['MaskedSyncBatchNorm'], built_max_drop_path=0.0,
    built_head_dropouts=[0.1], built_loss_avg_non_ignore=True, built_head_norms=[],
)
SEGMENTER_PASCAL_CONTEXT = dict(
    SEGMENTER_ADE20K,
    schedule=[{'type': 'PolyLR', 'eta_min': 1e-5, 'power': 0.9, 'begin': 0, 'end': 80128,
               'by_epoch': False}],
    length=80128,  # 256 epochs x ceil(4996 / 16)
    batch_per_gpu=2, base_batch=16,  # official global batch 16 in one process
    train_pipeline=_PC_TRAIN, test_pipeline=_PC_TEST,
    reduce_zero_label=[False, False],  # 60 classes: background is class 0
    checkpoints=[{'by_epoch': False, 'interval': 8000, 'max_keep_ckpts': 3,
                  'save_best': 'mIoU'}],
    test_cfg={'mode': 'slide', 'crop_size': [480, 480], 'stride': [448, 448],
              'resize_to_window': True},
)
_BASE = dict(arch='base')
#: The SegFormer-style hierarchy head is ours (no official counterpart): recipe otherwise official.
_HIERARCHY_HEAD = dict(head='cast_mm.HierarchyMLPHead', decoder_dropout=0.1,
                       built_head_dropouts=[0.1], built_head_norms=[])

#: mmseg's ViT-UPerNet recipe (vit_deit-s16_upernet_8xb2-160k_ade20k-512x512, its bases
#: upernet_vit-b16_ln_mln.py and vit_vit-b16_mln_upernet_8xb2-160k_ade20k-512x512.py) with
#: CAST-S in place of DeiT-S. Values are mmseg's; comments say where ours differ and why.
_UPERNET_NORM = 'cast_mm.MaskedSyncBN'  # mmseg: SyncBN, which refuses CPU tensors under gloo
UPERNET_ADE20K = dict(
    arch='small', mode='segmentation', pos_embed='learned', num_clusters=[320, 160, 80, 40],
    backbone_norm='cast_mm.MaskedSyncBN',  # CAST's stem BN, synchronised (DeiT has none)
    drop_path=0.1,  # model.backbone.drop_path_rate of the DeiT-S config
    mask_padding=True,  # ours: batch-invariant tokens, as every CAST segmentation config
    init={'type': 'Pretrained', 'prefix': 'backbone.'},  # the official DeiT CAST-S weights
    optimizer={'type': 'AdamW', 'lr': 6e-5, 'betas': [0.9, 0.999], 'weight_decay': 0.01,
               'fused': True},  # fused: torch's one-kernel update (ours)
    optim_wrapper='OptimWrapper',
    paramwise={'custom_keys': {'pos_embed': {'decay_mult': 0.0},
                               'cls_token': {'decay_mult': 0.0},
                               'norm': {'decay_mult': 0.0}}},
    schedule=[{'type': 'LinearLR', 'start_factor': 1e-6, 'by_epoch': False, 'begin': 0,
               'end': 1500},
              {'type': 'PolyLR', 'eta_min': 0.0, 'power': 1.0, 'begin': 1500, 'end': 160000,
               'by_epoch': False}],
    # 160k as the recipe's name and published 42.87 mIoU; mmseg 1.2.2's file inherits 80k
    length=160000,
    batch_per_gpu=2, base_batch=16, drop_last=False,
    # mmseg's ADE20K pipeline, plus the mean-colour pad (mmseg pads the normalised batch with
    # 0, the same colour) and SEEDS on the final crop / test image
    train_pipeline=_ADE_TRAIN, test_pipeline=_ADE_TEST,
    reduce_zero_label=[True, True],
    mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
    # mmseg: every 16k, all kept; ours keeps the last 3 and the best
    checkpoints=[{'by_epoch': False, 'interval': 16000, 'max_keep_ckpts': 3,
                  'save_best': 'mIoU'}],
    head='UPerHead', head_norm=_UPERNET_NORM, decoder_dropout=0.1,
    loss={'type': 'CrossEntropyLoss', 'use_sigmoid': False, 'loss_weight': 1.0},
    ignore_index=255, test_cfg={'mode': 'whole'}, window_superpixels=None,
    find_unused_parameters=False,
    # ours: CAST's four levels on the stride-16 grid of DeiT-S's patches (mmseg: no neck)
    feature_maps={'out_type': 'feature_maps', 'out_indices': [0, 1, 2, 3],
                  'out_strides': [16, 16, 16, 16]},
    auxiliary_head={'type': 'FCNHead', 'in_channels': 384, 'in_index': 3, 'channels': 256,
                    'num_convs': 1, 'concat_input': False, 'dropout_ratio': 0.1,
                    'num_classes': 150,
                    'norm_cfg': {'type': _UPERNET_NORM, 'requires_grad': True},
                    'align_corners': False,
                    'loss_decode': {'type': 'CrossEntropyLoss', 'use_sigmoid': False,
                                    'loss_weight': 0.4}},
    built_backbone_norms=['MaskedSyncBatchNorm'], built_max_drop_path=0.1,
    built_head_dropouts=[0.1], built_loss_avg_non_ignore=False,
    built_head_norms=['MaskedSyncBatchNorm'],
)
#: The same on Pascal Context: the data of cast-s_pascal-context.py, mmseg's 80k length.
UPERNET_PASCAL_CONTEXT = dict(
    UPERNET_ADE20K,
    schedule=[UPERNET_ADE20K['schedule'][0],
              {'type': 'PolyLR', 'eta_min': 0.0, 'power': 1.0, 'begin': 1500, 'end': 80000,
               'by_epoch': False}],
    length=80000, train_pipeline=_PC_TRAIN, test_pipeline=_PC_TEST,
    reduce_zero_label=[False, False],
    checkpoints=[{'by_epoch': False, 'interval': 8000, 'max_keep_ckpts': 3,
                  'save_best': 'mIoU'}],
    auxiliary_head=dict(UPERNET_ADE20K['auxiliary_head'], num_classes=60),
)
#: mmseg's SegformerHead (segformer_mit-b0's decoder) on the UPerNet recipe, 4/8/16/32 levels.
SEGFORMER_HEAD_ADE20K = {
    **{k: v for k, v in UPERNET_ADE20K.items() if k != 'auxiliary_head'},
    'head': 'SegformerHead',
    'feature_maps': {'out_type': 'feature_maps', 'out_indices': [0, 1, 2, 3],
                     'out_strides': [4, 8, 16, 32]},
}

_DEIT = dict(
    arch='small', mode='classification', pos_embed='learned', num_clusters=None,
    backbone_norm='BN',  # DeiT does not synchronise BN
    drop_path=0.1, mask_padding=False, init=None,
    optimizer={'type': 'AdamW', 'lr': 1e-3, 'weight_decay': 0.05, 'eps': 1e-8,
               'betas': [0.9, 0.999], 'fused': True},  # 5e-4 x 1024 / 512
    optim_wrapper='OptimWrapper',  # official autocast: use --amp
    paramwise={'flat_decay_mult': 0.0, 'custom_keys': {'.cls_token': {'decay_mult': 0.0},
                                                       '.pos_embed': {'decay_mult': 0.0}}},
    # timm cosine stepped per epoch; see docs/classification.md for its one-epoch lag
    schedule=[{'type': 'LinearLR', 'start_factor': 1e-3, 'by_epoch': True, 'begin': 0,
               'end': 5},
              {'type': 'CosineAnnealingLR', 'eta_min': 1e-5, 'by_epoch': True, 'begin': 5,
               'end': 300}],
    length=300, batch_per_gpu=128, base_batch=1024, drop_last=True,
    mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
    checkpoints=[{'interval': 1, 'max_keep_ckpts': 1, 'save_best': 'accuracy/top1',
                  'rule': 'greater'}],  # checkpoint.pth + best_checkpoint.pth
    classifier='cast_mm.SuperpixelImageClassifier', head='LinearClsHead',
    head_init={'type': 'TruncNormal', 'layer': 'Linear', 'std': 0.02},
    loss={'type': 'LabelSmoothLoss', 'label_smooth_val': 0.1, 'mode': 'original'},
    augments=[{'type': 'Mixup', 'alpha': 0.8}, {'type': 'CutMix', 'alpha': 1.0}],
    frozen_backbone=False, val_batch=192,  # 1.5 x 128
    train_pipeline=[
        ['LoadImageFromFile', {}],
        ['RandomResizedCrop', {'scale': 224, 'backend': 'pillow', 'interpolation': 'bicubic'}],
        ['RandomFlip', {'prob': 0.5, 'direction': 'horizontal'}],
        ['RandAugment', {'policies': 'timm_increasing', 'num_policies': 2, 'total_level': 10,
                         'magnitude_level': 9, 'magnitude_std': 0.5,
                         'hparams': {'pad_val': [104, 116, 124], 'interpolation': 'bicubic'}}],
        ['RandomErasing', {'erase_prob': 0.25, 'mode': 'rand', 'min_area_ratio': 0.02,
                           'max_area_ratio': 1 / 3, 'fill_color': [103.53, 116.28, 123.675],
                           'fill_std': [57.375, 57.12, 58.395]}],
        ['cast_mm.SEEDSSuperpixels', {'preset': 'deit'}],
        ['cast_mm.PackSuperpixelClsInputs', {}],
    ],
    test_pipeline=[
        ['LoadImageFromFile', {}],
        ['ResizeEdge', {'scale': 256, 'edge': 'short', 'backend': 'pillow',
                        'interpolation': 'bicubic'}],
        ['CenterCrop', {'crop_size': 224}],
        ['cast_mm.SEEDSSuperpixels', {'preset': 'deit'}],
        ['cast_mm.PackSuperpixelClsInputs', {}],
    ],
    built_backbone_norms=['BatchNorm2d'], built_max_drop_path=0.1,
)


def _moco_view(blur, solarize):
    return [
        ['RandomResizedCrop', {'scale': 224, 'crop_ratio_range': [0.08, 1.0],
                               'backend': 'pillow'}],
        ['NumpyToPIL', {'to_rgb': True}],
        ['RandomApply', {'transforms': [['torchvision/ColorJitter', {
            'brightness': 0.4, 'contrast': 0.4, 'saturation': 0.2, 'hue': 0.1}]], 'prob': 0.8}],
        ['PILToNumpy', {'to_bgr': True}],
        ['RandomGrayscale', {'prob': 0.2, 'keep_channels': True,
                             'channel_weights': [0.114, 0.587, 0.2989]}],
        ['GaussianBlur', {'magnitude_range': [0.1, 2.0], 'magnitude_std': 'inf', 'prob': blur}],
        ['Solarize', {'thr': 128, 'prob': solarize}],
        ['RandomFlip', {'prob': 0.5}],
    ]


_MOCO = dict(
    arch='small', mode='classification', pos_embed='sincos', num_clusters=None,
    backbone_norm='cast_mm.MaskedSyncBN',  # convert_sync_batchnorm on the whole model
    drop_path=0.0, mask_padding=False,
    init={'type': 'CASTMoCoV3'},  # xavier / separate-qkv uniform / cls N(0, 1e-6)
    optimizer={'type': 'AdamW', 'lr': 1.5e-4, 'weight_decay': 0.1, 'fused': True},  # x 256 / 256
    optim_wrapper='OptimWrapper',  # official GradScaler + autocast: use --amp
    paramwise=None,
    # per-iteration linear warm-up (officially from 0) and half cosine to 0
    schedule=[{'type': 'LinearLR', 'start_factor': 1e-4, 'by_epoch': True, 'begin': 0,
               'end': 10, 'convert_to_iter_based': True},
              {'type': 'CosineAnnealingLR', 'T_max': 90, 'eta_min': 0.0, 'by_epoch': True,
               'begin': 10, 'end': 100, 'convert_to_iter_based': True}],
    length=100, batch_per_gpu=32, base_batch=256, drop_last=True,
    train_pipeline=[
        ['LoadImageFromFile', {}],
        ['MultiView', {'num_views': [1, 1],
                       'transforms': [_moco_view(1.0, 0.0), _moco_view(0.1, 0.2)]}],
        ['ApplyToList', {'scatter_key': 'img', 'collate_keys': ['superpixels'],
                         'transforms': [['cast_mm.SEEDSSuperpixels', {'preset': 'moco'}]]}],
        ['cast_mm.PackSuperpixelClsInputs', {}],
    ],
    mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
    checkpoints=[{'interval': 1, 'max_keep_ckpts': 3}],  # official keeps the last
    classifier='cast_mm.SuperpixelMoCoV3', head='MoCoV3Head', head_init=None,
    loss={'type': 'CrossEntropyLoss', 'loss_weight': 0.4},  # 2 x temperature
    augments=None, frozen_backbone=False,
    neck_norm='cast_mm.MaskedSyncBN', predictor_norm='cast_mm.MaskedSyncBN',
    temperature=0.2, base_momentum=0.01,  # --moco-m 0.99 (cosine to 1)
    built_backbone_norms=['MaskedSyncBatchNorm'], built_max_drop_path=0.0,
)
_LINEAR_PROBE = dict(
    arch='small', mode='classification', pos_embed='sincos', num_clusters=None,
    backbone_norm='BN', drop_path=0.0, mask_padding=False,
    init={'type': 'Pretrained', 'prefix': 'backbone.'},
    optimizer={'type': 'SGD', 'lr': 120.0, 'momentum': 0.9, 'weight_decay': 0.0,
               'fused': True},  # 30 x 4
    optim_wrapper='OptimWrapper', paramwise=None,
    schedule=[{'type': 'CosineAnnealingLR', 'T_max': 90, 'eta_min': 0.0, 'by_epoch': True,
               'begin': 0, 'end': 90}],
    length=90, batch_per_gpu=128, base_batch=1024, drop_last=False,
    train_pipeline=[
        ['LoadImageFromFile', {}],
        ['RandomResizedCrop', {'scale': 224, 'backend': 'pillow', 'interpolation': 'bilinear'}],
        ['RandomFlip', {'prob': 0.5, 'direction': 'horizontal'}],
        ['cast_mm.SEEDSSuperpixels', {'preset': 'moco'}],
        ['cast_mm.PackSuperpixelClsInputs', {}],
    ],
    test_pipeline=[
        ['LoadImageFromFile', {}],
        ['ResizeEdge', {'scale': 256, 'edge': 'short', 'backend': 'pillow',
                        'interpolation': 'bilinear'}],
        ['CenterCrop', {'crop_size': 224}],
        ['cast_mm.SEEDSSuperpixels', {'preset': 'moco'}],
        ['cast_mm.PackSuperpixelClsInputs', {}],
    ],
    mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
    checkpoints=[{'interval': 1, 'max_keep_ckpts': 1, 'save_best': 'accuracy/top1',
                  'rule': 'greater'}],  # checkpoint.pth.tar + model_best.pth.tar
    classifier='cast_mm.SuperpixelImageClassifier', head='LinearClsHead',
    head_init={'type': 'Normal', 'layer': 'Linear', 'std': 0.01},
    loss={'type': 'CrossEntropyLoss', 'loss_weight': 1.0},
    augments=None, frozen_backbone=True, val_batch=256,
    built_backbone_norms=['BatchNorm2d'], built_max_drop_path=0.0,
)

ROWS: Dict[str, Dict[str, Any]] = {
    'cast-s_ade20k.py': SEGMENTER_ADE20K,
    'cast-s_pascal-context.py': SEGMENTER_PASCAL_CONTEXT,
    'cast-b_ade20k.py': dict(SEGMENTER_ADE20K, **_BASE),
    'cast-b_pascal-context.py': dict(SEGMENTER_PASCAL_CONTEXT, **_BASE),
    'cast-s_hierarchy-mlp-head_ade20k.py': dict(SEGMENTER_ADE20K, **_HIERARCHY_HEAD),
    'cast-s_hierarchy-mlp-head_pascal-context.py': dict(SEGMENTER_PASCAL_CONTEXT,
                                                        **_HIERARCHY_HEAD),
    'cast-b_hierarchy-mlp-head_ade20k.py': dict(SEGMENTER_ADE20K, **_HIERARCHY_HEAD, **_BASE),
    'cast-b_hierarchy-mlp-head_pascal-context.py': dict(SEGMENTER_PASCAL_CONTEXT,
                                                        **_HIERARCHY_HEAD, **_BASE),
    'cast-s_upernet_ade20k.py': UPERNET_ADE20K,
    'cast-s_upernet_pascal-context.py': UPERNET_PASCAL_CONTEXT,
    'cast-s_segformer-head_ade20k.py': SEGFORMER_HEAD_ADE20K,
    # The demo: the ADE20K recipe shrunk to a CPU (sizes, optimiser and length are the demo's).
    'cast-s_demo.py': dict(
        SEGMENTER_ADE20K, num_clusters=[32, 16, 8, 4], init=None,
        optimizer={'type': 'AdamW', 'lr': 3e-4, 'weight_decay': 0.01, 'fused': True},
        schedule=[{'type': 'PolyLR', 'eta_min': 1e-5, 'power': 0.9, 'begin': 0, 'end': 200,
                   'by_epoch': False}],
        length=200, batch_per_gpu=4,
        train_pipeline=[
            ['LoadImageFromFile', {}],
            ['LoadAnnotations', {}],
            ['RandomResize', {'scale': [160, 128], 'ratio_range': [0.75, 1.5],
                              'keep_ratio': True}],
            ['RandomCrop', {'crop_size': [128, 128], 'cat_max_ratio': 0.75}],
            ['RandomFlip', {'prob': 0.5}],
            ['PhotoMetricDistortion', {}],
            ['Pad', {'size': [128, 128], 'pad_val': {'img': [104, 116, 124], 'seg': 255}}],
            ['cast_mm.SEEDSSuperpixels', {'preset': 'seg'}],
            ['cast_mm.PackSuperpixelSegInputs', {}],
        ],
        test_pipeline=[
            ['LoadImageFromFile', {}],
            ['Resize', {'scale': [160, 128], 'keep_ratio': True}],
            ['LoadAnnotations', {}],
            ['cast_mm.SEEDSSuperpixels', {'preset': 'seg'}],
            ['cast_mm.PackSuperpixelSegInputs', {}],
        ],
        checkpoints=[{'by_epoch': False, 'interval': 200, 'max_keep_ckpts': 1,
                      'save_best': None}],
        test_cfg={'mode': 'slide', 'crop_size': [128, 128], 'stride': [96, 96],
                  'resize_to_window': True}),
    # SPML fine-tuning on VOC 2012 train+ (scripts/spml/finetune_cast.sh).
    'cast-s_voc-finetune.py': dict(
        SEGMENTER_ADE20K, pos_embed='sincos', reduce_zero_label=[False, False],
        backbone_norm='cast_mm.MaskedSyncBN',  # USE_SYNCBN=true over the 4 GPUs
        init={'type': 'Pretrained', 'prefix': 'backbone.'},  # COCO MoCo-v3, epoch 400
        optimizer={'type': 'SGD', 'lr': 3e-3, 'momentum': 0.9, 'nesterov': False,
                   'weight_decay': 1e-4, 'fused': True},
        paramwise={'bias_lr_mult': 2.0, 'bias_decay_mult': 0.0},
        schedule=[{'type': 'LinearLR', 'start_factor': 1e-3, 'by_epoch': False, 'begin': 0,
                   'end': 100},
                  {'type': 'PolyLR', 'eta_min': 0.0, 'power': 0.9, 'begin': 100,
                   'end': 30000, 'by_epoch': False}],
        length=30000, batch_per_gpu=1, base_batch=4,
        train_pipeline=[
            ['LoadImageFromFile', {}],
            ['LoadAnnotations', {}],
            ['RandomResize', {'scale': [500, 500], 'ratio_range': [0.5, 1.5],
                              'keep_ratio': True}],
            ['RandomCrop', {'crop_size': [512, 512]}],
            ['RandomFlip', {'prob': 0.5}],
            ['Pad', {'size': [512, 512], 'pad_val': {'img': [104, 116, 124], 'seg': 255}}],
            ['cast_mm.SEEDSSuperpixels', {'preset': 'seg', 'num_superpixels': 1024}],
            ['cast_mm.PackSuperpixelSegInputs', {}],
        ],
        test_pipeline=[
            ['LoadImageFromFile', {}],
            ['Resize', {'scale': [512, 512], 'keep_ratio': True}],
            ['LoadAnnotations', {}],
            ['cast_mm.SEEDSSuperpixels', {'preset': 'seg', 'num_superpixels': 1024}],
            ['cast_mm.PackSuperpixelSegInputs', {}],
        ],
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
        checkpoints=[{'by_epoch': False, 'interval': 3000, 'max_keep_ckpts': 3,
                      'save_best': 'mIoU'}],
        head='cast_mm.SegmentMLPHead', head_norm='cast_mm.MaskedSyncBN',
        decoder_dropout=None, test_cfg={'mode': 'whole'},
        built_head_dropouts=[], built_head_norms=['MaskedSyncBatchNorm']),
    'cast-s_8xb128_in1k.py': _DEIT,
    'cast-sd_8xb128_in1k.py': dict(_DEIT, arch='small-deep'),
    'cast-b_8xb128_in1k.py': dict(_DEIT, arch='base'),
    'cast-bd_8xb128_in1k.py': dict(_DEIT, arch='base-deep'),
    'cast-s_mocov3-100e_8xb32_in1k.py': _MOCO,
    'cast-sd_mocov3-100e_8xb32_in1k.py': dict(_MOCO, arch='small-deep'),
    'cast-b_mocov3-100e_8xb32_in1k.py': dict(_MOCO, arch='base'),
    # COCO: cast_seg_small_pretrain, 400 epochs (40 warm-up).
    'cast-s_mocov3-400e_8xb32_coco.py': dict(
        _MOCO, mode='segmentation', num_clusters=[64, 32, 16, 8],
        schedule=[{'type': 'LinearLR', 'start_factor': 1e-4, 'by_epoch': True, 'begin': 0,
                   'end': 40, 'convert_to_iter_based': True},
                  {'type': 'CosineAnnealingLR', 'T_max': 360, 'eta_min': 0.0,
                   'by_epoch': True, 'begin': 40, 'end': 400,
                   'convert_to_iter_based': True}],
        length=400,
        # every 50th epoch kept, as the script's `mv checkpoint_0*99 checkpoint_0*49`
        checkpoints=[{'interval': 50, 'max_keep_ckpts': -1},
                     {'interval': 1, 'max_keep_ckpts': 1,
                      'filename_tmpl': 'latest_epoch_{}.pth'}]),
    'cast-s_mocov3-100e-pre_8xb128-linear-probe-90e_in1k.py': _LINEAR_PROBE,
    'cast-sd_mocov3-100e-pre_8xb128-linear-probe-90e_in1k.py': dict(_LINEAR_PROBE,
                                                                    arch='small-deep'),
    'cast-b_mocov3-100e-pre_8xb128-linear-probe-90e_in1k.py': dict(_LINEAR_PROBE,
                                                                   arch='base'),
}


def _config_names() -> List[str]:
    return sorted(n for n in os.listdir(CONFIGS) if n.endswith('.py'))


def test_every_config_has_a_row():
    """The coverage check: every config is built here, a training config by
    test_built_model_matches_the_official_recipe (its row), an evaluation-only config by
    test_evaluation_only_config_builds; a config in neither fails."""
    names = set(_config_names())
    missing = names - set(ROWS) - EVALUATION_ONLY
    assert not missing, f'configs without an official-recipe row in ROWS (this file): ' \
                        f'{sorted(missing)}'
    assert not (set(ROWS) | EVALUATION_ONLY) - names, 'rows for configs that do not exist'
    for name in EVALUATION_ONLY:
        cfg = load_config(name)
        assert 'train_dataloader' not in cfg and 'optim_wrapper' not in cfg, \
            f'{name} trains: give it a row in ROWS'


def _compare(name: str, got: Dict[str, Any], want: Dict[str, Any]) -> None:
    wrong = {k: (got.get(k, '<absent>'), want.get(k, '<no row value>'))
             for k in sorted(set(got) | set(want))
             if _plain(got.get(k, '<absent>')) != _plain(want.get(k, '<no row value>'))}
    assert not wrong, f'{name}: (config, official) differ for ' + '; '.join(
        f'{k}: {g!r} != {w!r}' for k, (g, w) in wrong.items())


@pytest.mark.parametrize('name', sorted(ROWS))
def test_config_matches_the_official_recipe(name):
    want = {k: v for k, v in ROWS[name].items() if not k.startswith('built_')}
    _compare(name, recipe_values(name), want)


@pytest.mark.parametrize('name', sorted(ROWS))
def test_built_model_matches_the_official_recipe(name):
    want = {k: v for k, v in ROWS[name].items() if k.startswith('built_')}
    _compare(name, built_values(name), want)


@pytest.mark.parametrize('name', sorted(EVALUATION_ONLY))
def test_evaluation_only_config_builds(name):
    from mmengine.registry import DefaultScope

    from cast_mm.models import CAST
    from cast_mm.registry import MODELS
    cfg = load_config(name)
    if 'backbone' in cfg.model:  # a segmentor or classifier; else the bare backbone
        cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'cast_mm')):
        model = MODELS.build(cfg.model)
    assert any(isinstance(m, CAST) for m in model.modules()), f'{name} builds no CAST'

"""Shrinking the segmentation configs for CPU tests, and tiny datasets in mmseg layouts."""
import os
import os.path as osp
from typing import Dict, List, Optional

import cv2
import numpy as np
from mmengine.config import Config

from cast_mm.datasets import generate_demo_ade20k
from . import CONFIGS, TINY_ARCH, TINY_CLUSTERS, load_config


def _trains_a_segmentor(name: str) -> bool:
    cfg = load_config(name)
    return 'train_dataloader' in cfg and cfg.model.type.endswith('SuperpixelEncoderDecoder')


#: Every segmentation training config shipped in configs/cast, found by what it builds (not by
#: its name), so a new one is trained by the parametrised tests without a list to extend.
SEG_CONFIGS = sorted(name for name in os.listdir(CONFIGS)
                     if name.endswith('.py') and _trains_a_segmentor(name))
#: Crop size of the shrunk configs.
CROP = 64


def make_ade20k(root: str) -> str:
    """A tiny ADE20K-layout dataset (64 x 80 images, 4 train / 2 val)."""
    return generate_demo_ade20k(root, num_train=4, num_val=2, size=(64, 80), seed=1)


def _make_voc_style(root: str, label_dirs: Dict[str, str], list_dir: str,
                    num_classes: int) -> str:
    """JPEGImages + per-split label folders + split lists, as the VOC family stores data."""
    rng = np.random.default_rng(2)
    for sub in ['JPEGImages', list_dir, *label_dirs.values()]:
        os.makedirs(osp.join(root, sub), exist_ok=True)
    for split, label_dir in label_dirs.items():
        names = []
        for i in range(4 if split != 'val' else 2):
            name = f'2008_{split}{i:04d}'
            labels = np.zeros((64, 80), np.uint8)
            labels[:, 40:] = rng.integers(1, num_classes)
            labels[20:40, 10:30] = rng.integers(1, num_classes)
            image = (labels[..., None] * np.array([3, 7, 11]) % 256).astype(np.uint8)
            image = cv2.add(image, rng.integers(0, 20, image.shape, dtype=np.uint8))
            cv2.imwrite(osp.join(root, 'JPEGImages', name + '.jpg'), image)
            cv2.imwrite(osp.join(root, label_dir, name + '.png'), labels)
            names.append(name)
        with open(osp.join(root, list_dir, split + '.txt'), 'w') as f:
            f.write('\n'.join(names) + '\n')
    return root


def make_pascal_context(root: str) -> str:
    """A tiny dataset in Pascal Context's on-disk layout (labels 0..59)."""
    return _make_voc_style(root, dict(train='SegmentationClassContext',
                                      val='SegmentationClassContext'),
                           'ImageSets/SegmentationContext', 60)


def make_voc12_aug(root: str) -> str:
    """A tiny VOC 2012 + SBD layout: train+ in SegmentationClassAug, val in SegmentationClass."""
    return _make_voc_style(root, dict(aug='SegmentationClassAug', val='SegmentationClass'),
                           'ImageSets/Segmentation', 21)


def _shrink_pipeline(pipeline: List[Dict]) -> None:
    for transform in pipeline:
        kind = transform['type']
        if kind == 'RandomResize':
            transform.update(scale=(80, 64), ratio_range=(0.9, 1.1))
        elif kind == 'Resize' and 'scale' in transform:
            transform['scale'] = (80, 64)
        elif kind == 'RandomCrop':
            transform['crop_size'] = (CROP, CROP)
        elif kind == 'Pad':
            transform['size'] = (CROP, CROP)


def shrink_head(head: Dict, width: int) -> None:
    """A decode head config made ``width`` wide, in place: every input (a list of them for
    multi-level heads) and the hidden channels."""
    in_channels = head.get('in_channels')
    head.update(in_channels=[width] * len(in_channels)
                if isinstance(in_channels, (list, tuple)) else width, channels=width)
    if 'num_heads' in head:
        head.num_heads = 4


def shrink_seg_config(cfg: Config, work_dir: str, data_root: Optional[str] = None,
                      iters: int = 2) -> Config:
    """Reduce a segmentation config to a tiny CAST and 64-pixel crops, in place."""
    cfg.work_dir = work_dir
    model = cfg.model
    model.backbone.update(arch=TINY_ARCH, num_clusters=TINY_CLUSTERS, init_cfg=None,
                          pool_num_heads=4, img_size=CROP)
    for head in (model.decode_head, model.get('auxiliary_head')):
        if head is not None:
            shrink_head(head, TINY_ARCH['embed_dims'])
    model.data_preprocessor.size = (CROP, CROP)
    model.test_cfg.update(crop_size=(CROP, CROP), stride=(48, 48))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader_cfg = cfg[loader]
        loader_cfg.update(num_workers=0, persistent_workers=False)
        if data_root is not None:
            loader_cfg.dataset.data_root = data_root
        _shrink_pipeline(loader_cfg.dataset.pipeline)
    if 'test_pipeline' in cfg:  # what mmseg.apis.inference_model runs
        _shrink_pipeline(cfg.test_pipeline)
    cfg.train_dataloader.batch_size = 2
    cfg.train_cfg.update(max_iters=iters, val_interval=iters)
    cfg.param_scheduler = [dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=0, end=iters,
                                by_epoch=False)]
    cfg.default_hooks.checkpoint.update(interval=iters, save_best=None)
    cfg.default_hooks.logger.interval = 1
    cfg.env_cfg.cudnn_benchmark = False
    return cfg


def model_and_batch(cfg: Config) -> tuple:
    """The model of ``cfg`` and one preprocessed training batch, built in the config's scope as
    a runner builds them (without the rest of a runner)."""
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner

    from cast_mm.registry import MODELS
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
        batch = next(iter(Runner.build_dataloader(cfg.train_dataloader)))
    return model, model.data_preprocessor(batch, True)


def dataset_root_for(config_name: str, tmp_path) -> Optional[str]:
    """Write the tiny dataset a config needs; None for the self-generating demo config."""
    if 'demo' in config_name:
        return str(tmp_path / 'demo_ade20k')
    if 'pascal-context' in config_name:
        return make_pascal_context(str(tmp_path / 'VOC2010'))
    if 'voc' in config_name:
        return make_voc12_aug(str(tmp_path / 'VOC2012'))
    return make_ade20k(str(tmp_path / 'ade'))

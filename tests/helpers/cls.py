"""Shrinking the mmpretrain configs for CPU tests, and a tiny ImageNet layout."""
import cv2
import numpy as np
from mmengine.config import Config

from . import TINY_CLUSTERS, load_config

#: The tiny CAST of the classification configs (3 heads: the MoCo-v3 pooling's head count).
TINY_CLS_ARCH = dict(embed_dims=48, depths=(1, 1, 1, 1), num_heads=3)
#: Crop size of the shrunk configs.
CLS_SIZE = 64


def make_image_folder(root, splits=('train', 'val'), per_class: int = 3):
    """``<split>/`` folders of two class folders (``n0001``, ``n0002``) of ``per_class``
    80 x 96 JPEGs each, as mmpretrain's ``CustomDataset`` reads them; returns ``root``."""
    rng = np.random.default_rng(0)
    for split in splits:
        for label, name in enumerate(['n0001', 'n0002']):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                img = rng.integers(0, 60, (80, 96, 3), dtype=np.uint8)
                img[:, :48] += np.uint8(120 * label + 40 * i)  # some structure for SEEDS
                cv2.imwrite(str(folder / f'{i}.jpg'), img)
    return root


def shrink_cls_pipeline(node):
    """Replace the 224 / 256 px sizes of a pipeline by 64 / 72 px, recursively."""
    if isinstance(node, dict):
        out = {k: shrink_cls_pipeline(v) for k, v in node.items()}
        if out.get('scale') == 224 or out.get('crop_size') == 224:
            out.update({k: CLS_SIZE for k in ('scale', 'crop_size') if k in out})
        elif out.get('scale') == 256:
            out['scale'] = CLS_SIZE + 8
        return out
    if isinstance(node, (list, tuple)):
        return type(node)(shrink_cls_pipeline(v) for v in node)
    return node


def tiny_cls_config(name: str, root, work_dir, **model) -> Config:
    """The named config of configs/cast/ with a tiny model and the image folder ``root``
    (:func:`make_image_folder`); ``model`` is merged into the model config."""
    cfg = load_config(name)
    cfg.work_dir = str(work_dir)
    cfg.merge_from_dict(dict(model=dict(backbone=dict(
        num_clusters=TINY_CLUSTERS, img_size=CLS_SIZE, pool_num_heads=3), **model)))
    cfg.model.backbone.arch = TINY_CLS_ARCH
    if cfg.model.backbone.get('init_cfg') is not None:
        cfg.model.backbone.init_cfg = None
    splits = [('train_dataloader', 'train')]
    if 'val_dataloader' in cfg:
        splits.append(('val_dataloader', 'val'))
    for key, split in splits:
        loader = cfg[key]
        loader.update(batch_size=2, num_workers=0, persistent_workers=False)
        dataset = dict(type='CustomDataset', data_root=str(root), data_prefix=split,
                       pipeline=shrink_cls_pipeline(loader.dataset.pipeline))
        if key == 'train_dataloader' and cfg.model.type.endswith('MoCoV3'):
            dataset['with_label'] = False
        loader.dataset = dataset
    if 'val_dataloader' in cfg:
        cfg.test_dataloader = cfg.val_dataloader
        cfg.val_evaluator = cfg.test_evaluator = dict(type='Accuracy', topk=(1, ))
    cfg.train_cfg.max_epochs = 1
    cfg.param_scheduler = []
    cfg.default_hooks.logger.interval = 1
    cfg.log_level = 'WARNING'
    cfg.randomness = dict(seed=0)
    return cfg

"""Downstream configs inherit ours: relative paths, ``cast_mm::`` and mmseg bases."""
import os
import os.path as osp
import subprocess
import sys

import pytest
from helpers import REPO, TINY_ARCH, TINY_CLUSTERS, cpu_training_env
from helpers.seg import CONFIGS, make_ade20k
from mmengine.config import Config
from mmengine.runner import Runner

# What every downstream config below adds to shrink the model and data for a CPU test.
SHRINK = f"""
crop = (64, 64)
model = dict(
    data_preprocessor=dict(size=crop),
    backbone=dict(arch=dict(_delete_=True, **{TINY_ARCH!r}), num_clusters={TINY_CLUSTERS!r},
                  init_cfg=None, pool_num_heads=4, img_size=64),
    decode_head=dict(num_classes=3, in_channels=48, channels=48, num_heads=4),
    test_cfg=dict(mode='slide', crop_size=crop, stride=(48, 48)))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomCrop', crop_size=crop),
    dict(type='Pad', size=crop, pad_val=dict(img=0, seg=255)),
    dict(type='cast_mm.SEEDSSuperpixels', preset='seg'),
    dict(type='cast_mm.PackSuperpixelSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='cast_mm.PackSuperpixelSegInputs'),
]
metainfo = dict(classes=('building', 'sky', 'floor'))
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=DATA_ROOT, metainfo=metainfo,
                                     pipeline=train_pipeline))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=DATA_ROOT, metainfo=metainfo,
                                   pipeline=test_pipeline))
test_dataloader = val_dataloader
train_cfg = dict(max_iters=2, val_interval=2)
param_scheduler = [dict(type='PolyLR', power=0.9, begin=0, end=2, by_epoch=False)]
default_hooks = dict(checkpoint=dict(interval=2, save_best=None), logger=dict(interval=1))
"""

MMSEG_BASES = """
_base_ = ['mmseg::_base_/datasets/ade20k.py', 'mmseg::_base_/default_runtime.py',
          'mmseg::_base_/schedules/schedule_160k.py']
custom_imports = dict(imports=['cast_mm'], allow_failed_imports=False)
model = dict(
    type='cast_mm.SuperpixelEncoderDecoder',
    data_preprocessor=dict(type='cast_mm.SuperpixelSegDataPreProcessor',
                           mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                           bgr_to_rgb=True, pad_val=0, seg_pad_val=255),
    backbone=dict(type='cast_mm.CAST', mode='segmentation', mask_padding=True),
    decode_head=dict(type='cast_mm.SuperpixelMaskTransformerHead', dropout=0.1,
                     loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0)),
    train_cfg=dict(), test_cfg=dict(mode='slide'))
"""


def _downstream(tmp_path, base_line: str, name: str = 'my_cast.py') -> str:
    root = make_ade20k(str(tmp_path / 'my_data'))
    path = tmp_path / 'configs' / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(f'{base_line}\nDATA_ROOT = {root!r}\n{SHRINK}')
    return str(path)


def without_scopes(node):
    """A config dict without the ``_scope_`` keys MMEngine adds to package bases."""
    if isinstance(node, dict):
        return {k: without_scopes(v) for k, v in node.items() if k != '_scope_'}
    if isinstance(node, (list, tuple)):
        return type(node)(without_scopes(v) for v in node)
    return node


def test_relative_and_package_bases_inherit_the_same_recipe(tmp_path):
    relative = osp.relpath(osp.join(CONFIGS, 'cast-s_ade20k.py'), tmp_path / 'configs')
    by_path = Config.fromfile(_downstream(tmp_path, f'_base_ = [{relative!r}]'))
    assert by_path.model.decode_head.num_classes == 3
    assert by_path.train_dataloader.dataset.data_root.endswith('my_data')
    assert by_path.optim_wrapper.optimizer.nesterov  # the rest of the recipe is inherited
    by_package = Config.fromfile(_downstream(
        tmp_path, "_base_ = ['cast_mm::cast/cast-s_ade20k.py']", name='by_package.py'))
    assert by_package.model.type == 'cast_mm.SuperpixelEncoderDecoder'
    # The same config, but for the registry scope MMEngine notes on what a package base
    # brings (the package base is trained below, by the train tool).
    assert without_scopes(by_package.to_dict()) == by_path.to_dict()
    assert without_scopes(by_package.to_dict()) != by_package.to_dict()


@pytest.mark.slow
def test_package_base_trains_with_the_train_tool(tmp_path):
    """README's "your own data": a config inheriting ``cast_mm::cast/cast-s_ade20k.py``,
    trained by ``tools/train.py`` (the tool's subprocess smoke test)."""
    config = _downstream(tmp_path, "_base_ = ['cast_mm::cast/cast-s_ade20k.py']")
    done = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'train.py'), config, '--work-dir',
         str(tmp_path / 'work')], capture_output=True, text=True, cwd=str(tmp_path),
        timeout=600, env=cpu_training_env())
    assert done.returncode == 0, done.stderr[-4000:]
    assert (tmp_path / 'work' / 'iter_2.pth').exists()


@pytest.mark.slow
def test_mmseg_bases_with_cast_mm_types_train(tmp_path):
    config = _downstream(tmp_path, "_base_ = ['./cast_on_mmseg_bases.py']")
    (tmp_path / 'configs' / 'cast_on_mmseg_bases.py').write_text(MMSEG_BASES)
    cfg = Config.fromfile(config)
    assert cfg.model.backbone.type == 'cast_mm.CAST' and cfg.model.backbone.mask_padding
    assert cfg.train_dataloader.dataset.type == 'ADE20KDataset'
    cfg.work_dir = str(tmp_path / 'work')
    Runner.from_cfg(cfg).train()
    assert (tmp_path / 'work' / 'iter_2.pth').exists()


def test_unknown_package_base_is_a_clear_error(tmp_path):
    path = tmp_path / 'bad.py'
    path.write_text("_base_ = ['cast_mm::cast/no-such-config.py']\n")
    with pytest.raises(FileNotFoundError, match='no-such-config'):
        Config.fromfile(str(path))


#: A downstream config on mmseg's UPerNet recipe: other classes, shrunk as :data:`SHRINK`.
UPERNET_DOWNSTREAM = f"""
_base_ = ['cast_mm::cast/cast-s_upernet_ade20k.py']
crop = (64, 64)
model = dict(
    data_preprocessor=dict(size=crop),
    backbone=dict(arch=dict(_delete_=True, **{TINY_ARCH!r}), num_clusters={TINY_CLUSTERS!r},
                  init_cfg=None, pool_num_heads=4, img_size=64),
    decode_head=dict(num_classes=3, in_channels=[48] * 4, channels=48),
    auxiliary_head=dict(num_classes=3, in_channels=48, channels=48))
""" + SHRINK[SHRINK.index('train_pipeline = ['):].replace(  # whole-image test: SEEDS too
    "    dict(type='LoadAnnotations', reduce_zero_label=True),\n"
    "    dict(type='cast_mm.PackSuperpixelSegInputs'),",
    "    dict(type='LoadAnnotations', reduce_zero_label=True),\n"
    "    dict(type='cast_mm.SEEDSSuperpixels', preset='seg'),\n"
    "    dict(type='cast_mm.PackSuperpixelSegInputs'),")


@pytest.mark.slow
def test_upernet_config_inherited_with_other_classes_trains_on_two_processes(tmp_path):
    """tools/dist_train.sh CONFIG 2 (gloo on CPU) on a config inheriting the UPerNet recipe."""
    from helpers import free_port
    root = make_ade20k(str(tmp_path / 'my_data'))
    config = tmp_path / 'my_upernet.py'
    config.write_text(f'DATA_ROOT = {root!r}\n{UPERNET_DOWNSTREAM}')
    cfg = Config.fromfile(str(config))
    assert cfg.model.decode_head.type == 'UPerHead' and cfg.model.decode_head.num_classes == 3
    assert cfg.model.auxiliary_head.num_classes == 3
    assert cfg.test_dataloader.dataset.pipeline[2].type == 'cast_mm.SEEDSSuperpixels'
    env = dict(os.environ, PORT=str(free_port()), OMP_NUM_THREADS='1', PYTHON=sys.executable,
               MAX_RESTARTS='0')
    done = subprocess.run(['bash', osp.join(REPO, 'tools', 'dist_train.sh'), str(config), '2',
                           '--work-dir', str(tmp_path / 'work')], capture_output=True,
                          text=True, env=env, cwd=str(tmp_path), timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    log = next((tmp_path / 'work').glob('*/*.log')).read_text()
    assert 'Distributed training: True' in log and 'GPU number: 2' in log
    assert (tmp_path / 'work' / 'iter_2.pth').exists()

"""Every segmentation config trains, evaluates, resumes and runs distributed (tiny CAST, CPU)."""
import math
import os.path as osp
import sys
from typing import Optional

import pytest
from helpers import REPO, cpu_training_env, free_port, load_config, run_checked
from helpers.seg import SEG_CONFIGS, dataset_root_for, make_ade20k, shrink_seg_config
from mmengine.config import Config
from mmengine.runner import Runner


def test_all_segmentation_configs_are_covered():
    expected = {
        'cast-s_ade20k.py', 'cast-s_pascal-context.py', 'cast-s_hierarchy-mlp-head_ade20k.py',
        'cast-s_hierarchy-mlp-head_pascal-context.py', 'cast-b_ade20k.py',
        'cast-b_pascal-context.py', 'cast-b_hierarchy-mlp-head_ade20k.py',
        'cast-b_hierarchy-mlp-head_pascal-context.py', 'cast-s_upernet_ade20k.py',
        'cast-s_upernet_pascal-context.py', 'cast-s_segformer-head_ade20k.py', 'cast-s_demo.py',
        'cast-s_voc-finetune.py'
    }
    assert expected <= set(SEG_CONFIGS)


def test_official_recipe_numbers():
    cfg = load_config('cast-s_ade20k.py')
    assert cfg.optim_wrapper.optimizer == dict(type='SGD', lr=1e-3, momentum=0.9, nesterov=True,
                                               weight_decay=0., fused=True)
    assert cfg.param_scheduler[0].power == 0.9 and cfg.param_scheduler[0].eta_min == 1e-5
    assert cfg.train_cfg.max_iters == 161728 and cfg.train_dataloader.batch_size == 1
    assert cfg.model.test_cfg == dict(mode='slide', crop_size=(512, 512), stride=(480, 480),
                                      resize_to_window=True)
    assert cfg.model.backbone.drop_path_rate == 0. and cfg.model.decode_head.dropout == 0.1
    assert cfg.model.backbone.init_cfg.checkpoint == (
        'https://huggingface.co/twke/CAST/resolve/main/snapshots/deit/imagenet1k/cast_small/'
        'best_checkpoint.pth')
    ctx = load_config('cast-s_pascal-context.py')
    assert ctx.model.decode_head.num_classes == 60
    assert ctx.train_cfg.max_iters == 80128 and ctx.train_dataloader.batch_size == 2
    assert ctx.model.test_cfg == dict(mode='slide', crop_size=(480, 480), stride=(448, 448),
                                      resize_to_window=True)
    assert ctx.train_dataloader.dataset.type == 'PascalContextDataset'


def cast_s_twin(name: str) -> Optional[str]:
    """The CAST-S config a CAST-B config is built on (the same recipe, a wider model)."""
    twin = name.replace('cast-b_', 'cast-s_', 1)
    return twin if name.startswith('cast-b_') and twin in SEG_CONFIGS else None


#: The configs trained below: one per distinct tiny model. A CAST-B config shrinks to its
#: CAST-S twin's tiny model (test_cast_b_config_shrinks_to_its_cast_s_twin), and the demo
#: config is trained until it learns (test_readme.py).
TRAINED = [name for name in SEG_CONFIGS if cast_s_twin(name) is None and 'demo' not in name]


def flatten(node, prefix: str = '') -> dict:
    """A nested config as ``{'model.backbone.arch': value, ...}``."""
    if not isinstance(node, dict):
        return {prefix: node}
    flat = {}
    for key, value in node.items():
        flat.update(flatten(value, f'{prefix}.{key}' if prefix else key))
    return flat


@pytest.mark.parametrize('name', [name for name in SEG_CONFIGS if cast_s_twin(name)])
def test_cast_b_config_shrinks_to_its_cast_s_twin(name, tmp_path):
    """The CAST-B config differs from its CAST-S twin only in the width of the model (what the
    recipe test pins) and the weights it starts from, so the twin's training covers it."""
    cfg, twin = (load_config(n) for n in (name, cast_s_twin(name)))
    mine, theirs = flatten(cfg.to_dict()), flatten(twin.to_dict())
    missing = object()
    differences = {key for key in mine.keys() | theirs.keys()
                   if mine.get(key, missing) != theirs.get(key, missing)}
    assert differences <= {'model.backbone.arch', 'model.backbone.init_cfg.checkpoint',
                           'model.decode_head.in_channels', 'model.decode_head.channels',
                           'model.decode_head.num_heads'}, differences
    assert cfg.model.backbone.arch == 'base' and 'model.backbone.arch' in differences
    shrunk = [shrink_seg_config(c, str(tmp_path)).to_dict() for c in (cfg, twin)]
    assert shrunk[0] == shrunk[1]


def train_two_iterations_and_evaluate(name: str, tmp_path) -> Config:
    """Train the shrunk config 2 iterations; its config, for a resumption."""
    cfg = load_config(name)
    shrink_seg_config(cfg, str(tmp_path / 'work'), dataset_root_for(name, tmp_path))
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 2
    assert osp.exists(tmp_path / 'work' / 'iter_2.pth')
    # evaluated once, at the end: the score exists and is a number (a config whose evaluation
    # does not run or finds no class leaves it out or NaN); the demo is checked to learn
    assert math.isfinite(runner.message_hub.get_scalar('val/mIoU').current())
    return cfg


@pytest.mark.parametrize('name', [name for name in TRAINED if name != 'cast-s_ade20k.py'])
def test_config_trains_two_iterations_and_evaluates(name, tmp_path):
    train_two_iterations_and_evaluate(name, tmp_path)


def test_ade20k_config_trains_evaluates_and_resumes(tmp_path):
    cfg = train_two_iterations_and_evaluate('cast-s_ade20k.py', tmp_path)
    cfg.train_cfg.update(max_iters=3, val_interval=100)
    cfg.resume = True
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 3
    logs = sorted((tmp_path / 'work').glob('*/*.log'))
    assert any('resumed' in p.read_text().lower() for p in logs)


@pytest.mark.slow
def test_dist_test_two_processes_with_gloo(tmp_path):
    """tools/dist_test.sh (its subprocess smoke test) evaluates a checkpoint in two processes;
    tools/dist_train.sh is run by tests/test_tools/test_dist_train_output.py."""
    root = make_ade20k(str(tmp_path / 'ade'))
    config = tmp_path / 'tiny_ade20k.py'
    cfg = load_config('cast-s_ade20k.py')
    shrink_seg_config(cfg, str(tmp_path / 'work'), root, iters=1)
    cfg.train_cfg.val_interval = 100
    cfg.dump(str(config))
    Runner.from_cfg(cfg).train()
    checkpoint = tmp_path / 'work' / 'iter_1.pth'
    env = dict(cpu_training_env(), PORT=str(free_port()), PYTHON=sys.executable)
    run_checked(['bash', osp.join(REPO, 'tools', 'dist_test.sh'), str(config), str(checkpoint),
                 '2', '--work-dir', str(tmp_path / 'test')], env, cwd=str(tmp_path))
    test_log = next((tmp_path / 'test').glob('*/*.log')).read_text()
    assert 'Distributed training: True' in test_log and 'GPU number: 2' in test_log
    assert 'mIoU' in test_log

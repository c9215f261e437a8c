"""tools/analysis/benchmark.py builds its models from the configs and every section runs."""
import json
import math
import os.path as osp

import pytest
import torch
from conftest import REPO, import_analysis_tool


@pytest.fixture(scope='module')
def bench():
    return import_analysis_tool('benchmark')


def test_models_come_from_the_shipped_configs(bench):
    from cast_mm.models.execution_profile import LITERAL
    specs = bench.model_specs(torch.device('cpu'))
    for name, (task, config, options) in specs.items():
        if name.startswith('cast_'):
            assert osp.isfile(config) and config.startswith(osp.join(REPO, 'configs', 'cast'))
        literal = {f'model.backbone.{k}': v for k, v in LITERAL['backbone'].items()}
        is_literal = 'literal' in name
        assert all(options.get(k) == v for k, v in literal.items()) == is_literal, name
        assert (options.get('model.backbone.with_cp') is True) == name.endswith('+cp'), name
    assert specs['cast_seg_literal'][2]['model.decode_head.loss_by_superpixel'] is False
    assert specs['cast_seg_literal'][2]['model.backbone.fps_backend'] == 'dgl'
    # Overrides are applied as --cfg-options would; test_cfg is replaced, not merged.
    cfg = bench.load_config(*specs['cast_seg_literal+cp'][1:])
    assert cfg.model.backbone.with_cp is True and cfg.model.backbone.token_pooling == 'literal'
    assert dict(cfg.model.test_cfg) == dict(mode='whole')
    assert cfg.model.decode_head.num_classes == 150


def test_batches_go_through_the_config_pipeline(bench):
    bench.TASKS.update(bench.SMOKE_TASKS)
    try:
        seg = bench.make_batch('seg', bench.task_config('seg', torch.device('cpu')))
        cls = bench.make_batch('cls', bench.task_config('cls', torch.device('cpu')))
    finally:
        bench.TASKS.update(cls=(224, 8), seg=(512, 2))
    sample = seg['data_samples'][0]
    labels = sample.gt_sem_seg.data
    assert labels.shape == (1, 64, 64) and (labels == 255).any() and (labels < 150).any()
    # SEEDS preset 'seg': H * W / 256 superpixels.
    assert bench.superpixel_count(seg) == 16
    assert len(cls['inputs']) == 2 and cls['inputs'][0].shape == (3, 64, 64)
    assert 'superpixels' in cls['data_samples'][0]


@pytest.mark.slow
def test_smoke_run_of_every_model_section(bench, tmp_path, capsys):
    out = tmp_path / 'bench.json'
    rc = bench.main(['--smoke', '--no-memory', '--threads', '1', '--warmup', '0',
                     '--repeats', '1', '--sections', 'models', 'train', 'profile', 'fps',
                     '--json', str(out)])
    assert rc == 0
    results = json.loads(out.read_text())
    printed = capsys.readouterr().out
    for group, (_, names) in bench.TRAIN_GROUPS.items():
        for name in names:
            entry = results[f'train/{group}/{name}']
            assert entry['seconds'] > 0 and math.isnan(entry['peak_mib'])
    assert 'cast_seg_fast vs cast_seg_literal' in printed
    assert 'cast_cls_fast+cp vs cast_cls_literal+cp' in printed
    assert 0 < results['profile/train/cast_cls_fast']['dense_share'] <= 1
    assert results['fps/197x8']['identical'] is True
    assert results['inference/segmentation/comparison'].startswith('outputs max')


@pytest.mark.slow
def test_train_step_peak_memory_is_measured_in_a_child(bench):
    bench.TASKS.update(bench.SMOKE_TASKS)
    try:
        peak = bench.peak_memory('cast_cls_fast', 'train', torch.device('cpu'), 1)
    finally:
        bench.TASKS.update(cls=(224, 8), seg=(512, 2))
    assert peak > 2**20  # activations and gradients of CAST-S: well above a MiB

"""tools/analysis/benchmark.py builds its models from the configs and every section runs; its
JSON run record renders as the docs' tables."""
import json
import math
import os.path as osp

import pytest
import torch
from helpers import REPO, load_tool

from cast_analysis import (ModelSpec, Settings, load_config, model_specs, peak_memory, read_json,
                           superpixel_count, task_batch)


def test_models_come_from_the_shipped_configs():
    from cast_mm.models.execution_profile import LITERAL
    specs = model_specs(Settings())
    for name, spec in specs.items():
        if name.startswith('cast_'):
            assert osp.isfile(spec.config)
            assert spec.config.startswith(osp.join(REPO, 'configs', 'cast'))
        literal = {f'model.backbone.{k}': v for k, v in LITERAL['backbone'].items()}
        is_literal = 'literal' in name
        assert all(spec.options.get(k) == v for k, v in literal.items()) == is_literal, name
        assert (spec.options.get('model.backbone.with_cp') is True) == name.endswith('+cp')
    assert specs['cast_seg_literal'].options['model.decode_head.loss_by_superpixel'] is False
    assert specs['cast_seg_literal'].options['model.backbone.fps_backend'] == 'dgl'
    # Overrides are applied as --cfg-options would; test_cfg is replaced, not merged.
    spec = specs['cast_seg_literal+cp']
    cfg = load_config(spec.config, spec.options)
    assert cfg.model.backbone.with_cp is True and cfg.model.backbone.token_pooling == 'literal'
    assert dict(cfg.model.test_cfg) == dict(mode='whole')
    assert cfg.model.decode_head.num_classes == 150
    assert spec.command_line().startswith('configs/cast/cast-s_ade20k.py --cfg-options ')


def test_batches_go_through_the_config_pipeline():
    settings = Settings(smoke=True)
    seg, cls = task_batch('seg', settings), task_batch('cls', settings)
    sample = seg['data_samples'][0]
    labels = sample.gt_sem_seg.data
    assert labels.shape == (1, 64, 64) and (labels == 255).any() and (labels < 150).any()
    # SEEDS preset 'seg': H * W / 256 superpixels.
    assert superpixel_count(seg) == 16
    assert len(cls['inputs']) == 2 and cls['inputs'][0].shape == (3, 64, 64)
    assert 'superpixels' in cls['data_samples'][0]


def test_help_names_every_section(capsys):
    tool = load_tool('analysis/benchmark')
    with pytest.raises(SystemExit):
        tool.main(['--help'])
    printed = capsys.readouterr().out
    for section in ('models', 'train', 'upernet', 'loader', 'switches', 'profile', 'fps',
                    'superpixels',
                    'quality', 'compile', 'kernels', 'explorer', '--chromium'):
        assert section in printed


def test_kernels_section_tabulates_each_kernel_against_its_torch_formulation(monkeypatch):
    """The section's arithmetic and table on fabricated timings (nothing is timed)."""
    from cast_analysis import benchmark
    from cast_analysis.report import new_run
    timed = []

    def fabricated(fns, settings, options, repeats=None):
        timed.append(sorted(fns))
        return {'kernel': 0.002, 'torch': 0.0125}, None

    monkeypatch.setattr(benchmark, '_times', fabricated)
    run = new_run('benchmark', 'test', 'cpu', {})
    benchmark.section_kernels(run, Settings(smoke=True),
                              benchmark.Options(warmup=0, repeats=1, memory=False))
    assert timed == [['kernel', 'torch']] * len(benchmark.FPS_CASES)
    table, = [t for t in run['tables'] if t['section'] == 'kernels']
    for (batch, points, samples), row in zip(benchmark.FPS_CASES, table['rows']):
        assert row[0] == f'FPS {points}->{samples - 1} x{batch}'
        assert row[2:] == ['2.00', '12.50', '6.2x']
        results = run['results'][f'kernels/fps/{points}x{batch}']
        assert results == dict(kernel_ms=2.0, torch_ms=12.5)


def test_upernet_models_are_ours_and_mmseg_deit_s_on_the_same_head():
    specs = model_specs(Settings())
    cast, deit = specs['cast_s_upernet'], specs['deit_s_upernet']
    assert cast.config == osp.join(REPO, 'configs', 'cast', 'cast-s_upernet_ade20k.py')
    assert deit.config == 'mmseg::vit/vit_deit-s16_upernet_8xb2-160k_ade20k-512x512.py'
    assert cast.options == {'model.backbone.init_cfg': None}
    assert deit.options == {'model.pretrained': None}  # builds without the DeiT weights
    ours, theirs = load_config(cast.config, cast.options), load_config(deit.config, deit.options)
    for part in ('decode_head', 'auxiliary_head'):
        head = {k: v for k, v in ours.model[part].items() if k != 'norm_cfg'}
        assert head == {k: v for k, v in theirs.model[part].items() if k != 'norm_cfg'}
    assert ours.optim_wrapper.optimizer.lr == theirs.optim_wrapper.optimizer.lr


@pytest.mark.slow
def test_upernet_section_times_both_models_and_counts_their_flops():
    from cast_analysis.benchmark import Options, section_upernet
    from cast_analysis.report import new_run
    run = new_run('benchmark', 'test', 'cpu', {})
    section_upernet(run, Settings(smoke=True), Options(warmup=0, repeats=1, memory=False,
                                                       host_syncs=False))
    tables = [t for t in run['tables'] if t['section'] == 'upernet']
    assert [len(t['rows']) for t in tables] == [4, 2]
    results = run['results']
    for kind in ('train', 'test'):
        cast = results[f'upernet/{kind}/cast_s_upernet/fp32']
        deit = results[f'upernet/{kind}/deit_s_upernet/fp32']
        assert results[f'upernet/{kind}/ratios/fp32']['time'] == pytest.approx(
            cast['seconds'] / deit['seconds'])
    complexity = results['upernet/complexity/cast_s_upernet']
    assert complexity['superpixels'] == 16 and complexity['shape'] == (64, 64)
    assert results['upernet/complexity/deit_s_upernet']['flops'] > 0


def test_amp_is_refused_on_cpu(capsys):
    tool = load_tool('analysis/benchmark')
    assert tool.main(['--precision', 'amp']) == 2
    assert '--precision amp needs --device cuda' in capsys.readouterr().err


@pytest.mark.slow
def test_smoke_run_of_every_model_section_renders_from_its_json(tmp_path, capsys):
    out = tmp_path / 'bench.json'
    rc = load_tool('analysis/benchmark').main(
        ['--smoke', '--no-memory', '--threads', '1', '--warmup', '0', '--repeats', '1',
         '--sections', 'loader', 'models', 'train', 'profile', 'fps', '--json', str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    run = read_json(str(out))
    results = run['results']
    for group in ('classification', 'segmentation'):
        for name in ('literal', 'fast', 'literal+cp', 'fast+cp'):
            task = 'cls' if group == 'classification' else 'seg'
            entry = results[f'train/{group}/cast_{task}_{name}/fp32']
            assert entry['seconds'] > 0 and entry['peak_mib'] is None
    assert 'cast_seg_fast vs cast_seg_literal' in printed
    assert 'cast_cls_fast+cp vs cast_cls_literal+cp' in printed
    assert 0 < results['profile/train/cast_cls_fast']['dense_share'] <= 1
    assert results['fps/197x8']['identical'] is True
    assert results['fps/197x8']['kernel_launches'] is None  # counted on CUDA only
    assert results['inference/segmentation/comparison'].startswith('outputs max')
    assert run['command'].startswith('python tools/analysis/benchmark.py --smoke')
    assert run['machine']['cpus'] >= 1 and run['settings']['precisions'] == ['fp32']
    # Sections run in the documented order, whatever the order asked: the loader after train.
    sections = [table['section'] for table in run['tables']]
    assert sections == ['models', 'models', 'train', 'train', 'loader', 'profile', 'fps']
    # The loader row of a config the train section measured carries its train step's rate.
    ade = results['loader/cast-s_ade20k.py']
    step = results['train/segmentation/cast_seg_fast/fp32']
    assert ade['model_images_per_s'] == {'fp32': pytest.approx(1e3 / step['ms_per_image'])}
    assert ade['loader_images_per_s'] == pytest.approx(4 * 1e3 / ade['ms_per_sample'])
    assert 'cast-b_ade20k.py' in ade['configs'] and ade['samples'] == 2
    assert results['loader/cast-s_demo.py']['model_images_per_s'] is None
    loader_rows = [line for line in printed.splitlines() if line.startswith('| cast-s_ade20k')]
    assert loader_rows and loader_rows[0].rstrip(' |').endswith(
        'fp32: loader' if ade['loader_images_per_s'] < 1e3 / step['ms_per_image']
        else 'fp32: model')
    # The render command prints the same tables under the run's date, machine and command.
    rc = load_tool('analysis/render_tables').main([str(out), '--sections', 'train', 'fps'])
    assert rc == 0
    rendered = capsys.readouterr().out
    assert rendered.startswith(f'Run of {run["date"][:10]}')
    assert run['command'] in rendered and run['machine']['cpu'] in rendered
    for table in run['tables']:
        assert (table['title'] in rendered) == (table['section'] in ('train', 'fps'))
    # Every table row printed by the run is in the rendering (same cells, same layout).
    train_rows = [line for line in printed.splitlines() if line.startswith('| cast_seg_fast ')]
    assert train_rows and all(row in rendered for row in train_rows[2:])


def test_render_refuses_other_json_and_missing_sections(tmp_path, capsys):
    render = load_tool('analysis/render_tables').main
    other = tmp_path / 'other.json'
    other.write_text(json.dumps({'device': 'cpu'}))
    assert render([str(other)]) == 2
    assert 'not a run record' in capsys.readouterr().err
    from cast_analysis import Table, add_table, new_run, write_json
    run = new_run('benchmark', 'python tools/analysis/benchmark.py', 'cpu', {})
    add_table(run, Table('fps', 'farthest point sampling', ['a'], [['1']]))
    run['results']['x'] = float('nan')
    path = tmp_path / 'run.json'
    write_json(run, str(path))
    assert json.loads(path.read_text())['results']['x'] is None
    assert render([str(path), '--sections', 'train']) == 2
    assert "sections ['train'] are not in the run (it has ['fps'])" in capsys.readouterr().err


@pytest.mark.slow
def test_train_step_peak_memory_is_measured_in_a_child():
    settings = Settings(threads=1, smoke=True)
    peak = peak_memory('cast_cls_fast', 'train', settings)
    assert peak > 2**20  # activations and gradients of CAST-S: well above a MiB
    assert not math.isnan(peak)
    # A model given by its spec (the switches section's) is built in the child the same way.
    fast = model_specs(settings)['cast_cls_fast']
    spec = ModelSpec('cls', fast.config, dict(fast.options, **{'model.backbone.with_cp': True}))
    # (the name alone is no model of the benchmark: the child builds from the spec)
    assert peak_memory('cast_cls_fast with_cp', 'train', settings, spec=spec) > 2**20


@pytest.mark.slow
def test_switches_section_times_each_switch_against_the_fast_model(monkeypatch):
    from cast_analysis import benchmark
    from cast_analysis.report import new_run
    chosen = dict(cls='backbone.token_pooling', seg='decode_head.loss_by_superpixel')
    picked = {task: [s for s in benchmark.profile_switches(task) if s[0] == name]
              for task, name in chosen.items()}
    monkeypatch.setattr(benchmark, 'profile_switches', lambda task: picked[task])
    run = new_run('benchmark', 'test', 'cpu', {})
    benchmark.section_switches(run, Settings(smoke=True),
                               benchmark.Options(warmup=0, repeats=1, memory=False))
    titles = [t['title'].split(':')[0] for t in run['tables'] if t['section'] == 'switches']
    assert titles == ['classification train step', 'segmentation train step',
                      'segmentation inference']
    for key, options in (
            ('classification/train/backbone.token_pooling',
             {'model.backbone.token_pooling': 'literal'}),
            ('segmentation/train/decode_head.loss_by_superpixel',
             {'model.decode_head.loss_by_superpixel': False}),
            ('segmentation/test/decode_head.loss_by_superpixel',
             {'model.decode_head.loss_by_superpixel': False})):
        entry = run['results'][f'switches/{key}/fp32']
        assert entry['options'] == options and entry['rounds'] == 1
        assert entry['time_ratio'] == pytest.approx(entry['seconds'] / entry['fast_seconds'])
        assert entry['earns_keep'] == (entry['time_ratio'] >= benchmark.EARNS_KEEP), key
        assert entry['peak_mib'] is None or math.isnan(entry['peak_mib'])


def test_explorer_finds_chromium_on_path_or_names_the_option(tmp_path, monkeypatch, capsys):
    from cast_analysis.explorer import find_chromium
    monkeypatch.setenv('PATH', str(tmp_path))  # nothing on it yet
    assert load_tool('analysis/benchmark').main(['--sections', 'explorer']) == 2
    assert 'or pass its path with --chromium PATH' in capsys.readouterr().err
    timing = load_tool('analysis/explorer_timing').main
    assert timing([]) == 2 and '--chromium PATH' in capsys.readouterr().err
    missing = str(tmp_path / 'chrome')
    assert timing(['--chromium', missing]) == 2
    assert f'--chromium {missing}: no such executable' in capsys.readouterr().err
    browser = tmp_path / 'chromium-browser'
    browser.write_text('#!/bin/sh\n')
    browser.chmod(0o755)
    assert find_chromium() == str(browser) == find_chromium(str(browser))


def test_settings_are_explicit_and_leave_module_state_alone():
    from cast_analysis import models
    before = dict(models.TASK_SIZES)
    smoke = model_specs(Settings(smoke=True))['cast_seg_fast'].options
    assert smoke['model.backbone.num_clusters'] == (8, 4, 2, 1)
    assert 'model.backbone.num_clusters' not in model_specs(Settings())['cast_seg_fast'].options
    assert models.TASK_SIZES == before and Settings(smoke=True).task_size('seg') == (64, 1)
    assert torch.device(Settings(device='cpu').device).type == 'cpu'


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_cuda_smoke_run_measures_fp32_and_amp_memory_syncs_and_launches(tmp_path):
    out = tmp_path / 'gpu.json'
    rc = load_tool('analysis/benchmark').main(
        ['--device', 'cuda', '--smoke', '--warmup', '0', '--repeats', '1', '--sections',
         'models', 'train', 'fps', '--json', str(out)])
    assert rc == 0
    run = read_json(str(out))
    results = run['results']
    assert run['machine']['gpu'] and run['settings']['precisions'] == ['fp32', 'amp']
    for precision in ('fp32', 'amp'):
        for key in (f'train/segmentation/cast_seg_fast/{precision}',
                    f'inference/classification/cast_cls_literal/{precision}'):
            assert results[key]['peak_mib'] > 0 and results[key]['host_syncs'] >= 0
    assert results['fps/1025x2']['kernel_launches'] >= 1

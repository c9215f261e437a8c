"""cast_analysis: the literal options and switches, timing rounds, host syncs and kernel
launches."""
import pytest
import torch

from cast_analysis import (Settings, Step, count_host_syncs, interleaved_times, kernel_launches,
                           literal_cfg_options, profile_switches)
from cast_analysis.measure import host_read_counter_available

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')


def test_literal_options_per_task():
    from cast_mm.models.execution_profile import LITERAL
    cls = literal_cfg_options('cls')
    seg = literal_cfg_options('seg')
    for key, value in LITERAL['backbone'].items():
        assert cls[f'model.backbone.{key}'] == value == seg[f'model.backbone.{key}']
    assert cls['model.backbone.fps_backend'] == 'dgl'
    assert not any(key.startswith('model.decode_head') for key in cls)
    assert seg['model.decode_head.loss_by_superpixel'] is False
    assert seg['model.predict_by_segments'] is False
    with pytest.raises(ValueError, match="task must be 'cls' or 'seg'"):
        literal_cfg_options('det')


def test_profile_switches_cover_the_literal_options_one_argument_each():
    from cast_mm.models.execution_profile import FAST, LITERAL, cfg_options
    for task in ('cls', 'seg'):
        switches = profile_switches(task)
        fast, literal = cfg_options('fast', task), cfg_options('literal', task)
        changed = {key: value for key, value in literal.items() if fast.get(key) != value}
        merged = {}
        for name, value, options in switches:
            component, argument = name.split('.')
            assert LITERAL[component][argument] == value != FAST[component][argument]
            assert options and set(options.values()) == {value}
            merged.update(options)
        # Together the switches are exactly the literal profile's changes.
        assert merged == changed and len(merged) == len(switches)
    names = [name for name, _, _ in profile_switches('cls')]
    assert names and all(name.startswith('backbone.') for name in names)
    seg = {name: options for name, _, options in profile_switches('seg')}
    assert seg['decode_head.loss_by_superpixel'] == {'model.decode_head.loss_by_superpixel': False}


def test_interleaved_rounds_visit_every_function_in_turn():
    calls = []
    fns = {name: (lambda name=name: calls.append(name)) for name in 'abc'}
    medians, rounds = interleaved_times(fns, 'cpu', warmup=1, repeats=3)
    assert rounds == 3 and calls == list('abc') * 4 and set(medians) == set('abc')
    calls.clear()
    # A spent budget stops after the first timed round.
    _, rounds = interleaved_times(fns, 'cpu', warmup=0, repeats=5, max_seconds=0)
    assert rounds == 1 and calls == list('abc')


def test_host_reads_are_counted_on_cpu_where_the_counter_exists():
    x = torch.arange(4.)
    count = count_host_syncs(lambda: x.sum().item(), 'cpu')
    if host_read_counter_available():
        assert count >= 1
    else:
        assert count is None
    assert kernel_launches(lambda: x * 2, 'cpu') is None


def test_unknown_models_kinds_and_cpu_amp_are_refused():
    with pytest.raises(ValueError, match="unknown model 'vit'"):
        Step('vit', 'test', Settings(smoke=True))
    with pytest.raises(ValueError, match="kind must be 'test' or 'train'"):
        Step('cast_cls_fast', 'val', Settings(smoke=True))
    with pytest.raises(ValueError, match='amp=True needs a CUDA device'):
        Step('cast_cls_fast', 'train', Settings(smoke=True), amp=True)


@pytest.mark.gpu
@needs_cuda
def test_cuda_host_syncs_and_kernel_launches_are_counted():
    x = torch.arange(4., device='cuda')
    assert count_host_syncs(lambda: x.sum().item(), 'cuda') == 1
    assert count_host_syncs(lambda: x * 2, 'cuda') == 0
    assert kernel_launches(lambda: x * 2, 'cuda') == 1

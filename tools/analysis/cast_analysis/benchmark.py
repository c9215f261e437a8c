"""The sections of ``tools/analysis/benchmark.py``: each measures, adds tables to a run record
and returns nothing.

``models``: inference; ``train``: one optimiser step; ``upernet``: CAST-S UPerNet beside
mmseg's DeiT-S UPerNet (train step, inference, parameters and GFLOPs); ``loader``: each
training config's train pipeline on one loader worker thread, beside the train step;
``switches``: each switch of the execution profile against the fast model; ``profile``:
operator time shares; ``fps``: farthest point sampling; ``superpixels``: SEEDS and SLIC
throughput; ``quality``: superpixel quality on photo mosaics; ``compile``: ``torch.compile`` of
the classification backbone; ``kernels``: each kernel against its torch formulation;
``explorer``: the hierarchy explorer in a browser. Every
section times its configurations interleaved (:func:`interleaved_times`).
"""
import dataclasses
import math
import os
import os.path as osp
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from .batches import cast_like_points, photo_mosaic, resized_photos, superpixel_count
from .measure import (Step, count_host_syncs, cuda_peak_memory, interleaved_times, kernel_launches,
                      max_rel_diff, op_profile, peak_memory, sync)
from .models import (INFERENCE_GROUPS, TRAIN_GROUPS, UPERNET_GROUP, ModelSpec, Settings,
                     model_specs, profile_switches)
from .report import Table, add_table


@dataclasses.dataclass(frozen=True)
class Options:
    """How a benchmark run measures.

    Args:
        warmup (int): untimed rounds before the timed ones.
        repeats (int): timed rounds (median reported).
        max_seconds (float, optional): time budget of one section's timed rounds (see
            :func:`interleaved_times`); None: all ``repeats``.
        precisions (tuple): ``'fp32'`` and/or ``'amp'`` (CUDA) for the model sections.
        memory (bool): measure peak memory.
        host_syncs (bool): count host synchronisations per step.
        mosaics (int): photo mosaics per size in ``quality``.
        chromium (str, optional): the Chromium of ``explorer`` (default: found on ``PATH``).
    """
    warmup: int = 1
    repeats: int = 5
    max_seconds: Optional[float] = None
    precisions: Tuple[str, ...] = ('fp32',)
    memory: bool = True
    host_syncs: bool = True
    mosaics: int = 6
    chromium: Optional[str] = None


def _times(fns, settings: Settings, options: Options, repeats: Optional[int] = None):
    return interleaved_times(fns, settings.torch_device, options.warmup,
                             repeats or options.repeats, options.max_seconds)


def _fmt(value: Optional[float], digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return 'n/a'
    return f'{value:.{digits}f}'


def _ratio(value: float) -> str:
    return 'n/a' if math.isnan(value) else f'{value:.2f}x'


def _group_title(group: str, task: str, batch: Dict, what: str, settings: Settings) -> str:
    size, count = settings.task_size(task)
    return (f'{group} {what}: {size}x{size}, {superpixel_count(batch)} SEEDS superpixels, '
            f'batch {count}')


def _model_lines(names: Sequence[str], settings: Settings) -> List[str]:
    specs = model_specs(settings)
    return [f'`{name}`: `{specs[name].command_line()}`' for name in names]


def _variants(names: Sequence[str], options: Options) -> List[Tuple[str, str]]:
    return [(name, precision) for precision in options.precisions for name in names]


def _ratio_notes(entries: Dict, names: Sequence[str], precision: str, memory: str) -> List[str]:
    """``fast vs literal`` for every literal/fast pair, and fast CAST vs the reference."""
    notes = []
    pairs = [(names[0], names[1])] + ([(names[2], names[3])] if len(names) > 3 else [])
    tag = f' ({precision})' if precision != 'fp32' else ''
    for literal, fast in pairs:
        lit, fst = entries[(literal, precision)], entries[(fast, precision)]
        text = f'{fast} vs {literal}{tag}: {lit["seconds"] / fst["seconds"]:.2f}x faster'
        if fst['peak_mib'] and not math.isnan(fst['peak_mib']):
            text += f', {lit["peak_mib"] / fst["peak_mib"]:.2f}x less {memory}'
        notes.append(text)
    fst, ref = entries[(names[1], precision)], entries[(names[-1], precision)]
    notes.append(f'{names[1]} vs {names[-1]}{tag}: {ref["seconds"] / fst["seconds"]:.2f}x the '
                 'speed')
    return notes


def _measure_steps(kind: str, names: Sequence[str], settings: Settings, options: Options,
                   extra: Optional[Callable[[Dict], Dict]] = None, compare: bool = True):
    """Time every (model, precision) of a group interleaved; then memory and host syncs (and,
    for inference with ``compare``, how the first two models' outputs differ)."""
    variants = _variants(names, options)
    steps = {v: Step(v[0], kind, settings, amp=v[1] == 'amp') for v in variants}
    fns = {v: step for v, step in steps.items()}
    if extra is not None:
        fns.update(extra(steps))
    times, rounds = _times(fns, settings, options)
    syncs = {v: count_host_syncs(step, settings.device) if options.host_syncs else None
             for v, step in steps.items()}
    batch = steps[variants[1]].batch
    comparison = None
    if kind == 'test' and compare:
        first = options.precisions[0]
        comparison = compare_paths(steps[(names[0], first)], steps[(names[1], first)])
    memory = {v: float('nan') for v in variants}
    if options.memory and settings.torch_device.type == 'cuda':
        memory = {v: cuda_peak_memory(step) for v, step in steps.items()}
    del steps, fns
    if options.memory and settings.torch_device.type != 'cuda':  # a child process each
        memory = {v: peak_memory(v[0], kind, settings) for v in variants}
    return variants, times, rounds, syncs, memory, batch, comparison


def _segment_token_fns(steps: Dict) -> Dict:
    first = next(iter(steps))[1]  # the first precision measured
    return {f'tokens_{kind}': SegmentTokens(steps[(f'cast_seg_{kind}', first)])
            for kind in ('literal', 'fast')}


def section_models(run: Dict, settings: Settings, options: Options) -> None:
    """Inference: ``model.predict`` of the preprocessed batch."""
    for group, (task, names) in INFERENCE_GROUPS.items():
        extra = _segment_token_fns if task == 'seg' else None
        variants, times, rounds, syncs, memory, batch, comparison = _measure_steps(
            'test', names, settings, options, extra)
        count = settings.task_size(task)[1]
        rows, entries = [], {}
        for name, precision in variants:
            seconds = times[(name, precision)]
            entry = dict(images_per_s=count / seconds, ms_per_image=seconds * 1e3 / count,
                         seconds=seconds, peak_mib=memory[(name, precision)] / 2**20,
                         host_syncs=syncs[(name, precision)])
            entries[(name, precision)] = entry
            run['results'][f'inference/{group}/{name}/{precision}'] = entry
            rows.append([name, precision, _fmt(entry['images_per_s'], 2),
                         _fmt(entry['ms_per_image']), _fmt(entry['peak_mib']),
                         _fmt(entry['host_syncs'])])
        notes = _model_lines(names, settings)
        for precision in options.precisions:
            notes += _ratio_notes(entries, names, precision, 'peak memory')
        notes.append(comparison)
        run['results'][f'inference/{group}/comparison'] = comparison
        if task == 'seg':
            lit, fst = times['tokens_literal'], times['tokens_fast']
            notes.append(f'segment tokens alone (stem + token pooling): literal '
                         f'{lit * 1e3:.0f} ms, fast {fst * 1e3:.0f} ms per batch, '
                         f'{lit / fst:.2f}x faster')
            run['results']['inference/segment_tokens'] = dict(literal_s=lit, fast_s=fst)
        notes.append(f'median of {rounds} interleaved rounds after {options.warmup} warm-up')
        _print(add_table(run, Table(
            'models', _group_title(group, task, batch, 'inference', settings),
            ['model', 'precision', 'images/s', 'ms/image', 'peak MiB', 'host syncs'], rows,
            notes)))


def section_train(run: Dict, settings: Settings, options: Options) -> None:
    """One optimiser step: ``model.train_step`` with the config's optimiser wrapper."""
    for group, (task, names) in TRAIN_GROUPS.items():
        variants, times, rounds, syncs, memory, batch, _ = _measure_steps(
            'train', names, settings, options)
        count = settings.task_size(task)[1]
        rows, entries = [], {}
        for name, precision in variants:
            seconds = times[(name, precision)]
            entry = dict(ms_per_image=seconds * 1e3 / count, seconds=seconds,
                         peak_mib=memory[(name, precision)] / 2**20,
                         host_syncs=syncs[(name, precision)])
            entries[(name, precision)] = entry
            run['results'][f'train/{group}/{name}/{precision}'] = entry
            rows.append([name, precision, _fmt(entry['ms_per_image']), _fmt(seconds * 1e3),
                         _fmt(entry['peak_mib']), _fmt(entry['host_syncs'])])
        notes = _model_lines(names, settings)
        for precision in options.precisions:
            notes += _ratio_notes(entries, names, precision, 'peak memory above resident')
        notes.append(f'median of {rounds} interleaved rounds after {options.warmup} warm-up')
        _print(add_table(run, Table(
            'train', _group_title(group, task, batch, 'train step', settings),
            ['model', 'precision', 'ms/image', 'ms/step', 'peak MiB above resident',
             'host syncs'], rows, notes)))


def section_upernet(run: Dict, settings: Settings, options: Options) -> None:
    """CAST-S UPerNet (``configs/cast/cast-s_upernet_ade20k.py``) beside mmseg's DeiT-S UPerNet
    (the same head and recipe): train step and inference, interleaved, then parameters and
    GFLOPs of one image (:mod:`.flops`)."""
    from .flops import model_complexity
    task, names = UPERNET_GROUP
    specs = model_specs(settings)
    rows, notes, batch = [], _model_lines(names, settings), None
    for kind, what in (('train', 'train step'), ('test', 'inference')):
        variants, times, rounds, syncs, memory, batch, _ = _measure_steps(
            kind, names, settings, options, compare=False)
        count = settings.task_size(task)[1]
        for precision in options.precisions:
            entries = {}
            for name in names:
                seconds = times[(name, precision)]
                entries[name] = dict(ms_per_image=seconds * 1e3 / count, seconds=seconds,
                                     peak_mib=memory[(name, precision)] / 2**20,
                                     host_syncs=syncs[(name, precision)])
                run['results'][f'upernet/{kind}/{name}/{precision}'] = entries[name]
                rows.append([name, what, precision, _fmt(entries[name]['ms_per_image']),
                             _fmt(entries[name]['peak_mib']),
                             _fmt(entries[name]['host_syncs'])])
            cast, deit = entries[names[0]], entries[names[1]]
            time_ratio = cast['seconds'] / deit['seconds']
            memory_ratio = cast['peak_mib'] / deit['peak_mib'] if deit['peak_mib'] else \
                float('nan')
            run['results'][f'upernet/{kind}/ratios/{precision}'] = dict(
                time=time_ratio, memory=memory_ratio)
            notes.append(f'{what}{f" ({precision})" if precision != "fp32" else ""}: '
                         f'{names[0]} / {names[1]} time {_ratio(time_ratio)}, peak memory '
                         f'{_ratio(memory_ratio)}')
        notes.append(f'{what}: median of {rounds} interleaved rounds after {options.warmup} '
                     'warm-up')
    size = settings.task_size(task)[0]
    complexity = []
    for name in names:
        result = model_complexity(specs[name].config, (size, size), specs[name].options)
        run['results'][f'upernet/complexity/{name}'] = result
        complexity.append([name, f'{result["params"] / 1e6:.2f}', f'{result["flops"] / 1e9:.2f}'])
    memory = 'peak MiB (train: above resident)'
    _print(add_table(run, Table(
        'upernet', f'{_group_title("UPerNet", task, batch, "CAST-S against DeiT-S", settings)}',
        ['model', 'step', 'precision', 'ms/image', memory, 'host syncs'], rows,
        notes)))
    _print(add_table(run, Table(
        'upernet', f'UPerNet models: parameters and GFLOPs at {size}x{size}',
        ['model', 'params (M)', 'GFLOPs'], complexity,
        ['`tools/analysis/get_flops.py CONFIG --shape H W`: multiply-adds of one image\'s '
         'inference forward (backbone and decode head), fused attention counted'])))


#: A switch earns its keep when its literal value makes the step this much slower or larger.
EARNS_KEEP = 1.10
#: Switch groups: task of the fast CAST model and the steps timed (prediction switches only
#: act in inference, which segmentation times too).
SWITCH_GROUPS = dict(classification=('cls', ('train', )), segmentation=('seg', ('train', 'test')))


def _train_step_rates(run: Dict, settings: Settings) -> Dict[str, Dict[str, float]]:
    """Config path -> {precision: images/s} of the ``train`` section's fast model of that config
    (no activation checkpointing), where this run measured it."""
    specs = model_specs(settings)
    rates: Dict[str, Dict[str, float]] = {}
    for group, (task, names) in TRAIN_GROUPS.items():
        name = f'cast_{task}_fast'
        if name not in names:
            continue
        for key, entry in run['results'].items():
            prefix = f'train/{group}/{name}/'
            if key.startswith(prefix):
                rates.setdefault(specs[name].config, {})[key[len(prefix):]] = \
                    1e3 / entry['ms_per_image']
    return rates


def section_loader(run: Dict, settings: Settings, options: Options) -> None:
    """Each training config's train pipeline on one loader worker thread (:mod:`.loader`), and
    the images/s its ``num_workers`` deliver per GPU beside the model's train step."""
    from .loader import sample_layout, time_pipeline, training_configs, write_samples
    from .models import CLS_CONFIG, SEG_CONFIG
    groups = training_configs()
    rates = _train_step_rates(run, settings)
    files = 2 if settings.smoke else 4
    share = options.max_seconds / len(groups) if options.max_seconds else None
    rows, notes = [], []
    with tempfile.TemporaryDirectory(prefix='cast_loader_') as folder:
        infos: Dict[str, List[Dict]] = {}
        for group in groups:
            # The config the model sections measure names its group, else a CAST-S one.
            group.configs.sort(key=lambda path: (path not in (CLS_CONFIG, SEG_CONFIG),
                                                 not osp.basename(path).startswith('cast-s_')))
            if group.dataset_type not in infos:
                os.makedirs(osp.join(folder, group.dataset_type))
                infos[group.dataset_type] = write_samples(
                    sample_layout(group.dataset_type), osp.join(folder, group.dataset_type),
                    files)
            result = time_pipeline(group, infos[group.dataset_type], options.warmup,
                                   options.repeats, share)
            ms = result['ms_per_sample']
            superpixels = sum(t for name, t in result['transforms'] if 'Superpixels' in name)
            loader_rate = group.num_workers * 1e3 / ms
            model = next((rates[path] for path in group.configs if path in rates), None)
            entry = dict(configs=[osp.basename(path) for path in group.configs],
                         dataset=group.dataset_type, num_workers=group.num_workers,
                         batch_size=group.batch_size, loader_images_per_s=loader_rate,
                         model_images_per_s=model, **result)
            run['results'][f'loader/{group.name}'] = entry
            shares = ', '.join(f'{name.replace("cast_mm.", "")} {100 * t / ms:.0f}%'
                               for name, t in result['transforms'])
            if model is None:
                model_cell = bound = 'n/a'
            else:
                model_cell = ', '.join(f'{p} {r:.1f}' for p, r in model.items())
                bound = ', '.join(f'{p}: {"loader" if loader_rate < r else "model"}'
                                  for p, r in model.items())
            rows.append([group.name, group.dataset_type, group.num_workers, _fmt(ms, 1),
                         f'{superpixels:.1f} ({100 * superpixels / ms:.0f}%)', shares,
                         _fmt(loader_rate), model_cell, bound])
            if len(group.configs) > 1:
                others = ', '.join(osp.basename(path) for path in group.configs[1:])
                notes.append(f'{group.name} stands for {others} (the same dataset type, train '
                             'pipeline and num_workers)')
    measured = sorted(osp.basename(path) for path in rates)
    notes += [
        'ms/sample: mean of the train pipeline on one thread (torch and OpenCV), as a data '
        f'loader worker runs it, over {files} synthetic files of the dataset\'s typical image '
        'size read from the page cache; loader images/s per GPU: num_workers x 1000 / ms '
        '(each worker on a core of its own)',
        ('train step images/s: the `train` section\'s fast model of the same config in this run '
         f'(benchmark batch and image size, {settings.device}); measured for '
         f'{", ".join(measured)}' if measured else
         'train step images/s: run `--sections train loader` to measure the model\'s train step '
         'in the same run')]
    _print(add_table(run, Table(
        'loader', 'data loader: train pipeline per worker thread against the train step',
        ['config', 'dataset', 'workers', 'ms/sample', 'of which superpixels ms',
         'time by transform', 'loader images/s per GPU', 'train step images/s',
         'sets the speed'], rows, notes)))


def section_switches(run: Dict, settings: Settings, options: Options) -> None:
    """Each switch of the execution profile: the fast CAST model against the fast model with that
    one argument at its literal value, interleaved (time, peak memory)."""
    specs = model_specs(settings)
    for group, (task, kinds) in SWITCH_GROUPS.items():
        fast_name = f'cast_{task}_fast'
        fast = specs[fast_name]
        switches = profile_switches(task)
        for kind in kinds:
            rows = []
            share = options.max_seconds / len(switches) if options.max_seconds else None
            for precision in options.precisions:
                amp = precision == 'amp'
                fast_step = Step(fast_name, kind, settings, amp=amp)
                batch = fast_step.batch
                fast_peak = _switch_peak(fast_name, kind, settings, options, amp, fast,
                                         fast_step)
                for switch, value, changed in switches:
                    spec = ModelSpec(task, fast.config, dict(fast.options, **changed))
                    name = f'{fast_name} {switch}={value!r}'
                    step = Step(name, kind, settings, amp=amp, spec=spec)
                    times, rounds = interleaved_times(
                        {'fast': fast_step, 'switch': step}, settings.torch_device,
                        options.warmup, options.repeats, share)
                    peak = _switch_peak(name, kind, settings, options, amp, spec, step)
                    del step
                    time_ratio = times['switch'] / times['fast']
                    memory_ratio = peak / fast_peak if fast_peak else float('nan')
                    earns = time_ratio >= EARNS_KEEP or memory_ratio >= EARNS_KEEP
                    run['results'][f'switches/{group}/{kind}/{switch}/{precision}'] = dict(
                        options=changed, seconds=times['switch'], fast_seconds=times['fast'],
                        time_ratio=time_ratio, peak_mib=peak / 2**20,
                        fast_peak_mib=fast_peak / 2**20, memory_ratio=memory_ratio,
                        earns_keep=earns, rounds=rounds)
                    rows.append([switch, ' '.join(f'{k}={v!r}' for k, v in changed.items()),
                                 precision, _fmt(times['fast'] * 1e3),
                                 _fmt(times['switch'] * 1e3), _ratio(time_ratio),
                                 _fmt(fast_peak / 2**20), _fmt(peak / 2**20),
                                 _ratio(memory_ratio),
                                 'yes' if earns else 'no'])
                del fast_step
            what = 'train step' if kind == 'train' else 'inference'
            memory = 'peak MiB above resident' if kind == 'train' else 'peak MiB'
            _print(add_table(run, Table(
                'switches', f'{_group_title(group, task, batch, what, settings)}: each '
                'execution-profile switch at its literal value',
                ['switch', '--cfg-options', 'precision', 'fast ms', 'switched ms',
                 'time switched / fast', f'fast {memory}', f'switched {memory}',
                 'memory switched / fast', 'earns its keep'], rows,
                [f'fast: `{fast.command_line()}`; each row adds its `--cfg-options` and is timed '
                 'against the fast model in interleaved rounds (median of up to '
                 f'{options.repeats} after {options.warmup} warm-up)',
                 f'earns its keep: the literal value makes the step at least '
                 f'{EARNS_KEEP - 1:.0%} slower or larger'])))


def _switch_peak(name: str, kind: str, settings: Settings, options: Options, amp: bool,
                 spec: ModelSpec, step: Step) -> float:
    """Peak memory of one switch's step (NaN without ``options.memory``)."""
    if not options.memory:
        return float('nan')
    if settings.torch_device.type == 'cuda':
        return cuda_peak_memory(step)
    return peak_memory(name, kind, settings, amp, spec)


def compare_paths(literal: Step, fast: Step) -> str:
    """How the fast and the literal CAST differ: continuous tensors and discrete choices."""
    from cast_mm.models.layers import level_assignments
    fast.model.load_state_dict(literal.model.state_dict())
    inputs = fast.prepared['inputs']
    superpixels = fast.superpixels()
    with torch.no_grad():
        out_fast = fast.model(inputs, fast.prepared['data_samples'], mode='tensor')
        out_literal = literal.model(inputs, fast.prepared['data_samples'], mode='tensor')
        text = f'outputs max |diff| / max |literal| = {max_rel_diff(out_fast, out_literal):.2e}'
        feats_fast = fast.model.backbone.forward_features(inputs, superpixels)
        feats_literal = literal.model.backbone.forward_features(inputs, superpixels)
    tokens = max(max_rel_diff(a, b)
                 for a, b in zip(feats_fast.stage_tokens, feats_literal.stage_tokens))
    same_inds = all(torch.equal(a, b)
                    for a, b in zip(feats_fast.sampled_inds, feats_literal.sampled_inds))
    flips = sum(int((a != b).sum()) for a, b in zip(level_assignments(feats_fast.pool_logits),
                                                    level_assignments(feats_literal.pool_logits)))
    return (f'{text}; stage tokens {tokens:.2e}; sampled indices identical: {same_inds}; '
            f'argmax level assignments that differ (near ties): {flips} of '
            f'{feats_fast.pool_logits[0].shape[:2].numel() * len(feats_fast.pool_logits)}')


class SegmentTokens:
    """Stem and superpixel-resolution token pooling of a segmentation CAST (the hot spot)."""

    def __init__(self, step: Step) -> None:
        self.backbone = step.model.backbone
        self.inputs = step.prepared['inputs']
        self.superpixels = step.superpixels()

    def __call__(self):
        with torch.no_grad():
            return self.backbone.segment_tokens(self.backbone.stem(self.inputs),
                                                self.superpixels)[0]


def section_profile(run: Dict, settings: Settings, options: Options) -> None:
    """Share of one step's operator time in matrix products, attention and convolution."""
    rows = []
    cases = [('classification train step', 'cast_cls_fast', 'train'),
             ('classification train step', 'cast_cls_literal', 'train'),
             ('segmentation train step', 'cast_seg_fast', 'train'),
             ('segmentation train step', 'cast_seg_literal', 'train'),
             ('segmentation inference', 'cast_seg_fast', 'test')]
    for what, name, kind in cases:
        step = Step(name, kind, settings)
        share, others = op_profile(step, settings.device)
        del step
        top = ', '.join(f'{k.split("::")[-1]} {v * 100:.1f}%' for k, v in others[:6])
        rows.append([what, name, f'{share * 100:.1f}%', top])
        run['results'][f'profile/{kind}/{name}'] = dict(dense_share=share, others=others[:12])
    time_kind = 'device' if settings.torch_device.type == 'cuda' else 'CPU'
    _print(add_table(run, Table(
        'profile', f'where the time goes (torch profiler, operator self {time_kind} time)',
        ['step', 'model', 'matmul/attention/conv', 'largest other operators'], rows)))


#: (batch, points, samples) of the FPS cases: CAST-S classification's first pooling and the
#: segmentation model's (both sample the mean token first, then 64 and 320 points).
FPS_CASES = ((8, 197, 65), (2, 1025, 321))


def section_fps(run: Dict, settings: Settings, options: Options) -> None:
    """Farthest point sampling on the device against DGL's CPU kernel (the official op)."""
    from cast_mm.ops import farthest_point_sampling
    device = settings.torch_device
    rows = []
    for batch, num_points, num_samples in FPS_CASES:
        points = cast_like_points(batch, num_points - 1)  # the mean token is the first point
        on_device = points.to(device)
        fns = {'native': lambda: farthest_point_sampling(on_device, num_samples),
               'dgl': lambda: farthest_point_sampling(points, num_samples, backend='dgl')}
        times, _ = _times(fns, settings, options, max(options.repeats, 10))
        same = torch.equal(fns['native']().cpu(), fns['dgl']())
        launches = kernel_launches(fns['native'], device)
        case = f'{num_points}->{num_samples - 1} x{batch}'
        rows.append([case, _fmt(times['native'] * 1e3, 2), _fmt(times['dgl'] * 1e3, 2),
                     f'{times["dgl"] / times["native"]:.1f}x', same, _fmt(launches)])
        run['results'][f'fps/{num_points}x{batch}'] = dict(
            native_ms=times['native'] * 1e3, dgl_ms=times['dgl'] * 1e3, identical=same,
            kernel_launches=launches)
    _print(add_table(run, Table(
        'fps', f'farthest point sampling (float64; native on {device.type}, DGL on cpu)',
        ['points -> samples', 'native ms', 'DGL ms', 'DGL / native', 'same indices',
         'GPU kernel launches'], rows,
        ['`cast_mm.ops.farthest_point_sampling(points, k)` against `backend=\'dgl\'`; '
         'inputs as CAST builds them (the mean token first, 10% padded tokens equal to it)'])))


def section_kernels(run: Dict, settings: Settings, options: Options) -> None:
    """Each compiled or Triton kernel against its torch formulation on the device, the test of
    whether it earns its keep: farthest point sampling (``backend='native'`` vs the torch loop)."""
    from cast_mm.ops import farthest_point_sampling
    from cast_mm.ops.farthest_point_sampling import fps_torch, native_implementation
    device = settings.torch_device
    rows = []
    for batch, num_points, num_samples in FPS_CASES:
        points = cast_like_points(batch, num_points - 1).to(device)
        fns = {'kernel': lambda: farthest_point_sampling(points, num_samples),
               'torch': lambda: fps_torch(points, num_samples, 0)}
        times, _ = _times(fns, settings, options)
        case = f'FPS {num_points}->{num_samples - 1} x{batch}'
        rows.append([case, native_implementation(device.type), _fmt(times['kernel'] * 1e3, 2),
                     _fmt(times['torch'] * 1e3, 2), f'{times["torch"] / times["kernel"]:.1f}x'])
        run['results'][f'kernels/fps/{num_points}x{batch}'] = dict(
            kernel_ms=times['kernel'] * 1e3, torch_ms=times['torch'] * 1e3)
    _print(add_table(run, Table(
        'kernels', f'kernels against their torch formulation ({device.type})',
        ['computation', 'implementation', 'kernel ms', 'torch formulation ms',
         'torch / kernel'], rows,
        ["the torch formulation: FPS from per-sample differences (the torch loop, DGL's "
         'indices up to float64 rounding)'])))


def section_superpixels(run: Dict, settings: Settings, options: Options) -> None:
    """Images per second of OpenCV's SEEDS (one thread) and of torch SLIC (batched)."""
    from cast_mm.superpixels import seeds_superpixels, slic_superpixels
    device = settings.torch_device
    threads = torch.get_num_threads()
    rows = []
    for size, batch, budget in [(224, 8, 196), (512, 2, 1024)]:
        images = resized_photos(size, batch)
        tensor = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
        fns = {
            'SEEDS (OpenCV, 1 thread)': lambda: [seeds_superpixels(im, budget) for im in images],
            f'SLIC torch cpu ({threads} threads)': lambda: slic_superpixels(tensor, budget),
        }
        if device.type == 'cuda':
            on_device = tensor.to(device)
            fns['SLIC torch cuda'] = lambda: slic_superpixels(on_device, budget)
        cv2.setNumThreads(1)
        times, _ = _times(fns, settings, options)
        seeds_rate = batch / times['SEEDS (OpenCV, 1 thread)']
        for name, seconds in times.items():
            rate = batch / seconds
            rows.append([f'{size}x{size}, {budget}', name, f'{rate:.1f}',
                         f'{rate / seeds_rate:.2f}x'])
            run['results'][f'superpixels/{size}/{name}'] = dict(images_per_s=rate)
    _print(add_table(run, Table(
        'superpixels', 'superpixel throughput (batch of photographs; SLIC batched)',
        ['image, budget', 'backend', 'images/s', 'vs SEEDS'], rows)))


def section_quality(run: Dict, settings: Settings, options: Options) -> None:
    """Boundary recall and undersegmentation error of SEEDS and SLIC on photo mosaics."""
    from cast_mm.superpixels import seeds_superpixels, slic_superpixels
    from .quality import boundary_recall, undersegmentation_error
    device = settings.torch_device
    rows = []
    for size, budget in [(224, 196), (512, 1024)]:
        scores: Dict[str, List[Tuple[float, float, int]]] = {'SEEDS': [], 'SLIC': []}
        for seed in range(options.mosaics):
            image, truth = photo_mosaic(size, 12, seed)
            truth = torch.from_numpy(truth)
            maps = {
                'SEEDS': torch.from_numpy(seeds_superpixels(image, budget)),
                'SLIC': slic_superpixels(
                    torch.from_numpy(image).permute(2, 0, 1)[None].to(device), budget)[0].cpu(),
            }
            for name, labels in maps.items():
                scores[name].append((boundary_recall(labels, truth),
                                     undersegmentation_error(labels, truth),
                                     int(labels.max()) + 1))
        for name, values in scores.items():
            recall, error, count = np.mean(np.array(values), axis=0)
            rows.append([f'{size}x{size}, {budget}', name, f'{count:.0f}', f'{recall:.4f}',
                         f'{error:.4f}'])
            run['results'][f'quality/{size}/{name}'] = dict(
                boundary_recall=float(recall), undersegmentation_error=float(error),
                segments=float(count))
    _print(add_table(run, Table(
        'quality', f'superpixel quality on {options.mosaics} photo mosaics per size (12 regions)',
        ['image, budget', 'backend', 'segments', 'boundary recall', 'underseg. error'], rows)))


def section_compile(run: Dict, settings: Settings, options: Options) -> None:
    """``torch.compile`` (inductor) of the classification backbone and head, inference."""
    device = settings.torch_device
    step = Step('cast_cls_fast', 'test', settings)
    model, inputs = step.model, step.prepared['inputs']
    superpixels = step.superpixels()
    # A fixed number of token slots keeps shapes static (no data-dependent graph break).
    slots = int(superpixels.max()) + 1

    def logits(x, sp):
        return model.head(model.backbone(x, sp, slots))

    compiled = torch.compile(logits)
    with torch.no_grad():
        start = time.perf_counter()
        out = compiled(inputs, superpixels)
        sync(device)
        compile_s = time.perf_counter() - start
        diff = max_rel_diff(out, logits(inputs, superpixels))
        times, _ = _times({'eager': lambda: logits(inputs, superpixels),
                           'compiled': lambda: compiled(inputs, superpixels)}, settings, options)
    count = settings.task_size('cls')[1]
    rows = [[name, f'{count / t:.2f}', f'{t * 1e3:.0f}'] for name, t in times.items()]
    run['results']['compile'] = dict(eager_s=times['eager'], compiled_s=times['compiled'],
                                     compile_s=compile_s, rel_diff=diff)
    _print(add_table(run, Table(
        'compile', f'torch.compile (inductor), CAST-S classification backbone + head, '
        f'batch {count}', ['mode', 'images/s', 'ms/batch'], rows,
        [f'compiled vs eager: {times["eager"] / times["compiled"]:.2f}x; first call (compile) '
         f'{compile_s:.0f} s; outputs max |diff| / max |eager| = {diff:.2e}'])))


def _print(table: Table) -> None:
    print('\n' + table.markdown(), flush=True)


def section_explorer(run: Dict, settings: Settings, options: Options) -> None:
    """The hierarchy explorer timed from headless Chromium (:mod:`cast_analysis.explorer`)."""
    from .explorer import CASES, measure_explorer
    rows = []
    for case in sorted(CASES):
        result = measure_explorer(case, repeats=max(options.repeats, 1), clicks=5,
                                  chromium=options.chromium)
        run['results'][f'explorer/{case}'] = result
        rows.append([case, f"{result['image_size']}x{result['image_size']}",
                     _fmt(result['upload_to_picture_ms']['median']),
                     _fmt(result['pipeline_ms']['median']),
                     _fmt(result['click_redraw_ms']['median'])])
    _print(add_table(run, Table(
        'explorer', 'hierarchy explorer in a browser (CAST-S, random weights, CPU)',
        ['case', 'image', 'upload to picture ms', 'of which superpixels + model + hierarchy ms',
         'click re-draw ms'], rows,
        ['medians over the timed uploads and clicks, measured in headless Chromium through '
         'Playwright (`tools/hierarchy_explorer.py` on a loopback port)'])))


#: Section name -> function, in the default order.
SECTIONS = dict(models=section_models, train=section_train, upernet=section_upernet,
                loader=section_loader,
                switches=section_switches, profile=section_profile, fps=section_fps,
                superpixels=section_superpixels, quality=section_quality,
                compile=section_compile, kernels=section_kernels, explorer=section_explorer)

"""Speed, memory and superpixel-quality benchmark of CAST, built from the shipped configs.

    python tools/analysis/benchmark.py [--device cpu|cuda] [--threads 2] [--warmup 1]
        [--repeats 5] [--sections models train profile fps superpixels quality compile]
        [--no-memory] [--smoke] [--json out.json]

Every model is built from a config users train and test with: ``configs/cast/cast-s_ade20k.py``
and ``configs/cast/cast-s_8xb128_in1k.py``, and the references mmseg's Segmenter ViT-S and
mmpretrain's DeiT-S configs, with small overrides in ``--cfg-options`` form (printed per
model): no checkpoint, whole-image inference, the literal switches. Everything is measured in
one run on one machine, so the ratios printed beside the tables are like for like. Protocol
(also printed in the header):

* Inputs are real photographs bundled with scikit-image, resized to the model size, through
  the tail of the config's own pipeline (its superpixel transform with the official presets:
  SEEDS 196 at 224², ``H*W/256`` = 1024 at 512², then its packing transform). Segmentation
  labels are regions of the photographs (a coarse segmentation, 150 classes, with an ignored
  band along region borders); classification labels are fixed random classes.
* OpenMP's wait policy is left to the environment and printed. On a quiet machine keep the
  default; on a machine shared with other busy processes run with ``OMP_WAIT_POLICY=PASSIVE``,
  since spinning threads that lose their core make multi-threaded torch ops many times slower.
* ``models``: inference (``model.predict`` on the preprocessed batch, ``torch.no_grad``).
  ``train``: one optimiser step, ``model.train_step`` with the config's optimiser wrapper
  (preprocessing, batch augments, forward, loss on the labels, backward, optimiser step).
  ``--warmup`` untimed rounds, then ``--repeats`` timed rounds; the rounds visit every
  configuration of a section in turn (interleaved), so load from other processes affects all
  alike. The median is reported.
* Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` above the memory held before the
  call; on CPU the peak resident set size of a fresh child process running one call, above
  its resident size before that call (after returning the C heap's free memory to the
  system, so that memory the call allocates again counts). A train step is measured after one
  untimed step, so the memory before it holds the model, its optimiser state and the batch
  ("resident"); the peak above it is activations, gradients and temporaries.
* ``literal`` is the official computation: the backbone's literal switches
  (``cast_mm.models.fast_paths.LITERAL_PATHS``: full-resolution token pooling, explicit softmax
  attention, NCHW stem), DGL farthest point sampling on CPU, explicit attention in the decoder,
  and the loss on pixel logits; ``fast`` is the config as shipped. ``+cp`` adds activation
  checkpointing of the CAST blocks (``model.backbone.with_cp=True``).
* ``profile``: the share of one step's operator time (torch profiler, self CPU/CUDA time) spent
  in matrix products, attention and convolution, and the largest remaining operators.
* Superpixel quality: there is no human ground truth among the bundled images, so quality is
  measured on photo mosaics: a Voronoi partition into 12 regions, each filled with a crop of a
  different bundled photograph. The partition is the ground truth; the photographs supply real
  textures and edges inside the regions. Boundary recall (tolerance 2 px) and corrected
  undersegmentation error, same budgets as above.
"""
import argparse
import copy
import json
import logging
import multiprocessing
import os
import os.path as osp
import platform
import statistics
import sys
import time
from typing import Callable, Dict, List, Sequence, Tuple

import cv2
import numpy as np
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CLS_CONFIG = osp.join(REPO, 'configs', 'cast', 'cast-s_8xb128_in1k.py')
SEG_CONFIG = osp.join(REPO, 'configs', 'cast', 'cast-s_ade20k.py')
DEIT_CONFIG = 'mmpretrain::deit/deit-small_4xb256_in1k.py'
SEGMENTER_CONFIG = 'mmseg::segmenter/segmenter_vit-s_mask_8xb1-160k_ade20k-512x512.py'

#: Image size and batch of each task (the superpixel budget comes from the config's preset).
TASKS = dict(cls=(224, 8), seg=(512, 2))
#: ``--smoke``: tiny images and batches, to check that every section runs.
SMOKE_TASKS = dict(cls=(64, 2), seg=(64, 1))
#: Extra ``--cfg-options`` of every CAST model of a task.
TASK_OPTIONS: Dict[str, Dict] = dict(cls={}, seg={})
#: ``--smoke``: 16 superpixels at 64x64 cannot feed 320 clusters (DGL asserts).
SMOKE_OPTIONS = dict(cls={}, seg={'model.backbone.num_clusters': (8, 4, 2, 1)})
#: Coarse regions per photograph that become the segmentation labels.
LABEL_REGIONS = 24

NO_CHECKPOINT = {'model.backbone.init_cfg': None}
WHOLE_INFERENCE = {'model.test_cfg': dict(mode='whole')}
WITH_CP = {'model.backbone.with_cp': True}


def literal_options(task: str, device: torch.device) -> Dict:
    """``--cfg-options`` that make a CAST config compute as the official code."""
    from cast_mm.models.fast_paths import LITERAL_PATHS
    options = {f'model.backbone.{key}': value for key, value in LITERAL_PATHS.items()}
    # DGL's kernel is the official FPS; its PyPI build has CPU kernels only.
    options['model.backbone.fps_backend'] = 'dgl' if device.type == 'cpu' else 'native'
    if task == 'seg':
        options['model.decode_head.fused_attn'] = False
        options['model.decode_head.hashed_dropout'] = False
        options['model.decode_head.loss_by_superpixel'] = False
        options['model.predict_by_segments'] = False
    return options


def model_specs(device: torch.device) -> Dict[str, Tuple[str, str, Dict]]:
    """Name -> (task, config, ``--cfg-options``) of every benchmarked model."""
    cls = dict(NO_CHECKPOINT, **TASK_OPTIONS['cls'])
    seg = dict(NO_CHECKPOINT, **WHOLE_INFERENCE, **TASK_OPTIONS['seg'])
    cls_lit, seg_lit = literal_options('cls', device), literal_options('seg', device)
    return {
        'cast_cls_literal': ('cls', CLS_CONFIG, dict(cls, **cls_lit)),
        'cast_cls_fast': ('cls', CLS_CONFIG, cls),
        'cast_cls_literal+cp': ('cls', CLS_CONFIG, dict(cls, **cls_lit, **WITH_CP)),
        'cast_cls_fast+cp': ('cls', CLS_CONFIG, dict(cls, **WITH_CP)),
        'deit_s': ('cls', DEIT_CONFIG, {}),
        'cast_seg_literal': ('seg', SEG_CONFIG, dict(seg, **seg_lit)),
        'cast_seg_fast': ('seg', SEG_CONFIG, seg),
        'cast_seg_literal+cp': ('seg', SEG_CONFIG, dict(seg, **seg_lit, **WITH_CP)),
        'cast_seg_fast+cp': ('seg', SEG_CONFIG, dict(seg, **WITH_CP)),
        'segmenter_vit_s': ('seg', SEGMENTER_CONFIG, {'model.pretrained': None,
                                                      **WHOLE_INFERENCE}),
    }


# ------------------------------------------------------------------------------------ configs
def quiet_logs() -> None:
    """MMEngine's per-parameter initialisation report and warnings stay out of the tables."""
    import warnings

    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    logger.setLevel(logging.ERROR)
    for handler in logger.handlers:
        handler.setLevel(logging.ERROR)
    warnings.filterwarnings('ignore', category=UserWarning)


def load_config(config: str, options: Dict):
    """The config with ``options`` merged as ``--cfg-options`` would."""
    from mmengine.config import Config
    from mmengine.hub import get_config

    # 'package::path' names a config shipped inside an installed OpenMMLab package.
    cfg = get_config(config) if '::' in config else Config.fromfile(config)
    options = dict(options)
    test_cfg = options.pop('model.test_cfg', None)
    cfg.merge_from_dict(options)
    if test_cfg is not None:
        cfg.model.test_cfg = test_cfg  # replaced, not merged (slide keys would stay)
    return cfg


def build_from_config(cfg, device: torch.device):
    """The model of ``cfg``, built in the config's default scope, seeded, on ``device``."""
    from mmengine.registry import MODELS, DefaultScope

    import cast_mm  # noqa: F401  (registers the cast_mm scope)
    model_cfg = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:  # as the Runner hands it to the model
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmseg')):
        model = MODELS.build(model_cfg)
        model.init_weights()
    return model.to(device)


def build_model(name: str, device: torch.device):
    task, config, options = model_specs(device)[name]
    return build_from_config(load_config(config, options), device)


def build_optim_wrapper(name: str, model):
    from mmengine.optim import build_optim_wrapper as build
    from mmengine.registry import DefaultScope
    _, config, options = model_specs(torch.device('cpu'))[name]
    cfg = load_config(config, options)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmseg')):
        return build(model, copy.deepcopy(cfg.optim_wrapper))


# ------------------------------------------------------------------------------------ inputs
def photographs() -> List[np.ndarray]:
    """The colour photographs bundled with scikit-image (RGB uint8)."""
    from skimage import data
    return [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(),
            data.immunohistochemistry(), data.stereo_motorcycle()[0], data.hubble_deep_field(),
            data.retina()]


def resized_photos(size: int, count: int) -> List[np.ndarray]:
    photos = photographs()
    return [cv2.resize(photos[i % len(photos)], (size, size), interpolation=cv2.INTER_AREA)
            for i in range(count)]


def region_labels(image: np.ndarray, index: int, num_classes: int = 150) -> np.ndarray:
    """Segmentation labels of a photograph: coarse regions with classes, borders ignored."""
    from cast_mm.superpixels import slic_superpixels
    regions = slic_superpixels(torch.from_numpy(image).permute(2, 0, 1)[None],
                               LABEL_REGIONS)[0].numpy()
    labels = ((regions * 37 + index * 11) % num_classes).astype(np.uint8)
    border = cv2.morphologyEx(labels, cv2.MORPH_GRADIENT, np.ones((5, 5), np.uint8)) > 0
    labels[border] = 255
    return labels


def pipeline_tail(cfg) -> List:
    """The config's train transforms from its superpixel transform on, built."""
    from mmcv.transforms import Compose
    from mmengine.registry import TRANSFORMS, DefaultScope
    pipeline = cfg.train_dataloader.dataset.pipeline
    first = next(i for i, t in enumerate(pipeline) if t['type'].endswith('Superpixels'))
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmseg')):
        return Compose([TRANSFORMS.build(t) for t in pipeline[first:]])


def make_batch(task: str, cfg) -> Dict:
    """A collated batch of photographs as the config's pipeline packs it."""
    from mmengine.dataset import pseudo_collate
    size, batch = TASKS[task]
    tail = pipeline_tail(cfg)
    samples = []
    for i, rgb in enumerate(resized_photos(size, batch)):
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        results = dict(img=bgr, img_shape=(size, size), ori_shape=(size, size),
                       scale_factor=(1., 1.), flip=False, flip_direction=None)
        if task == 'seg':
            results.update(gt_seg_map=region_labels(rgb, i), seg_fields=['gt_seg_map'],
                           reduce_zero_label=True, pad_shape=(size, size))
        else:
            results.update(gt_label=int((i * 389 + 7) % 1000))
        samples.append(tail(results))
    return pseudo_collate(samples)


def task_config(task: str, device: torch.device):
    name = 'cast_cls_fast' if task == 'cls' else 'cast_seg_fast'
    _, config, options = model_specs(device)[name]
    return load_config(config, options)


def superpixel_count(batch: Dict) -> int:
    return int(max(int(s.superpixels.data.max()) if hasattr(s.superpixels, 'data')
                   else int(s.superpixels.max()) for s in batch['data_samples'])) + 1


# ----------------------------------------------------------------------------------- timing
def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def interleaved_times(fns: Dict[str, Callable[[], object]], device: torch.device, warmup: int,
                      repeats: int) -> Dict[str, float]:
    """Median seconds per call of each function, the calls of all functions interleaved."""
    times: Dict[str, List[float]] = {name: [] for name in fns}
    for round_idx in range(warmup + repeats):
        for name, fn in fns.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            if round_idx >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def _rss_bytes(field: str) -> int:
    """``VmRSS`` (current) or ``VmHWM`` (peak) of this process in bytes."""
    with open('/proc/self/status') as f:
        line = next(line for line in f if line.startswith(field + ':'))
    return int(line.split()[1]) * 1024


class Runner:
    """One model's inference or train-step call on its task's batch."""

    def __init__(self, name: str, kind: str, device: torch.device) -> None:
        task = model_specs(device)[name][0]
        self.model = build_model(name, device)
        self.batch = make_batch(task, task_config(task, device))
        if kind == 'train':
            self.model.train()
            self.optim_wrapper = build_optim_wrapper(name, self.model)
            self.call = lambda: self.model.train_step(self.batch, self.optim_wrapper)
        else:
            self.model.eval()
            with torch.no_grad():
                self.prepared = self.model.data_preprocessor(self.batch, False)
            self.call = self._predict

    def _predict(self):
        with torch.no_grad():
            return self.model(**self.prepared, mode='predict')

    def superpixels(self) -> torch.Tensor:
        """The ``(B, H, W)`` superpixel maps the model runs the prepared batch on."""
        if hasattr(self.model, 'batch_superpixels'):
            return self.model.batch_superpixels(self.prepared['inputs'],
                                                self.prepared['data_samples'])
        # The maps the data preprocessor padded into the samples (classifiers).
        maps = [s.superpixels for s in self.prepared['data_samples']]
        return torch.stack([m if isinstance(m, torch.Tensor) else m.data[0] for m in maps])


def release_free_heap() -> None:
    """Return the C heap's free memory to the system (glibc), so the resident set is live data.

    glibc keeps freed blocks below its (adaptive, up to 32 MiB) mmap threshold in the heap for
    reuse; without this, a second step would reuse the first step's freed memory and its peak
    above the resident level would miss everything it allocates again (gradients among them).
    """
    import ctypes
    import ctypes.util
    import gc
    gc.collect()
    name = ctypes.util.find_library('c')
    libc = ctypes.CDLL(name) if name else None
    if libc is not None and hasattr(libc, 'malloc_trim'):
        libc.malloc_trim(0)


def _cpu_peak_child(name: str, kind: str, threads: int, tasks: Dict, options: Dict,
                    queue) -> None:
    torch.set_num_threads(threads)
    quiet_logs()
    TASKS.update(tasks)
    TASK_OPTIONS.update(options)
    runner = Runner(name, kind, torch.device('cpu'))
    if kind == 'train':
        runner.call()  # optimiser state and lazily built buffers become resident
    # Reset the peak (a child starts with its own loading peak), then measure.
    release_free_heap()
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')
    before = _rss_bytes('VmRSS')
    runner.call()
    queue.put(_rss_bytes('VmHWM') - before)


def peak_memory(name: str, kind: str, device: torch.device, threads: int) -> float:
    """Peak bytes one call of ``name`` needs above what is held before it."""
    if device.type == 'cuda':
        runner = Runner(name, kind, device)
        runner.call()
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        runner.call()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    ctx = multiprocessing.get_context('spawn')
    queue = ctx.Queue()
    child_args = (name, kind, threads, dict(TASKS), dict(TASK_OPTIONS), queue)
    child = ctx.Process(target=_cpu_peak_child, args=child_args)
    child.start()
    result = queue.get()
    child.join()
    return result


def use_smoke_sizes() -> None:
    TASKS.update(SMOKE_TASKS)
    TASK_OPTIONS.update(SMOKE_OPTIONS)


def measured_memory(args, name: str, kind: str, device: torch.device) -> float:
    """:func:`peak_memory`, or NaN with ``--no-memory``."""
    if args.no_memory:
        return float('nan')
    return peak_memory(name, kind, device, args.threads)


# ---------------------------------------------------------------------------------- printing
def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [list(map(str, header))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f'\n#### {title}\n')
    for i, row in enumerate(cells):
        print('| ' + ' | '.join(c.ljust(w) for c, w in zip(row, widths)) + ' |')
        if i == 0:
            print('|' + '|'.join('-' * (w + 2) for w in widths) + '|')


def print_options(names: Sequence[str], device: torch.device) -> None:
    specs = model_specs(device)
    for name in names:
        _, config, options = specs[name]
        shown = ' '.join(f'{k}={v!r}'.replace(' ', '') for k, v in options.items())
        print(f'- `{name}`: `{osp.relpath(config, REPO) if osp.isabs(config) else config}`'
              f'{" --cfg-options " + shown if shown else ""}')


def max_rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


# ---------------------------------------------------------------------------------- sections
def compare_paths(literal: Runner, fast: Runner) -> str:
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

    def __init__(self, runner: Runner) -> None:
        self.backbone = runner.model.backbone
        self.inputs = runner.prepared['inputs']
        self.superpixels = runner.superpixels()

    def __call__(self):
        with torch.no_grad():
            return self.backbone.segment_tokens(self.backbone.stem(self.inputs),
                                                self.superpixels)[0]


INFERENCE_GROUPS = dict(
    classification=('cls', ['cast_cls_literal', 'cast_cls_fast', 'deit_s']),
    segmentation=('seg', ['cast_seg_literal', 'cast_seg_fast', 'segmenter_vit_s']))
TRAIN_GROUPS = dict(
    classification=('cls', ['cast_cls_literal', 'cast_cls_fast', 'cast_cls_literal+cp',
                            'cast_cls_fast+cp', 'deit_s']),
    segmentation=('seg', ['cast_seg_literal', 'cast_seg_fast', 'cast_seg_literal+cp',
                          'cast_seg_fast+cp', 'segmenter_vit_s']))


def group_title(group: str, task: str, batch: Dict, what: str) -> str:
    size, count = TASKS[task]
    return (f'{group} {what}: {size}x{size}, {superpixel_count(batch)} SEEDS superpixels, '
            f'batch {count}')


def ratio_lines(results: Dict, key: str, names: Sequence[str], memory: str) -> List[str]:
    """``fast vs literal`` for every literal/fast pair, and fast CAST vs the reference."""
    lines = []
    for literal, fast in [(names[0], names[1])] + ([(names[2], names[3])]
                                                   if len(names) > 3 else []):
        lit, fst = results[f'{key}/{literal}'], results[f'{key}/{fast}']
        lines.append(f'{fast} vs {literal}: {lit["seconds"] / fst["seconds"]:.2f}x faster, '
                     f'{lit["peak_mib"] / max(fst["peak_mib"], 1e-9):.2f}x less {memory}')
    fst, ref = results[f'{key}/{names[1]}'], results[f'{key}/{names[-1]}']
    if names[-1].startswith(('deit', 'segmenter')):
        lines.append(f'{names[1]} vs {names[-1]}: {ref["seconds"] / fst["seconds"]:.2f}x the '
                     'speed')
    return lines


def bench_models(args, device: torch.device, results: Dict) -> None:
    """Inference: ``model.predict`` of the preprocessed batch."""
    for group, (task, names) in INFERENCE_GROUPS.items():
        runners = {name: Runner(name, 'test', device) for name in names}
        batch = runners[names[1]].batch
        comparison = compare_paths(runners[names[0]], runners[names[1]])
        fns = {name: runner.call for name, runner in runners.items()}
        if task == 'seg':
            tokens = {f'tokens_{kind}': SegmentTokens(runners[f'cast_seg_{kind}'])
                      for kind in ('literal', 'fast')}
            fns.update(tokens)
        times = interleaved_times(fns, device, args.warmup, args.repeats)
        del runners, fns
        print(f'\nModels ({group}):')
        print_options(names, device)
        rows = []
        count = TASKS[task][1]
        for name in names:
            mem = measured_memory(args, name, 'test', device)
            rows.append([name, f'{count / times[name]:.2f}', f'{times[name] * 1e3:.0f}',
                         f'{mem / 2**20:.0f}'])
            results[f'inference/{group}/{name}'] = dict(images_per_s=count / times[name],
                                                        seconds=times[name],
                                                        peak_mib=mem / 2**20)
        print_table(group_title(group, task, batch, 'inference'),
                    ['model', 'images/s', 'ms/batch', 'peak MiB'], rows)
        print()
        for line in ratio_lines(results, f'inference/{group}', names, 'peak memory'):
            print(line)
        print(comparison)
        results[f'inference/{group}/comparison'] = comparison
        if task == 'seg':
            lit, fst = times['tokens_literal'], times['tokens_fast']
            print(f'segment tokens alone (stem + token pooling): literal {lit * 1e3:.0f} ms, '
                  f'fast {fst * 1e3:.0f} ms per batch, {lit / fst:.2f}x faster')
            results['inference/segment_tokens'] = dict(literal_s=lit, fast_s=fst)


def bench_train(args, device: torch.device, results: Dict) -> None:
    """One optimiser step: ``model.train_step`` with the config's optimiser wrapper."""
    for group, (task, names) in TRAIN_GROUPS.items():
        runners = {name: Runner(name, 'train', device) for name in names}
        batch = runners[names[1]].batch
        fns = {name: runner.call for name, runner in runners.items()}
        times = interleaved_times(fns, device, args.warmup, args.repeats)
        del runners, fns
        print(f'\nModels ({group} train step):')
        print_options(names, device)
        rows = []
        count = TASKS[task][1]
        for name in names:
            mem = measured_memory(args, name, 'train', device)
            rows.append([name, f'{times[name] * 1e3 / count:.0f}', f'{times[name] * 1e3:.0f}',
                         f'{mem / 2**20:.0f}'])
            results[f'train/{group}/{name}'] = dict(ms_per_image=times[name] * 1e3 / count,
                                                    seconds=times[name], peak_mib=mem / 2**20)
        print_table(group_title(group, task, batch, 'train step'),
                    ['model', 'ms/image', 'ms/step', 'peak MiB above resident'], rows)
        print()
        for line in ratio_lines(results, f'train/{group}', names, 'peak memory above resident'):
            print(line)


#: Operators counted as matrix products, attention and convolution (forward and backward).
DENSE_OPS = ('mm', 'addmm', 'bmm', 'baddbmm', 'addbmm', 'matmul', 'dot', '_sparse_mm',
             '_sparse_addmm', 'sparse_mm', 'convolution', 'scaled_dot_product', 'attention',
             'conv2d', 'mkldnn_convolution', 'linear')


def is_dense(op: str) -> bool:
    name = op.split('::')[-1]
    return any(name == key or name.startswith(key + '_') or key in name
               for key in DENSE_OPS if len(key) > 3) or name in DENSE_OPS


def op_profile(fn: Callable[[], object], device: torch.device) -> Tuple[float, List]:
    """Share of operator self time in dense ops, and the operators sorted by self time."""
    from torch.profiler import ProfilerActivity, profile
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA]
                                           if device.type == 'cuda' else [])
    fn()
    with profile(activities=activities) as prof:
        fn()
        sync(device)
    attr = 'self_device_time_total' if device.type == 'cuda' else 'self_cpu_time_total'
    ops = [(e.key, getattr(e, attr)) for e in prof.key_averages() if e.key.startswith('aten::')]
    total = sum(t for _, t in ops) or 1.
    dense = sum(t for k, t in ops if is_dense(k))
    others = sorted(((k, t / total) for k, t in ops if not is_dense(k)), key=lambda x: -x[1])
    return dense / total, others


def bench_profile(args, device: torch.device, results: Dict) -> None:
    rows = []
    cases = [('classification train step', 'cast_cls_fast', 'train'),
             ('classification train step', 'cast_cls_literal', 'train'),
             ('segmentation train step', 'cast_seg_fast', 'train'),
             ('segmentation train step', 'cast_seg_literal', 'train'),
             ('segmentation inference', 'cast_seg_fast', 'test')]
    for what, name, kind in cases:
        runner = Runner(name, kind, device)
        share, others = op_profile(runner.call, device)
        del runner
        top = ', '.join(f'{k.split("::")[-1]} {v * 100:.1f}%' for k, v in others[:6])
        rows.append([what, name, f'{share * 100:.1f}%', top])
        results[f'profile/{kind}/{name}'] = dict(dense_share=share, others=others[:12])
    print_table('where the time goes (torch profiler, operator self time)',
                ['step', 'model', 'matmul/attention/conv', 'largest other operators'], rows)


def cast_like_points(batch: int, num_points: int, channels: int = 384) -> torch.Tensor:
    """FPS input as CAST builds it: [mean token, tokens], 10% padded tokens equal to the mean."""
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randn(batch, num_points - 1, channels, generator=gen)
    num_padded = (num_points - 1) // 10
    mean = tokens[:, :-num_padded].mean(dim=1, keepdim=True)
    tokens[:, -num_padded:] = mean
    return torch.cat([mean, tokens], dim=1)


def bench_fps(args, device: torch.device, results: Dict) -> None:
    from cast_mm.ops import farthest_point_sampling, fps_kernel
    from cast_mm.ops.farthest_point_sampling import _fps_loop, pairwise_sq_distances
    rows = []
    for batch, num_points, num_samples in [(8, 197, 65), (2, 1025, 321)]:
        points = cast_like_points(batch, num_points)
        on_device = points.to(device)
        fns = {
            'native': lambda: farthest_point_sampling(on_device, num_samples),
            'torch': lambda: _fps_loop(pairwise_sq_distances(on_device), num_samples, 0),
            'dgl': lambda: farthest_point_sampling(points, num_samples, backend='dgl'),
        }
        times = interleaved_times(fns, device, args.warmup, max(args.repeats, 10))
        same = torch.equal(fns['native']().cpu(), fns['dgl']())
        rows.append([f'{num_points}->{num_samples - 1} x{batch}', f'{times["native"] * 1e3:.2f}',
                     f'{times["torch"] * 1e3:.2f}', f'{times["dgl"] * 1e3:.2f}',
                     f'{times["dgl"] / times["native"]:.1f}x', same])
        results[f'fps/{num_points}x{batch}'] = dict(
            native_ms=times['native'] * 1e3, torch_loop_ms=times['torch'] * 1e3,
            dgl_ms=times['dgl'] * 1e3, identical=same)
    kernel = fps_kernel.status() if device.type == 'cpu' else 'torch loop'
    print_table(f'farthest point sampling (float64; native on {device.type}: {kernel}; '
                'DGL on cpu)', ['points -> samples', 'native ms', 'torch loop ms', 'DGL ms',
                                'DGL / native', 'same indices'], rows)


def bench_superpixels(args, device: torch.device, results: Dict) -> None:
    from cast_mm.superpixels import seeds_superpixels, slic_superpixels
    rows = []
    for size, batch, budget in [(224, 8, 196), (512, 2, 1024)]:
        images = resized_photos(size, batch)
        tensor = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
        fns = {
            'SEEDS (OpenCV, 1 thread)': lambda: [seeds_superpixels(im, budget) for im in images],
            f'SLIC torch cpu ({args.threads} threads)': lambda: slic_superpixels(tensor, budget),
        }
        if device.type == 'cuda':
            on_device = tensor.to(device)
            fns['SLIC torch cuda'] = lambda: slic_superpixels(on_device, budget)
        cv2.setNumThreads(1)
        times = interleaved_times(fns, device, args.warmup, args.repeats)
        seeds_rate = batch / times['SEEDS (OpenCV, 1 thread)']
        for name, seconds in times.items():
            rate = batch / seconds
            rows.append([f'{size}x{size}, {budget}', name, f'{rate:.1f}',
                         f'{rate / seeds_rate:.2f}x'])
            results[f'superpixels/{size}/{name}'] = rate
    print_table('superpixel throughput (batch of photographs; SLIC batched)',
                ['image, budget', 'backend', 'images/s', 'vs SEEDS'], rows)


def photo_mosaic(size: int, regions: int, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """A Voronoi partition into ``regions`` cells, each filled with a different photograph."""
    rng = np.random.default_rng(seed)
    photos = photographs()
    centres = rng.uniform(0, size, (regions, 2))
    yy, xx = np.mgrid[:size, :size]
    truth = ((yy[..., None] - centres[:, 0])**2 + (xx[..., None] - centres[:, 1])**2).argmin(-1)
    image = np.zeros((size, size, 3), np.uint8)
    for region in range(regions):
        photo = photos[(seed + region) % len(photos)]
        scale = size / min(photo.shape[:2]) * rng.uniform(1, 2)
        new_size = (int(np.ceil(photo.shape[1] * scale)), int(np.ceil(photo.shape[0] * scale)))
        photo = cv2.resize(photo, new_size, interpolation=cv2.INTER_AREA)
        top = rng.integers(0, photo.shape[0] - size + 1)
        left = rng.integers(0, photo.shape[1] - size + 1)
        inside = truth == region
        image[inside] = photo[top:top + size, left:left + size][inside]
    return image, truth


def bench_quality(args, device: torch.device, results: Dict) -> None:
    from cast_mm.superpixels import (boundary_recall, seeds_superpixels, slic_superpixels,
                                     undersegmentation_error)
    rows = []
    for size, budget in [(224, 196), (512, 1024)]:
        scores: Dict[str, List[Tuple[float, float, int]]] = {'SEEDS': [], 'SLIC': []}
        for seed in range(args.mosaics):
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
            results[f'quality/{size}/{name}'] = dict(boundary_recall=recall,
                                                     undersegmentation_error=error)
    print_table(f'superpixel quality on {args.mosaics} photo mosaics per size (12 regions)',
                ['image, budget', 'backend', 'segments', 'boundary recall', 'underseg. error'],
                rows)


def bench_compile(args, device: torch.device, results: Dict) -> None:
    runner = Runner('cast_cls_fast', 'test', device)
    model, prepared = runner.model, runner.prepared
    inputs = prepared['inputs']
    superpixels = runner.superpixels()
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
        times = interleaved_times({'eager': lambda: logits(inputs, superpixels),
                                   'compiled': lambda: compiled(inputs, superpixels)}, device,
                                  args.warmup, args.repeats)
    count = TASKS['cls'][1]
    rows = [[name, f'{count / t:.2f}', f'{t * 1e3:.0f}'] for name, t in times.items()]
    print_table(f'torch.compile (inductor), CAST-S classification backbone + head, batch {count}',
                ['mode', 'images/s', 'ms/batch'], rows)
    print(f'\ncompiled vs eager: {times["eager"] / times["compiled"]:.2f}x; first call (compile) '
          f'{compile_s:.0f} s; outputs max |diff| / max |eager| = {diff:.2e}')
    results['compile'] = dict(eager_s=times['eager'], compiled_s=times['compiled'],
                              compile_s=compile_s, rel_diff=diff)


SECTIONS = dict(models=bench_models, train=bench_train, profile=bench_profile, fps=bench_fps,
                superpixels=bench_superpixels, quality=bench_quality, compile=bench_compile)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda[:i]'")
    parser.add_argument('--threads', type=int, default=torch.get_num_threads(),
                        help='torch CPU threads (default: torch default)')
    parser.add_argument('--warmup', type=int, default=1, help='untimed rounds (default 1)')
    parser.add_argument('--repeats', type=int, default=5, help='timed rounds (default 5)')
    parser.add_argument('--mosaics', type=int, default=6,
                        help='photo mosaics per size for superpixel quality (default 6)')
    parser.add_argument('--sections', nargs='+', choices=list(SECTIONS), default=list(SECTIONS))
    parser.add_argument('--no-memory', action='store_true',
                        help='skip the peak-memory measurements (child processes on CPU)')
    parser.add_argument('--smoke', action='store_true',
                        help=f'tiny images and batches {SMOKE_TASKS} (checks that it runs)')
    parser.add_argument('--json', help='also write the numbers to this file')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        print('CUDA requested but not available', file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    quiet_logs()
    if args.smoke:
        use_smoke_sizes()
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor()
    print(f'# CAST benchmark\n\ndevice {device} ({name or platform.machine()}), torch '
          f'{torch.__version__}, {args.threads} torch threads, {os.cpu_count()} cpus, '
          f'OMP_WAIT_POLICY={os.environ.get("OMP_WAIT_POLICY", "unset (OpenMP default)")}; '
          f'warm-up {args.warmup}, repeats {args.repeats} (interleaved, median); float32'
          f'{"; SMOKE sizes " + str(SMOKE_TASKS) if args.smoke else ""}')
    results: Dict = dict(device=str(device), threads=args.threads, warmup=args.warmup,
                         repeats=args.repeats, torch=torch.__version__, tasks=dict(TASKS))
    for section in args.sections:
        SECTIONS[section](args, device, results)
        if args.json:  # after every section, so a long run keeps what it has measured
            with open(args.json, 'w') as f:
                json.dump(results, f, indent=1, default=str)
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""Speed, memory and superpixel-quality benchmark of CAST (issue 6).

    python tools/analysis/benchmark.py [--device cpu|cuda] [--threads 2] [--warmup 1]
        [--repeats 5] [--sections models fps superpixels quality compile] [--json out.json]

Everything is measured in one run on one machine, so the ratios printed beside the tables are
like for like. Protocol (also printed in the header):

* Inputs are real photographs bundled with scikit-image, resized to the model size, with SEEDS
  superpixels (official presets: DeiT 196 at 224², Segmenter ``H*W/256`` = 1024 at 512²).
* OpenMP's wait policy is left to the environment and printed. On a quiet machine keep the
  default (idle threads spin briefly, small ops start fast); on a machine shared with other
  busy processes run with ``OMP_WAIT_POLICY=PASSIVE``, since spinning threads that lose their
  core make multi-threaded torch ops many times slower.
* Timings run in inference mode (``torch.no_grad``), ``--warmup`` untimed rounds, then
  ``--repeats`` timed rounds; the rounds visit every configuration of a section in turn
  (interleaved), so load from other processes affects all alike. The median is reported.
* Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` above the memory held before the
  forward; on CPU the peak resident set size of a fresh child process running one forward,
  above its resident size before that forward.
* ``literal`` is the official computation (full-resolution token pooling, explicit softmax
  attention, NCHW stem, DGL farthest point sampling on CPU); ``fast`` is cast_mm's default.
* Superpixel quality: there is no human ground truth among the bundled images, so quality is
  measured on photo mosaics: a Voronoi partition into 12 regions, each filled with a crop of a
  different bundled photograph. The partition is the ground truth; the photographs supply real
  textures and edges inside the regions. Boundary recall (tolerance 2 px) and corrected
  undersegmentation error, same budgets as above.
"""
import argparse
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
from typing import Callable, Dict, List, Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from cast_mm.converters.parity import LITERAL_PATHS as LITERAL

CLS_SIZE, CLS_BATCH, CLS_SEGMENTS = 224, 8, 196
SEG_SIZE, SEG_BATCH, SEG_SEGMENTS, SEG_CLASSES = 512, 2, 1024, 150


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


def seeds_maps(images: Sequence[np.ndarray], num_segments: int) -> torch.Tensor:
    from cast_mm.datasets.transforms import seeds_superpixels
    return torch.stack([torch.from_numpy(seeds_superpixels(im, num_segments)) for im in images])


def model_inputs(size: int, batch: int, num_segments: int,
                 device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    """Normalised photo batch ``(B, 3, H, W)`` and its SEEDS maps ``(B, H, W)``."""
    images = resized_photos(size, batch)
    sp = seeds_maps(images, num_segments)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return ((x - mean) / std).to(device), sp.to(device)


# ------------------------------------------------------------------------------------ models
class CASTClassifier(nn.Module):
    """CAST-S backbone with a 1000-class linear head."""

    def __init__(self, literal: bool, fps_backend: str) -> None:
        super().__init__()
        from cast_mm.models import CAST
        self.backbone = CAST(arch='small', mode='classification', pos_embed='learned',
                             fps_backend=fps_backend, **(LITERAL if literal else {}))
        self.head = nn.Linear(384, 1000)

    def forward(self, x: torch.Tensor, sp: torch.Tensor, num_segments=None) -> torch.Tensor:
        return self.head(self.backbone(x, sp, num_segments)[0])


class CASTSegmenter(nn.Module):
    """CAST-S segmentation backbone with the superpixel mask-transformer decoder."""

    def __init__(self, literal: bool, fps_backend: str) -> None:
        super().__init__()
        from cast_mm.models import CAST, SuperpixelMaskTransformer
        self.backbone = CAST(arch='small', mode='segmentation', img_size=SEG_SIZE,
                             pos_embed='learned', fps_backend=fps_backend,
                             **(LITERAL if literal else {}))
        self.decoder = SuperpixelMaskTransformer(num_classes=SEG_CLASSES, in_channels=384,
                                                 fused_attn=not literal)

    def forward(self, x: torch.Tensor, sp: torch.Tensor) -> torch.Tensor:
        feats = self.backbone.forward_features(x, sp)
        return self.decoder(feats.fused_tokens, feats.token_labels)


class CASTSegmentTokens(nn.Module):
    """Stem and superpixel-resolution token pooling of CAST-S alone (the hot spot)."""

    def __init__(self, literal: bool) -> None:
        super().__init__()
        from cast_mm.models import CAST
        self.backbone = CAST(arch='small', mode='segmentation', img_size=SEG_SIZE,
                             pos_embed='learned', **(LITERAL if literal else {}))

    def forward(self, x: torch.Tensor, sp: torch.Tensor) -> torch.Tensor:
        return self.backbone.segment_tokens(self.backbone.stem(x), sp)[0]


class DeiTSmall(nn.Module):
    """mmpretrain ViT-S/16 (DeiT-S) with a 1000-class linear head."""

    def __init__(self) -> None:
        super().__init__()
        from mmpretrain.models import VisionTransformer
        self.backbone = VisionTransformer(arch='deit-small', img_size=CLS_SIZE, patch_size=16)
        self.head = nn.Linear(384, 1000)

    def forward(self, x: torch.Tensor, sp: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x)[-1])


class SegmenterViTSmall(nn.Module):
    """mmseg Segmenter ViT-S/16 (mask-transformer head), logits resized to the input."""

    def __init__(self) -> None:
        super().__init__()
        from mmseg.models.backbones import VisionTransformer
        from mmseg.models.decode_heads import SegmenterMaskTransformerHead
        self.backbone = VisionTransformer(
            img_size=(SEG_SIZE, SEG_SIZE), patch_size=16, embed_dims=384, num_layers=12,
            num_heads=6, final_norm=True, with_cls_token=True, interpolate_mode='bicubic')
        self.head = SegmenterMaskTransformerHead(
            in_channels=384, channels=384, num_classes=SEG_CLASSES, num_layers=2, num_heads=6,
            embed_dims=384, dropout_ratio=0.)

    def forward(self, x: torch.Tensor, sp: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.backbone(x))
        return F.interpolate(logits, size=x.shape[-2:], mode='bilinear', align_corners=False)


def build_model(name: str, device: torch.device) -> nn.Module:
    """Models by name; the literal CAST uses DGL's FPS on CPU (its only kernel here)."""
    literal_fps = 'dgl' if device.type == 'cpu' else 'native'
    builders: Dict[str, Callable[[], nn.Module]] = {
        'cast_cls_literal': lambda: CASTClassifier(True, literal_fps),
        'cast_cls_fast': lambda: CASTClassifier(False, 'native'),
        'deit_s': DeiTSmall,
        'cast_seg_literal': lambda: CASTSegmenter(True, literal_fps),
        'cast_seg_fast': lambda: CASTSegmenter(False, 'native'),
        'segmenter_vit_s': SegmenterViTSmall,
        'tokens_literal': lambda: CASTSegmentTokens(True),
        'tokens_fast': lambda: CASTSegmentTokens(False),
    }
    from cast_mm.models import CAST
    torch.manual_seed(0)
    model = builders[name]()
    if isinstance(model.backbone, CAST):
        model.backbone.init_weights()
    return model.to(device).eval()


MODEL_GROUPS = {
    'classification': (['cast_cls_literal', 'cast_cls_fast', 'deit_s'],
                       (CLS_SIZE, CLS_BATCH, CLS_SEGMENTS)),
    'segmentation': (['cast_seg_literal', 'cast_seg_fast', 'segmenter_vit_s'],
                     (SEG_SIZE, SEG_BATCH, SEG_SEGMENTS)),
    'segment tokens (stem + token pooling)': (['tokens_literal', 'tokens_fast'],
                                              (SEG_SIZE, SEG_BATCH, SEG_SEGMENTS)),
}


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


def _cpu_peak_child(name: str, shape: Tuple[int, int, int], threads: int, queue) -> None:
    torch.set_num_threads(threads)
    device = torch.device('cpu')
    model = build_model(name, device)
    x, sp = model_inputs(*shape, device)
    # Reset the peak (a forked child starts with its parent's peak), then measure.
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')
    before = _rss_bytes('VmRSS')
    with torch.no_grad():
        model(x, sp)
    queue.put(_rss_bytes('VmHWM') - before)


def peak_memory(name: str, shape: Tuple[int, int, int], device: torch.device,
                threads: int) -> int:
    """Peak bytes one forward of ``name`` needs above what is held before it."""
    if device.type == 'cuda':
        model = build_model(name, device)
        x, sp = model_inputs(*shape, device)
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        with torch.no_grad():
            model(x, sp)
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    ctx = multiprocessing.get_context('spawn')
    queue = ctx.Queue()
    child = ctx.Process(target=_cpu_peak_child, args=(name, shape, threads, queue))
    child.start()
    result = queue.get()
    child.join()
    return result


# ---------------------------------------------------------------------------------- printing
def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [list(map(str, header))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f'\n## {title}\n')
    for i, row in enumerate(cells):
        print('| ' + ' | '.join(c.ljust(w) for c, w in zip(row, widths)) + ' |')
        if i == 0:
            print('|' + '|'.join('-' * (w + 2) for w in widths) + '|')


def max_rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


# ---------------------------------------------------------------------------------- sections
def compare_paths(literal: nn.Module, fast: nn.Module, x: torch.Tensor,
                  sp: torch.Tensor) -> str:
    """How the fast and the literal CAST differ: continuous tensors and discrete choices."""
    from cast_mm.models.layers import level_assignments
    out_fast, out_literal = fast(x, sp), literal(x, sp)
    text = f'outputs max |diff| / max |literal| = {max_rel_diff(out_fast, out_literal):.2e}'
    if not hasattr(fast.backbone, 'forward_features'):
        return text
    feats_fast = fast.backbone.forward_features(x, sp)
    feats_literal = literal.backbone.forward_features(x, sp)
    tokens = max(max_rel_diff(a, b)
                 for a, b in zip(feats_fast.stage_tokens, feats_literal.stage_tokens))
    same_inds = all(torch.equal(a, b)
                    for a, b in zip(feats_fast.sampled_inds, feats_literal.sampled_inds))
    flips = sum(int((a != b).sum()) for a, b in zip(level_assignments(feats_fast.pool_logits),
                                                    level_assignments(feats_literal.pool_logits)))
    return (f'{text}; stage tokens {tokens:.2e}; sampled indices identical: {same_inds}; '
            f'argmax level assignments that differ (near ties): {flips} of '
            f'{feats_fast.pool_logits[0].shape[:2].numel() * len(feats_fast.pool_logits)}')


def bench_models(args, device: torch.device, results: Dict) -> None:
    for group, (names, shape) in MODEL_GROUPS.items():
        x, sp = model_inputs(*shape, device)
        models = {name: build_model(name, device) for name in names}
        literal, fast = models[names[0]], models[names[1]]
        fast.load_state_dict(literal.state_dict())
        with torch.no_grad():
            comparison = compare_paths(literal, fast, x, sp)
            fns = {name: (lambda m=m: m(x, sp)) for name, m in models.items()}
            times = interleaved_times(fns, device, args.warmup, args.repeats)
        del models, fns
        rows = []
        for name in names:
            mem = peak_memory(name, shape, device, args.threads)
            rows.append([name, f'{shape[1] / times[name]:.2f}', f'{times[name] * 1e3:.0f}',
                         f'{mem / 2**20:.0f}'])
            results[f'{group}/{name}'] = dict(images_per_s=shape[1] / times[name],
                                              seconds=times[name], peak_mib=mem / 2**20)
        print_table(f'{group}: {shape[0]}x{shape[0]}, {shape[2]} SEEDS superpixels, batch '
                    f'{shape[1]}', ['model', 'images/s', 'ms/batch', 'peak MiB'], rows)
        lit, fst = results[f'{group}/{names[0]}'], results[f'{group}/{names[1]}']
        print(f'\nfast vs literal: {lit["seconds"] / fst["seconds"]:.2f}x faster, '
              f'{lit["peak_mib"] / max(fst["peak_mib"], 1e-9):.2f}x less peak memory; '
              f'{comparison}')
        if len(names) > 2:
            ref = results[f'{group}/{names[2]}']
            print(f'fast CAST vs {names[2]}: {ref["seconds"] / fst["seconds"]:.2f}x the speed')
        results[f'{group}/comparison'] = comparison


def cast_like_points(batch: int, num_points: int, channels: int = 384) -> torch.Tensor:
    """FPS input as CAST builds it: [mean token, tokens], 10% padded tokens equal to the mean."""
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randn(batch, num_points - 1, channels, generator=gen)
    num_padded = (num_points - 1) // 10
    mean = tokens[:, :-num_padded].mean(dim=1, keepdim=True)
    tokens[:, -num_padded:] = mean
    return torch.cat([mean, tokens], dim=1)


def bench_fps(args, device: torch.device, results: Dict) -> None:
    from cast_mm.ops import farthest_point_sampling
    rows = []
    for batch, num_points, num_samples in [(8, 197, 65), (2, 1025, 321)]:
        points = cast_like_points(batch, num_points)
        on_device = points.to(device)
        fns = {
            'native': lambda: farthest_point_sampling(on_device, num_samples),
            'dgl': lambda: farthest_point_sampling(points, num_samples, backend='dgl'),
        }
        times = interleaved_times(fns, device, args.warmup, max(args.repeats, 10))
        same = torch.equal(fns['native']().cpu(), fns['dgl']())
        ratio = times['dgl'] / times['native']
        rows.append([f'{num_points}->{num_samples - 1} x{batch}', f'{times["native"] * 1e3:.2f}',
                     f'{times["dgl"] * 1e3:.2f}', f'{ratio:.1f}x', same])
        results[f'fps/{num_points}x{batch}'] = dict(native_ms=times['native'] * 1e3,
                                                   dgl_ms=times['dgl'] * 1e3, identical=same)
    print_table(f'farthest point sampling (float64; native on {device.type}, DGL on cpu)',
                ['points -> samples', 'native ms', 'DGL ms', 'DGL / native', 'same indices'],
                rows)


def bench_superpixels(args, device: torch.device, results: Dict) -> None:
    from cast_mm.datasets.transforms import seeds_superpixels
    from cast_mm.ops import slic_superpixels
    rows = []
    for size, batch, budget in [(CLS_SIZE, CLS_BATCH, CLS_SEGMENTS),
                                (SEG_SIZE, SEG_BATCH, SEG_SEGMENTS)]:
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
    from cast_mm.datasets.transforms import seeds_superpixels
    from cast_mm.ops import boundary_recall, slic_superpixels, undersegmentation_error
    rows = []
    for size, budget in [(CLS_SIZE, CLS_SEGMENTS), (SEG_SIZE, SEG_SEGMENTS)]:
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
    eager = build_model('cast_cls_fast', device)
    x, sp = model_inputs(CLS_SIZE, CLS_BATCH, CLS_SEGMENTS, device)
    compiled = torch.compile(eager)
    # A fixed number of token slots keeps shapes static (no data-dependent graph break).
    slots = int(sp.max()) + 1
    with torch.no_grad():
        start = time.perf_counter()
        out = compiled(x, sp, slots)
        sync(device)
        compile_s = time.perf_counter() - start
        diff = max_rel_diff(out, eager(x, sp, slots))
        times = interleaved_times({'eager': lambda: eager(x, sp, slots),
                                   'compiled': lambda: compiled(x, sp, slots)}, device,
                                  args.warmup, args.repeats)
    rows = [[name, f'{CLS_BATCH / t:.2f}', f'{t * 1e3:.0f}'] for name, t in times.items()]
    print_table(f'torch.compile (inductor), CAST-S classification fast path, batch {CLS_BATCH}',
                ['mode', 'images/s', 'ms/batch'], rows)
    print(f'\ncompiled vs eager: {times["eager"] / times["compiled"]:.2f}x; first call (compile) '
          f'{compile_s:.0f} s; outputs max |diff| / max |eager| = {diff:.2e}')
    results['compile'] = dict(eager_s=times['eager'], compiled_s=times['compiled'],
                              compile_s=compile_s, rel_diff=diff)


SECTIONS = dict(models=bench_models, fps=bench_fps, superpixels=bench_superpixels,
                quality=bench_quality, compile=bench_compile)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda[:i]'")
    parser.add_argument('--threads', type=int, default=torch.get_num_threads(),
                        help='torch CPU threads (default: torch default)')
    parser.add_argument('--warmup', type=int, default=1, help='untimed rounds (default 1)')
    parser.add_argument('--repeats', type=int, default=5, help='timed rounds (default 5)')
    parser.add_argument('--mosaics', type=int, default=6,
                        help='photo mosaics per size for superpixel quality (default 6)')
    parser.add_argument('--sections', nargs='+', choices=sorted(SECTIONS), default=list(SECTIONS))
    parser.add_argument('--json', help='also write the numbers to this file')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        print('CUDA requested but not available', file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor()
    print(f'# CAST benchmark\n\ndevice {device} ({name or platform.machine()}), torch '
          f'{torch.__version__}, {args.threads} torch threads, {os.cpu_count()} cpus, '
          f'OMP_WAIT_POLICY={os.environ.get("OMP_WAIT_POLICY", "unset (OpenMP default)")}; '
          f'warm-up {args.warmup}, repeats {args.repeats} (interleaved, median); inference '
          f'mode; float32')
    results: Dict = dict(device=str(device), threads=args.threads, warmup=args.warmup,
                         repeats=args.repeats, torch=torch.__version__)
    for section in args.sections:
        SECTIONS[section](args, device, results)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1, default=float)
    return 0


if __name__ == '__main__':
    sys.exit(main())

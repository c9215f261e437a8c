"""Farthest point sampling as a torch custom op (``torch.ops.cast_mm.farthest_point_sampling``).

Semantics are those of ``dgl.geometry.farthest_point_sampler`` (what the official CAST code
calls): distances are squared Euclidean distances accumulated in float64, the first selected
point is ``start_idx``, every point keeps its minimum distance to the selected set, the next
point is the one with the largest such distance and ties go to the lowest index. When every
remaining distance is zero (every point coincides with a selected one) the scan returns index 0
again, exactly as DGL does.

Backends:

* ``'native'`` (default) resolves by device (:func:`native_implementation`):

  - CPU: the compiled kernel ``torch.ops.cast_mm.fps_cpu`` (``cast_mm/ops/csrc/fps_cpu.cpp``):
    DGL's arithmetic, so DGL's indices bitwise, on torch's thread pool; without the extension,
    DGL's own kernel;
  - CUDA: one Triton kernel launch samples all points of all items
    (:mod:`cast_mm.ops.fps_triton`), DGL's arithmetic as well; without Triton, or above
    ``fps_triton.MAX_POINTS`` points per item, the torch loop (:func:`fps_torch`);
  - any other device: the torch loop;

* ``'dgl'``: DGL's kernel, the reference (the PyPI DGL build has CPU kernels only: other
  devices' points are copied to the CPU).

The torch loop computes, per sample, every point's float64 Euclidean distance to the new centre
(``torch.cdist`` from the differences), a running minimum and an argmax; any device, no host
round trips. Its sums are reduced in torch's order and square-rooted, so distances can differ
from DGL's by rounding (indices only on near-ties); a distance is 0 exactly when the points
coincide, so it runs out of points exactly when DGL does.

A fake (meta) kernel lets ``torch.compile`` and ``torch.export`` trace models that call it.
"""
from typing import Optional

import torch
from torch import Tensor

from . import extension, fps_triton
from .precision import autocast_disabled

BACKENDS = ('native', 'dgl')

#: Transposed float64 points one CPU thread keeps in its cache (about an L2 cache): an item with
#: more is split into slices sampled in parallel.
SLICE_BYTES = 1 << 20


def _check_inputs(points: Tensor, num_samples: int, start_idx: int, backend: str) -> None:
    if points.dim() != 3:
        raise ValueError('farthest_point_sampling expects points of shape (B, N, C), '
                         f'got {tuple(points.shape)}')
    if num_samples < 1:
        raise ValueError(f'num_samples must be >= 1, got {num_samples}')
    if not 0 <= start_idx < points.shape[1]:
        raise ValueError(f'start_idx {start_idx} is outside [0, {points.shape[1]})')
    if backend not in BACKENDS:
        raise ValueError(f'unknown FPS backend {backend!r}; choose one of {BACKENDS}')


def native_implementation(device_type: str) -> str:
    """What ``backend='native'`` runs on ``device_type`` and why, e.g. for a log line."""
    if device_type == 'cpu':
        if extension.available():
            return 'compiled CPU kernel (cast_mm.ops._C)'
        return f'DGL kernel (cast_mm.ops._C {extension.status()})'
    if device_type == 'cuda':
        if fps_triton.available():
            return f'Triton kernel (torch loop above {fps_triton.MAX_POINTS} points)'
        return f'torch loop ({fps_triton.status()})'
    return f'torch loop (no kernel for {device_type})'


def slices_per_item(batch: int, num_points: int, channels: int, threads: int) -> int:
    """Into how many slices the CPU kernel splits each item: enough to bring every slice's
    transposed points under :data:`SLICE_BYTES`, and enough to give every thread work when there
    are fewer items than threads."""
    item_bytes = -(-num_points // 8) * 8 * channels * 8  # points padded to 8 lanes, float64
    return max(1, min(threads, max(-(-item_bytes // SLICE_BYTES), threads // max(batch, 1))))


def fps_cpu(points: Tensor, num_samples: int, start_idx: int,
            slices: Optional[int] = None) -> Tensor:
    """The compiled CPU kernel (needs the extension; see :mod:`cast_mm.ops.extension`).

    float32 and float64 points are read as they are (float32 widened exactly in the kernel),
    float16 and bfloat16 widened to float32 (exact), anything else converted to float64.
    ``slices`` (default :func:`slices_per_item`) splits each item's points; every choice gives
    the same indices.
    """
    if not extension.available():
        raise RuntimeError(f'the compiled FPS kernel is unavailable: cast_mm.ops._C '
                           f'{extension.status()}')
    if points.dtype not in (torch.float32, torch.float64):
        exact_in_single = points.dtype in (torch.float16, torch.bfloat16)
        points = points.to(torch.float32 if exact_in_single else torch.float64)
    if slices is None:
        slices = slices_per_item(*points.shape, max(1, torch.get_num_threads()))
    return torch.ops.cast_mm.fps_cpu(points, num_samples, start_idx, slices)


def fps_torch(points: Tensor, num_samples: int, start_idx: int) -> Tensor:
    """The torch loop (see the module docstring): four small ops per sample, any device."""
    points = points.to(torch.float64)
    batch, num_points, channels = points.shape
    rows = points.reshape(batch * num_points, channels)
    offsets = torch.arange(batch, device=points.device) * num_points
    current = torch.full((batch, ), start_idx, dtype=torch.long, device=points.device)
    picks = [current]
    min_dist = None
    for _ in range(num_samples - 1):
        centres = rows.index_select(0, current + offsets).unsqueeze(1)
        # Euclidean distances from the differences (not the Gram form): 0 only for equal points.
        dist = torch.cdist(points, centres, compute_mode='donot_use_mm_for_euclid_dist')[..., 0]
        min_dist = dist if min_dist is None else torch.minimum(min_dist, dist, out=min_dist)
        # torch.argmax returns the first maximal index (0 when all are 0), as DGL's '>' scan.
        current = min_dist.argmax(dim=1)
        picks.append(current)
    return torch.stack(picks, dim=1)


def fps_dgl(points: Tensor, num_samples: int, start_idx: int) -> Tensor:
    """DGL's kernel (on the CPU) with the result on ``points``' device."""
    try:
        from dgl.geometry import farthest_point_sampler
    except ImportError as err:  # pragma: no cover - dgl is a declared dependency
        raise ImportError("FPS backend 'dgl' needs the dgl package (pip install dgl==1.1.3)") \
            from err
    device = points.device
    points = points.detach().to('cpu', torch.float64).contiguous()
    return farthest_point_sampler(points, num_samples, start_idx=start_idx).to(device)


def _native_fps(points: Tensor, num_samples: int, start_idx: int) -> Tensor:
    if points.device.type == 'cpu':
        if extension.available():
            return fps_cpu(points, num_samples, start_idx)
        return fps_dgl(points, num_samples, start_idx)
    if points.device.type == 'cuda' and fps_triton.available() and \
            points.shape[1] <= fps_triton.MAX_POINTS:
        return fps_triton.fps_triton(points, num_samples, start_idx)
    return fps_torch(points, num_samples, start_idx)


@torch.library.custom_op('cast_mm::farthest_point_sampling', mutates_args=())
def _fps_op(points: Tensor, num_samples: int, start_idx: int, backend: str) -> Tensor:
    if backend == 'dgl':
        return fps_dgl(points, num_samples, start_idx)
    return _native_fps(points, num_samples, start_idx)


@_fps_op.register_fake
def _fps_fake(points: Tensor, num_samples: int, start_idx: int, backend: str) -> Tensor:
    return points.new_empty((points.shape[0], num_samples), dtype=torch.long)


def farthest_point_sampling(points: Tensor,
                            num_samples: int,
                            start_idx: int = 0,
                            backend: str = 'native') -> Tensor:
    """Sample ``num_samples`` points per batch item by farthest point sampling.

    Args:
        points (Tensor): ``(B, N, C)`` point features (any float dtype; computed in float64).
        num_samples (int): number of points to select per item, first one included.
        start_idx (int): index of the first selected point. Defaults to 0.
        backend (str): ``'native'`` (a kernel for the device) or ``'dgl'`` (DGL's CPU kernel,
            the reference). See the module docstring.

    Returns:
        Tensor: ``(B, num_samples)`` int64 indices into ``N``.
    """
    _check_inputs(points, num_samples, start_idx, backend)
    with autocast_disabled(points.device):  # distances in float64
        return _fps_op(points.detach(), int(num_samples), int(start_idx), backend)

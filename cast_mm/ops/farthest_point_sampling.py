"""Farthest point sampling as a torch custom op (``torch.ops.cast_mm.farthest_point_sampling``).

Semantics are those of ``dgl.geometry.farthest_point_sampler`` (what the official CAST code
calls): distances are squared Euclidean distances accumulated in float64, the first selected
point is ``start_idx``, every point keeps its minimum distance to the selected set, the next
point is the one with the largest such distance and ties go to the lowest index. When every
remaining distance is zero (fewer distinct points than samples) the scan returns index 0 again,
exactly as DGL does.

Two backends sit behind the one op:

* ``'native'`` (default): on CPU one call of a compiled kernel that computes DGL's distances
  exactly (:mod:`cast_mm.ops.fps_kernel`); elsewhere, or without a C compiler, all pairwise
  float64 distances from one Gram matrix (``B N^2`` memory) and a torch loop of three small
  ops per sample; any device (CPU, CUDA, ...), no host round trips;
* ``'dgl'``: DGL's own kernel (CPU tensors only with the PyPI DGL build), kept as the reference
  that the native backend is tested against.

A fake (meta) kernel lets ``torch.compile`` and ``torch.export`` trace models that call it.
"""
from typing import Tuple

import torch
from torch import Tensor

from . import fps_kernel
from .precision import autocast_disabled

BACKENDS = ('native', 'dgl')


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


def _row_stats(points: Tensor) -> Tuple[Tensor, Tensor]:
    """Squared norms and a fixed pseudo-random projection of the rows ``(B, N)`` each.

    Every row is reduced by the same code, so equal rows give bitwise equal statistics.
    """
    sq_norm = points.square().sum(dim=-1)
    # Pseudo-random weights in [0, 1), made on the device (no host-to-device copy).
    channel = torch.arange(points.shape[-1], device=points.device, dtype=points.dtype)
    weights = (channel.mul(12.9898).sin() * 43758.5453).frac()
    return sq_norm, (points * weights).sum(dim=-1)


def pairwise_sq_distances(points: Tensor) -> Tensor:
    """Squared Euclidean distances ``(B, N, N)`` in float64, exactly 0 between equal rows.

    ``|p_i - p_j|^2 = |p_i|^2 + |p_j|^2 - 2 p_i . p_j`` from one batched Gram matrix; these
    differ from a sequential sum of squared differences (DGL) only by rounding, except
    between equal rows, where rounding would leave tiny non-zero values: equal rows are found
    through two row statistics (squared norm, a fixed projection) and get exactly 0.
    """
    points = points.to(torch.float64)
    sq_norm, projection = _row_stats(points)
    # bmm then in-place updates: on CPU about 1.5x faster than baddbmm at N = 1025.
    dist = torch.bmm(points, points.transpose(1, 2)).mul_(-2)
    dist.add_(sq_norm.unsqueeze(2)).add_(sq_norm.unsqueeze(1)).clamp_(min=0)
    same = sq_norm.unsqueeze(2) == sq_norm.unsqueeze(1)
    same &= projection.unsqueeze(2) == projection.unsqueeze(1)
    return dist.masked_fill_(same, 0)


def _fps_loop(dist: Tensor, num_samples: int, start_idx: int) -> Tensor:
    """DGL's sampling loop over precomputed distances: three small ops per sample."""
    batch, num_points = dist.shape[:2]
    rows = dist.reshape(batch * num_points, num_points)
    offsets = torch.arange(batch, device=dist.device) * num_points
    current = torch.full((batch,), start_idx, dtype=torch.long, device=dist.device)
    picks = [current]
    min_dist = rows.index_select(0, current + offsets)
    for _ in range(num_samples - 1):
        # torch.argmax returns the first maximal index, DGL's strict '>' scan does the same.
        current = min_dist.argmax(dim=1)
        picks.append(current)
        torch.minimum(min_dist, rows.index_select(0, current + offsets), out=min_dist)
    return torch.stack(picks, dim=1)


def _native_fps(points: Tensor, num_samples: int, start_idx: int) -> Tensor:
    if points.device.type == 'cpu' and fps_kernel.load() is not None:
        return fps_kernel.sample(points, num_samples, start_idx)
    return _fps_loop(pairwise_sq_distances(points), num_samples, start_idx)


def _dgl_fps(points: Tensor, num_samples: int, start_idx: int) -> Tensor:
    try:
        from dgl.geometry import farthest_point_sampler
    except ImportError as err:  # pragma: no cover - dgl is a declared dependency
        raise ImportError("FPS backend 'dgl' needs the dgl package (pip install dgl==1.1.3)") \
            from err
    device = points.device
    if device.type != 'cpu':
        # The PyPI DGL build has CPU kernels only.
        points = points.cpu()
    return farthest_point_sampler(
        points.to(torch.float64).contiguous(), num_samples, start_idx=start_idx).to(device)


@torch.library.custom_op('cast_mm::farthest_point_sampling', mutates_args=())
def _fps_op(points: Tensor, num_samples: int, start_idx: int, backend: str) -> Tensor:
    if backend == 'dgl':
        return _dgl_fps(points, num_samples, start_idx)
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
        backend (str): ``'native'`` (torch, any device) or ``'dgl'`` (DGL's CPU kernel).

    Returns:
        Tensor: ``(B, num_samples)`` int64 indices into ``N``.
    """
    _check_inputs(points, num_samples, start_idx, backend)
    with autocast_disabled(points.device):  # distances in float64
        return _fps_op(points.detach(), int(num_samples), int(start_idx), backend)

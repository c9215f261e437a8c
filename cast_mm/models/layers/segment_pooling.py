"""Segment means of an interpolated grid, without materialising the interpolation.

The segmentation variants of CAST resize the stem features (bilinear) and the position table
(bicubic) to the full superpixel resolution and only then average them per superpixel. Both
resizes are linear in the grid values and separable, so every segment mean is a fixed weighted
sum of the low-resolution cells:

    mean_S(resize(f)) = sum_ij W[S, (i, j)] f[i, j],
    W[S, (i, j)] = 1 / |S| * sum_{(y, x) in S} a[y, i] b[x, j],

where ``a`` (rows) and ``b`` (columns) are the 1-D interpolation matrices. ``W`` depends only on
the superpixel map; it is built here as a sparse CSR matrix in ``O(H * W)`` time and memory
(no ``C``-channel full-resolution tensor), and the tokens are one sparse-dense product, whose
backward is the transposed product.

Construction: the 1-D matrices are taken from ``F.interpolate`` itself (interpolating an
identity), so the weights are exactly the ones PyTorch uses. Every output row ``y`` touches a
window of ``T`` consecutive input rows starting at ``start_y[y]`` (``T = 2`` bilinear,
``4`` bicubic). Pixels are first summed per (segment, window start) bin inside each segment's
bounding box of window starts, then every bin spreads its ``T x T`` tap products onto the
segment's bounding box of touched cells, which becomes one CSR row.
"""
import warnings
from typing import List, NamedTuple, Sequence, Tuple

import torch
from torch import Tensor

from cast_mm.ops import segment_mean
from cast_mm.ops.precision import autocast_disabled
from .pos_embed import interpolation_matrix, resize_pos_grid

#: Input rows one output row of an ``F.interpolate`` mode can touch.
NUM_TAPS = dict(bilinear=2, bicubic=4)


def interpolation_taps(matrix: Tensor, num_taps: int) -> Tuple[Tensor, Tensor]:
    """Windows of consecutive input indices covering each row of an interpolation matrix.

    Args:
        matrix (Tensor): ``(out, in)`` interpolation matrix.
        num_taps (int): window length (at least the support of every row).

    Returns:
        ``(start (out,), weights (out, T))``: row ``y`` equals ``weights[y]`` placed at input
        indices ``start[y] .. start[y] + T - 1``; ``T = min(num_taps, in)``.
    """
    in_size = matrix.shape[1]
    taps = min(num_taps, in_size)
    first = (matrix != 0).to(torch.uint8).argmax(dim=1)
    start = first.clamp(max=in_size - taps)
    cols = start[:, None] + torch.arange(taps, device=matrix.device)
    return start, matrix.gather(1, cols)


def _box(slot: Tensor, pos: Tensor, num_slots: int) -> Tuple[Tensor, Tensor]:
    """Per-slot ``(min, extent)`` of ``pos`` over the pixels of each slot (extent 0 if empty)."""
    low = pos.new_full((num_slots, ), torch.iinfo(pos.dtype).max)
    high = pos.new_full((num_slots, ), -1)
    low = low.scatter_reduce(0, slot, pos, 'amin')
    high = high.scatter_reduce(0, slot, pos, 'amax')
    extent = (high - low + 1).clamp(min=0)
    return torch.where(extent > 0, low, torch.zeros_like(low)), extent


def _local_grid(sizes: Tensor, widths: Tensor, total: int) -> Tuple[Tensor, Tensor, Tensor]:
    """Enumerate the cells of consecutive per-slot boxes.

    Returns ``(slot, row, col)`` of each of the ``total = sizes.sum()`` cells, boxes in slot
    order and each box row-major, so that ``row * width + col`` increases inside a box.
    """
    slot_ids = torch.arange(sizes.numel(), device=sizes.device)
    slot = torch.repeat_interleave(slot_ids, sizes, output_size=total)
    offsets = torch.cumsum(sizes, 0) - sizes
    local = torch.arange(total, device=sizes.device) - offsets[slot]
    width = widths[slot].clamp(min=1)
    return slot, local // width, local % width


class _WeightLayout(NamedTuple):
    """Everything :func:`segment_interpolation_weights` needs before its sizes are known."""
    slot: Tensor
    pix_y: Tensor
    pix_x: Tensor
    y0: Tensor
    x0: Tensor
    ext_x: Tensor
    bin_sizes: Tensor
    cell_w: Tensor
    cell_sizes: Tensor
    taps_y: Tensor
    taps_x: Tensor
    sizes: Tensor  # (2,): number of bins and of cells


def _weight_layout(labels: Tensor, num_slots: int, grid_size: Tuple[int, int],
                   full_size: Tuple[int, int], mode: str) -> _WeightLayout:
    """Pixels -> (slot, window start) bins inside each slot's box of window starts."""
    batch, height, width = labels.shape
    grid_h, grid_w = grid_size
    device = labels.device
    num_taps = NUM_TAPS[mode]
    start_y, taps_y = interpolation_taps(
        interpolation_matrix(grid_h, full_size[0], mode, device)[:height], num_taps)
    start_x, taps_x = interpolation_taps(
        interpolation_matrix(grid_w, full_size[1], mode, device)[:width], num_taps)
    ty, tx = taps_y.shape[1], taps_x.shape[1]
    total_slots = batch * num_slots
    slot = labels.long() + num_slots * torch.arange(batch, device=device).view(-1, 1, 1)
    slot = slot.reshape(-1)
    pix_y = start_y.view(1, -1, 1).expand(batch, height, width).reshape(-1)
    pix_x = start_x.view(1, 1, -1).expand(batch, height, width).reshape(-1)
    y0, ext_y = _box(slot, pix_y, total_slots)
    x0, ext_x = _box(slot, pix_x, total_slots)
    bin_sizes = ext_y * ext_x
    cell_h, cell_w = (ext_y + ty - 1) * (ext_y > 0), (ext_x + tx - 1) * (ext_x > 0)
    cell_sizes = cell_h * cell_w
    return _WeightLayout(slot, pix_y, pix_x, y0, x0, ext_x, bin_sizes, cell_w, cell_sizes,
                         taps_y, taps_x, torch.stack([bin_sizes.sum(), cell_sizes.sum()]))


def _build_weights(layout: _WeightLayout, num_bins: int, num_cells: int, batch: int,
                   num_slots: int, grid_size: Tuple[int, int], shared_grid: bool,
                   dtype: torch.dtype) -> Tensor:
    """The sparse matrix of a layout whose sizes have been read."""
    (slot, pix_y, pix_x, y0, x0, ext_x, bin_sizes, cell_w, cell_sizes, taps_y, taps_x,
     _) = layout
    grid_h, grid_w = grid_size
    height, width = taps_y.shape[0], taps_x.shape[0]
    ty, tx = taps_y.shape[1], taps_x.shape[1]
    device = slot.device
    total_slots = batch * num_slots

    bin_offsets = torch.cumsum(bin_sizes, 0) - bin_sizes
    bins = bin_offsets[slot] + (pix_y - y0[slot]) * ext_x[slot] + pix_x - x0[slot]
    products = (taps_y[:, None, :, None] * taps_x[None, :, None, :]).reshape(height, width, -1)
    moments = taps_y.new_zeros(num_bins, ty * tx)
    moments.index_add_(0, bins, products.expand(batch, -1, -1, -1).reshape(-1, ty * tx))

    # Bins -> cells of each slot's box of touched cells (one CSR row per slot).
    bin_slot, bin_row, bin_col = _local_grid(bin_sizes, ext_x, num_bins)
    cell_offsets = torch.cumsum(cell_sizes, 0) - cell_sizes
    tap_y = torch.arange(ty, device=device).view(1, -1, 1)
    tap_x = torch.arange(tx, device=device).view(1, 1, -1)
    targets = (cell_offsets[bin_slot].view(-1, 1, 1)
               + (bin_row.view(-1, 1, 1) + tap_y) * cell_w[bin_slot].view(-1, 1, 1)
               + bin_col.view(-1, 1, 1) + tap_x)
    values = moments.new_zeros(num_cells).index_add_(0, targets.reshape(-1), moments.reshape(-1))

    cell_slot, cell_row, cell_col = _local_grid(cell_sizes, cell_w, num_cells)
    # Pixels per slot without bincount (which reads the id range on the host on GPUs).
    counts = torch.zeros(total_slots, dtype=torch.long, device=device)
    counts = counts.index_add_(0, slot, torch.ones_like(slot)).clamp(min=1)
    values = values / counts[cell_slot]
    cols = (y0[cell_slot] + cell_row) * grid_w + x0[cell_slot] + cell_col
    if not shared_grid:
        cols = cols + (cell_slot // num_slots) * (grid_h * grid_w)
    crow = torch.cat([cell_sizes.new_zeros(1), torch.cumsum(cell_sizes, 0)])
    num_cols = grid_h * grid_w * (1 if shared_grid else batch)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)  # "sparse CSR support is in beta"
        return torch.sparse_csr_tensor(
            crow, cols, values.to(dtype), (total_slots, num_cols), check_invariants=False)


def segment_interpolation_weights(labels: Tensor,
                                  num_slots: int,
                                  grid_size: Tuple[int, int],
                                  full_size: Tuple[int, int],
                                  mode: str,
                                  shared_grid: bool = False,
                                  dtype: torch.dtype = torch.float32) -> Tensor:
    """Sparse matrix mapping a low-resolution grid to segment means of its resized version.

    ``W @ grid.reshape(-1, C)`` equals ``segment_mean`` of
    ``F.interpolate(grid, full_size, mode, align_corners=False)[..., :H, :W]`` over ``labels``.
    Its number of stored values depends on the map: it is read on the host once (one device
    sync on GPUs).

    Args:
        labels (Tensor): ``(B, H, W)`` int superpixel ids in ``[0, num_slots)``.
        num_slots (int): tokens per image ``M``.
        grid_size (tuple): ``(h, w)`` of the low-resolution grid.
        full_size (tuple): ``(H', W')`` the grid is resized to, ``H' >= H`` and ``W' >= W``
            (the map covers its top-left corner).
        mode (str): ``'bilinear'`` or ``'bicubic'``.
        shared_grid (bool): one grid for the whole batch (columns ``h * w``) instead of one per
            image (columns ``B * h * w``).
        dtype (torch.dtype): dtype of the values.

    Returns:
        Tensor: sparse CSR ``(B * M, G * h * w)`` with ``G = 1`` if ``shared_grid`` else ``B``.
    """
    layout = _weight_layout(labels, num_slots, grid_size, full_size, mode)
    num_bins, num_cells = layout.sizes.tolist()
    return _build_weights(layout, num_bins, num_cells, labels.shape[0], num_slots, grid_size,
                          shared_grid, dtype)


def interpolated_segment_means(grids: Sequence[Tuple[Tensor, str]], labels: Tensor,
                               num_slots: int, full_size: Tuple[int, int]) -> List[Tensor]:
    """:func:`interpolated_segment_mean` of several grids over one superpixel map.

    The sizes of all their sparse weights are read on the host together: one device sync
    for the lot.

    Args:
        grids: ``(grid, mode)`` pairs, each grid ``(G, h, w, C)`` with ``G`` 1 or ``B``.
        labels, num_slots, full_size: as for :func:`interpolated_segment_mean`.

    Returns:
        list[Tensor]: ``(B, num_slots, C)`` per grid.
    """
    batch = labels.shape[0]
    layouts = []
    for grid, mode in grids:
        if grid.shape[0] not in (1, batch):
            raise ValueError(f'grid batch {grid.shape[0]} must be 1 or the label batch {batch}')
        layouts.append(_weight_layout(labels, num_slots, tuple(grid.shape[1:3]), full_size,
                                      mode))
    sizes = torch.cat([layout.sizes for layout in layouts]).tolist()
    out = []
    for i, ((grid, _), layout) in enumerate(zip(grids, layouts)):
        groups, grid_h, grid_w, channels = grid.shape
        # Half-precision grids (autocast) are averaged in float32: sparse kernels may lack
        # them, and autocast would cast the product back to half precision.
        dtype = torch.promote_types(grid.dtype, torch.float32)
        weights = _build_weights(layout, sizes[2 * i], sizes[2 * i + 1], batch, num_slots,
                                 (grid_h, grid_w), groups == 1, dtype)
        flat = grid.reshape(groups * grid_h * grid_w, channels).to(dtype)
        with autocast_disabled(grid.device):
            tokens = torch.sparse.mm(weights, flat)
        out.append(tokens.view(batch, num_slots, channels).to(grid.dtype))
    return out


def interpolated_segment_mean(grid: Tensor, labels: Tensor, num_slots: int,
                              full_size: Tuple[int, int], mode: str) -> Tensor:
    """Segment means of a resized grid, computed from the grid itself.

    Equals ``segment_mean(F.interpolate(grid)[..., :H, :W], labels, num_slots)`` (channels
    last) up to float rounding, forward and backward.

    Args:
        grid (Tensor): ``(G, h, w, C)`` with ``G = B`` (one grid per image) or ``G = 1``
            (shared by the batch, e.g. a position table).
        labels (Tensor): ``(B, H, W)`` superpixel ids in ``[0, num_slots)``.
        num_slots (int): tokens per image.
        full_size (tuple): the size the grid is resized to before cropping to ``(H, W)``.
        mode (str): ``'bilinear'`` or ``'bicubic'``.

    Returns:
        Tensor: ``(B, num_slots, C)``.
    """
    return interpolated_segment_means([(grid, mode)], labels, num_slots, full_size)[0]


def resized_segment_mean(grid: Tensor, labels: Tensor, num_slots: int,
                         full_size: Tuple[int, int], mode: str) -> Tensor:
    """Segment means of a resized grid, computed literally: resize, crop, then average.

    The official computation, and the reference :func:`interpolated_segment_mean` equals;
    same arguments and result. A grid already of ``full_size`` is not resized.
    """
    batch, height, width = labels.shape
    grid = resize_pos_grid(grid, full_size, mode)[:, :height, :width]
    return segment_mean(grid.expand(batch, -1, -1, -1), labels, num_slots)

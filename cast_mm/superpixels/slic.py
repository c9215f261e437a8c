"""Batched SLIC superpixels in torch (CPU or GPU), a device-side alternative to SEEDS.

:func:`slic_superpixels` computes the maps of a batch; :class:`SLICSource` is SLIC as a
superpixel source (the pipeline step ``cast_mm.SLICSuperpixels`` and the segmentor's
``device_superpixels`` use it).

SLIC (Achanta et al., TPAMI 2012) is local k-means in ``(L, a, b, y, x)``: cluster centres start
on a regular grid, every pixel is assigned to the nearest of the centres of its own and the 8
surrounding grid cells (colour distance plus ``compactness / step`` times the spatial distance),
and centres move to the mean of their pixels. Everything is batched tensor code without host
round trips, so a segmentor can compute superpixels of a device batch inside its forward pass.

Differences from the reference algorithm: the candidate centres of a pixel are fixed by the
initial grid (as in SSN, Jampani et al. 2018) rather than searched in a ``2S`` window, and no
connectivity post-processing is done, so a superpixel can own a few detached pixels. Ids are
relabelled to be compact per image: ``0 .. S_b - 1``, every id used.
"""
import math
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from cast_mm.ops.precision import autocast_disabled
from cast_mm.registry import SUPERPIXEL_SOURCES
from .presets import SEG_PIXELS_PER_SUPERPIXEL
from .source import SuperpixelSource, check_images

#: sRGB (D65) to CIE XYZ.
_RGB_TO_XYZ = ((0.412453, 0.357580, 0.180423), (0.212671, 0.715160, 0.072169),
               (0.019334, 0.119193, 0.950227))
_WHITE_D65 = (0.950456, 1., 1.088754)


def rgb_to_lab(images: Tensor) -> Tensor:
    """CIE LAB (``L`` in 0..100) of sRGB images ``(B, 3, H, W)`` with values in 0..255."""
    rgb = images.float() / 255.
    linear = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055)**2.4, rgb / 12.92)
    matrix = torch.tensor(_RGB_TO_XYZ, device=images.device)
    with autocast_disabled(images.device):  # float32 colours under autocast too
        xyz = torch.einsum('ij,bjhw->bihw', matrix, linear)
    xyz = xyz / torch.tensor(_WHITE_D65, device=images.device).view(1, 3, 1, 1)
    eps = (6. / 29.)**3
    f = torch.where(xyz > eps, xyz.clamp(min=eps)**(1. / 3.), xyz / (3 * (6. / 29.)**2) + 4. / 29.)
    fx, fy, fz = f.unbind(1)
    return torch.stack([116. * fy - 16., 500. * (fx - fy), 200. * (fy - fz)], dim=1)


def superpixel_grid(height: int, width: int, num_superpixels: int) -> Tuple[int, int]:
    """Cell size ``(ch, cw)`` of the seed grid: about ``num_superpixels`` square-ish cells.

    The grid has ``ceil(H / ch) x ceil(W / cw)`` cells (e.g. 14 x 14 cells of 16 x 16 pixels
    for 196 superpixels on 224 x 224).
    """
    rows = max(1, min(height, round(math.sqrt(num_superpixels * height / width))))
    cols = max(1, min(width, round(num_superpixels / rows)))
    return math.ceil(height / rows), math.ceil(width / cols)


def _neighbour_cells(rows: int, cols: int, device: torch.device) -> Tensor:
    """``(rows * cols, 9)`` ids of each grid cell and its 8 neighbours (clamped at borders)."""
    cy = torch.arange(rows, device=device).view(-1, 1, 1)
    cx = torch.arange(cols, device=device).view(1, -1, 1)
    offsets = torch.tensor([-1, 0, 1], device=device)
    ny = (cy + offsets.repeat_interleave(3)).clamp(0, rows - 1)
    nx = (cx + offsets.repeat(3)).clamp(0, cols - 1)
    return (ny * cols + nx).view(rows * cols, 9)


def _cell_padding(height: int, width: int, rows: int, cols: int, cell_h: int,
                  cell_w: int) -> Tuple[int, int, int, int]:
    """``F.pad`` sizes that extend an image to whole grid cells (bottom / right)."""
    return (0, cols * cell_w - width, 0, rows * cell_h - height)


def _by_cell(x: Tensor, rows: int, cols: int) -> Tensor:
    """``(B, C, rows * ch, cols * cw)`` -> ``(B, rows * cols, ch * cw, C)``, cells row-major."""
    batch, channels, height, width = x.shape
    cells = x.view(batch, channels, rows, height // rows, cols, width // cols)
    return cells.permute(0, 2, 4, 3, 5, 1).reshape(batch, rows * cols, -1, channels)


def compact_labels(labels: Tensor, num_labels: int) -> Tensor:
    """Renumber ``(B, H, W)`` ids in ``[0, num_labels)`` to ``0 .. S_b - 1`` per image."""
    batch = labels.shape[0]
    flat = labels.reshape(batch, -1)
    used = torch.zeros(batch, num_labels, dtype=torch.long, device=labels.device)
    used.scatter_(1, flat, 1)
    rank = used.cumsum(dim=1) - 1
    return rank.gather(1, flat).view_as(labels)


def _assign(pixels: Tensor, centres: Tensor, neighbours: Tensor) -> Tensor:
    """Nearest candidate centre of every pixel, pixels grouped by grid cell.

    Args:
        pixels (Tensor): ``(B, cells, P, 5)`` features of the ``P`` pixels of each cell.
        centres (Tensor): ``(B, cells, 5)``.
        neighbours (Tensor): ``(cells, 9)`` candidate cells of each cell.

    Returns:
        Tensor: ``(B, cells, P)`` int64 index of the nearest centre.
    """
    batch, cells, num_pix, dims = pixels.shape
    cand = centres[:, neighbours]  # (B, cells, 9, 5)
    # |p - c|^2 = |p|^2 - 2 p.c + |c|^2; |p|^2 does not change the argmin.
    # Outside autocast: squared norms pass float16's range and bfloat16 rounds them coarsely.
    with autocast_disabled(pixels.device):
        dist = torch.baddbmm(
            cand.square().sum(-1).view(batch * cells, 9, 1),
            cand.reshape(batch * cells, 9, dims),
            pixels.reshape(batch * cells, num_pix, dims).transpose(1, 2), alpha=-2)
    # argmin over the 9 candidates as a running minimum (much faster than argmin on CPU).
    best_dist = dist[:, 0]
    nearest = torch.zeros_like(best_dist, dtype=torch.uint8)
    for k in range(1, 9):
        closer = dist[:, k] < best_dist
        best_dist = torch.where(closer, dist[:, k], best_dist)
        nearest = nearest.masked_fill_(closer, k)
    nearest = nearest.long().view(batch, cells, num_pix)
    return neighbours.expand(batch, -1, -1).gather(2, nearest)


def slic_superpixels(images: Tensor,
                     num_superpixels: int,
                     compactness: float = 10.,
                     num_iterations: int = 10,
                     channel_order: str = 'rgb') -> Tensor:
    """SLIC superpixels of a batch of images, on the images' device.

    Args:
        images (Tensor): ``(B, 3, H, W)`` colour images, values in 0..255 (uint8 or float).
        num_superpixels (int): budget per image (the seed grid has about this many cells).
        compactness (float): weight of the spatial distance (in LAB units per grid step);
            larger gives more regular superpixels. Defaults to 10 (as scikit-image).
        num_iterations (int): k-means iterations. Defaults to 10.
        channel_order (str): ``'rgb'`` or ``'bgr'``. Defaults to ``'rgb'``.

    Returns:
        Tensor: ``(B, H, W)`` int64 ids, compact per image (``0 .. S_b - 1``, all used).
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f'slic_superpixels expects (B, 3, H, W) images, got '
                         f'{tuple(images.shape)}')
    if channel_order not in ('rgb', 'bgr'):
        raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
    if num_superpixels < 1:
        raise ValueError(f'num_superpixels must be >= 1, got {num_superpixels}')
    if channel_order == 'bgr':
        images = images.flip(1)
    batch, _, height, width = images.shape
    device = images.device
    cell_h, cell_w = superpixel_grid(height, width, num_superpixels)
    rows, cols = math.ceil(height / cell_h), math.ceil(width / cell_w)
    lab = rgb_to_lab(images)
    scale = compactness / math.sqrt(cell_h * cell_w)
    ys = torch.arange(height, device=device, dtype=lab.dtype).view(1, 1, -1, 1)
    xs = torch.arange(width, device=device, dtype=lab.dtype).view(1, 1, 1, -1)
    feats = torch.cat([lab, (ys * scale).expand(batch, 1, height, width),
                       (xs * scale).expand(batch, 1, height, width)], dim=1)
    # Pixels grouped by grid cell; `inside` is 0 on the padding of the last cells.
    pixels = _by_cell(F.pad(feats, _cell_padding(height, width, rows, cols, cell_h, cell_w),
                            'replicate'), rows, cols)
    inside = _by_cell(F.pad(feats.new_ones(1, 1, height, width),
                            _cell_padding(height, width, rows, cols, cell_h, cell_w)), rows, cols)
    neighbours = _neighbour_cells(rows, cols, device)
    # Seeds: mean feature of each grid cell.
    centres = (pixels * inside).sum(2) / inside.sum(2)
    flat_pixels = pixels.reshape(batch, -1, 5)
    weights = inside.reshape(1, -1, 1).expand(batch, -1, -1)
    for _ in range(num_iterations):
        index = _assign(pixels, centres, neighbours).view(batch, -1, 1)
        sums = centres.new_zeros(batch, rows * cols, 5)
        sums.scatter_add_(1, index.expand(-1, -1, 5), flat_pixels * weights)
        counts = centres.new_zeros(batch, rows * cols, 1).scatter_add_(1, index, weights)
        centres = torch.where(counts > 0, sums / counts.clamp(min=1), centres)
    labels = _assign(pixels, centres, neighbours)
    labels = labels.view(batch, rows, cols, cell_h, cell_w).permute(0, 1, 3, 2, 4)
    labels = labels.reshape(batch, rows * cell_h, cols * cell_w)[:, :height, :width]
    return compact_labels(labels, rows * cols)


@SUPERPIXEL_SOURCES.register_module(name='SLICSuperpixels')
class SLICSource(SuperpixelSource):
    """SLIC as a superpixel source: one image on the CPU, or a batch on its device.

    Configs name it ``cast_mm.SLICSuperpixels``: as a pipeline step (the transform of that
    name, a drop-in alternative to ``cast_mm.SEEDSSuperpixels``) and as the segmentor's
    ``device_superpixels`` (this class, whole batches on the batch's device).

    Args:
        num_superpixels (int, optional): fixed budget per image.
        pixels_per_superpixel (int, optional): budget ``H * W // pixels_per_superpixel`` when
            ``num_superpixels`` is None. Defaults to 256 (the official segmentation budget).
        compactness (float): spatial weight of the SLIC distance. Defaults to 10.
        num_iterations (int): k-means iterations. Defaults to 10.
        channel_order (str): ``'bgr'`` (mmcv loading, default) or ``'rgb'``.
        key (str): image key of the pipeline step. Defaults to ``'img'``.
    """

    def __init__(self,
                 num_superpixels: Optional[int] = None,
                 pixels_per_superpixel: Optional[int] = SEG_PIXELS_PER_SUPERPIXEL,
                 compactness: float = 10.,
                 num_iterations: int = 10,
                 channel_order: str = 'bgr',
                 key: str = 'img') -> None:
        self.set_budget(num_superpixels, pixels_per_superpixel)
        self.set_channel_order(channel_order)
        self.compactness = compactness
        self.num_iterations = num_iterations
        self.key = key

    def compute(self, image: np.ndarray) -> np.ndarray:
        """Superpixels of one ``H x W x 3`` uint8 image."""
        batch = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
        return self.compute_batch(batch)[0].numpy()

    def compute_batch(self, images: Tensor) -> Tensor:
        """Superpixels ``(B, H, W)`` of uint8 images ``(B, 3, H, W)``, on their device."""
        check_images(images)
        with torch.no_grad():
            return slic_superpixels(images, self.budget(*images.shape[-2:]), self.compactness,
                                    self.num_iterations, self.channel_order)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.budget_repr()}, compactness={self.compactness}, '
                f'num_iterations={self.num_iterations}, channel_order={self.channel_order!r})')

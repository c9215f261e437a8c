"""Position embeddings of CAST: fixed 2-D sin-cos tables and grid resizing."""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from cast_mm.ops.precision import autocast_disabled
from ..execution_profile import POSITION_INTERPOLATION


def sincos_pos_embed_2d(grid_size: Tuple[int, int], embed_dims: int,
                        temperature: float = 10000.) -> Tensor:
    """MoCo-v3 2-D sin-cos table ``(1, H*W, C)``, row-major over the grid.

    Token ``r * W + c`` is ``[sin(r w), cos(r w), sin(c w), cos(c w)]`` with
    ``w_d = temperature ** (-d / (C / 4))``.
    """
    if embed_dims % 4 != 0:
        raise ValueError(f'sin-cos position embedding needs embed_dims divisible by 4, '
                         f'got {embed_dims}')
    height, width = grid_size
    quarter = embed_dims // 4
    omega = 1. / temperature**(torch.arange(quarter, dtype=torch.float32) / quarter)
    rows, cols = torch.meshgrid(
        torch.arange(height, dtype=torch.float32),
        torch.arange(width, dtype=torch.float32),
        indexing='ij')
    r = rows.reshape(-1, 1) * omega
    c = cols.reshape(-1, 1) * omega
    return torch.cat([r.sin(), r.cos(), c.sin(), c.cos()], dim=1).unsqueeze(0)


def interpolation_matrix(in_size: int, out_size: int, mode: str,
                         device: torch.device = torch.device('cpu')) -> Tensor:
    """The ``(out_size, in_size)`` matrix of a 1-D ``F.interpolate(align_corners=False)``.

    Built in float64 (PyTorch then computes the weights in double precision too).

    Args:
        in_size (int): input length.
        out_size (int): output length.
        mode (str): ``'bilinear'`` or ``'bicubic'`` (applied along one axis).
        device (torch.device): where to build it.
    """
    # Channel c of the input is the c-th unit vector; the width axis stays 1 -> 1 (identity).
    eye = torch.eye(in_size, device=device, dtype=torch.float64)[None, :, :, None]
    out = F.interpolate(eye, size=(out_size, 1), mode=mode, align_corners=False)
    return out[0, :, :, 0].t()


def resize_pos_grid(grid: Tensor, size: Tuple[int, int],
                    mode: str = POSITION_INTERPOLATION) -> Tensor:
    """Resize a grid ``(G, h, w, C)`` (a position table, channels-last features) to
    ``(G, H, W, C)``; the identity when the sizes are equal.

    With ``torch.use_deterministic_algorithms(True)`` (MMEngine's
    ``randomness=dict(deterministic=True)``) a grid that needs gradients is resized by the
    products with the 1-D interpolation matrices (:func:`interpolation_matrix`, the same
    weights): the backward of ``F.interpolate`` has no deterministic CUDA kernel and raises in
    that mode. Same result up to float rounding, on every device.
    """
    if tuple(grid.shape[1:3]) == tuple(size):
        return grid
    if torch.are_deterministic_algorithms_enabled() and grid.requires_grad:
        dtype = torch.promote_types(grid.dtype, torch.float32)
        rows = interpolation_matrix(grid.shape[1], size[0], mode, grid.device).to(dtype)
        cols = interpolation_matrix(grid.shape[2], size[1], mode, grid.device).to(dtype)
        with autocast_disabled(grid.device):
            out = torch.einsum('yi,gijc,xj->gyxc', rows, grid.to(dtype), cols)
        return out.to(grid.dtype)
    out = F.interpolate(grid.permute(0, 3, 1, 2), size=size, mode=mode, align_corners=False)
    return out.permute(0, 2, 3, 1)

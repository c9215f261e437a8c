"""Position embeddings of CAST: fixed 2-D sin-cos tables and grid resizing."""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

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


def resize_pos_grid(grid: Tensor, size: Tuple[int, int],
                    mode: str = POSITION_INTERPOLATION) -> Tensor:
    """Resize a grid ``(G, h, w, C)`` (a position table, channels-last features) to
    ``(G, H, W, C)``; the identity when the sizes are equal."""
    if tuple(grid.shape[1:3]) == tuple(size):
        return grid
    out = F.interpolate(grid.permute(0, 3, 1, 2), size=size, mode=mode, align_corners=False)
    return out.permute(0, 2, 3, 1)

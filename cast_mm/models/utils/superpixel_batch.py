"""Batching of superpixel maps (shared by the mmseg and mmpretrain data preprocessors)."""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


def stack_superpixel_maps(maps: Sequence[Tensor],
                          size: Optional[Tuple[int, int]] = None) -> Tensor:
    """Stack ``H_i x W_i`` id maps into ``B x H x W`` int64, padding bottom/right.

    Padded pixels repeat the nearest border id (replicate padding), so they never form a
    segment of their own: they join the border segment next to them, exactly like the padded
    image pixels they cover.

    Args:
        maps: one ``(H_i, W_i)`` integer map per image.
        size: ``(H, W)`` to pad to; defaults to the largest map of the batch.
    """
    if len(maps) == 0:
        raise ValueError('stack_superpixel_maps needs at least one map')
    for i, m in enumerate(maps):
        if m.dim() != 2 or m.dtype.is_floating_point:
            raise ValueError(f'superpixel map {i} must be an (H, W) integer tensor, got shape '
                             f'{tuple(m.shape)} and dtype {m.dtype}')
    if size is None:
        size = (max(m.shape[0] for m in maps), max(m.shape[1] for m in maps))
    out = []
    for m in maps:
        pad_h, pad_w = size[0] - m.shape[0], size[1] - m.shape[1]
        if pad_h < 0 or pad_w < 0:
            raise ValueError(f'superpixel map of shape {tuple(m.shape)} is larger than the '
                             f'batch size {tuple(size)}')
        m = m.long()
        if pad_h or pad_w:
            # replicate padding works on float tensors; ids are exact in float64.
            m = F.pad(m[None, None].double(), (0, pad_w, 0, pad_h), mode='replicate')[0, 0]
            m = m.long()
        out.append(m)
    return torch.stack(out)

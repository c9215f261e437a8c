"""Superpixel maps of a batch: read from data samples, stacked and padded.

One place for what the mmseg and mmpretrain data preprocessors, segmentors and classifiers
share: the hints that tell a user how to make a pipeline produce superpixels, reading the maps
the pipeline packed into the data samples, and stacking maps of different sizes.
"""
from typing import Any, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from cast_mm.utils.host_values import host_values

#: What to tell a user whose mmseg pipeline produced no superpixel map.
MISSING_SUPERPIXELS_HINT = (
    "add dict(type='cast_mm.SEEDSSuperpixels') after the last geometric transform (and any "
    "Pad) of the pipeline, and pack with dict(type='cast_mm.PackSuperpixelSegInputs')")

#: What to tell a user whose mmpretrain pipeline produced no superpixel map.
MISSING_CLS_SUPERPIXELS_HINT = (
    "add dict(type='cast_mm.SEEDSSuperpixels', preset='deit' or 'moco') after the last "
    "augmentation of the pipeline (for multi-view pipelines wrap it in ApplyToList after "
    "MultiView) and pack with dict(type='cast_mm.PackSuperpixelClsInputs')")


def sample_superpixels(data_samples: Optional[Sequence[Any]],
                       hint: str = MISSING_SUPERPIXELS_HINT,
                       required: bool = False) -> Optional[List[Tensor]]:
    """The superpixel maps the data samples of a batch carry, or None if none carries one.

    mmseg samples hold ``superpixels`` as ``PixelData`` of shape ``(1, H, W)`` (read as
    ``(H, W)``), mmpretrain samples as a tensor ``(H, W)`` or ``(V, H, W)`` for ``V`` views.

    Args:
        data_samples: the batch's data samples (may be None).
        hint (str): how to make the pipeline produce superpixels, for the error messages.
        required (bool): raise instead of returning None when no sample carries a map.

    Raises:
        ValueError: if only some samples carry a map, or none does and ``required``.
    """
    if not data_samples:
        if required:
            raise ValueError(f'CAST needs superpixels but the batch has no data samples; {hint}')
        return None
    present = ['superpixels' in sample for sample in data_samples]
    if all(present):
        maps = [sample.superpixels for sample in data_samples]
        return [m if isinstance(m, Tensor) else m.data[0] for m in maps]
    if not any(present) and not required:
        return None
    raise ValueError(f'sample {present.index(False)} carries no superpixels ({sum(present)} of '
                     f'{len(present)} samples do); {hint}')


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


#: Data-sample metainfo key: the token slots (largest superpixel id + 1) of the sample's batch,
#: computed on the host from the data loader's maps.
SUPERPIXEL_SLOTS_KEY = 'superpixel_slots'


def host_slot_count(maps: Sequence[Tensor]) -> Optional[int]:
    """Largest id + 1 over maps the data loader produced, read on the host.

    Args:
        maps: integer id maps.

    Returns:
        the number of token slots the maps need; None when a map is not on the host (reading
        it would stall the device, so the model computes the number itself).

    Raises:
        ValueError: if an id is negative.
    """
    if not maps or any(m.device.type != 'cpu' for m in maps):
        return None
    with host_values():  # the data loader's tensors: no device involved
        low = min(int(m.min()) for m in maps if m.numel())
        high = max(int(m.max()) for m in maps if m.numel())
    if low < 0:
        raise ValueError(f'superpixel ids must be >= 0, got min {low}')
    return high + 1


def batch_slot_count(data_samples: Optional[Sequence[Any]]) -> Optional[int]:
    """The :data:`SUPERPIXEL_SLOTS_KEY` the data preprocessor gave every sample, or None."""
    if not data_samples:
        return None
    counts = [sample.metainfo.get(SUPERPIXEL_SLOTS_KEY) if hasattr(sample, 'metainfo')
              else None for sample in data_samples]
    if any(count is None for count in counts):
        return None
    return max(counts)

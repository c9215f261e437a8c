"""Pooling of per-pixel features into per-segment tokens, and back.

A superpixel map holds one integer id per pixel. ``segment_mean`` turns ``(B, H, W, C)``
features into ``(B, M, C)`` tokens, token ``j`` being the mean over the pixels whose id is ``j``.
``M`` is shared by the whole batch (largest id + 1 over the batch), as in the official code, so
ids that an image does not use give all-zero tokens that ``segment_padding_mask`` flags.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor


def num_segments(labels: Tensor) -> int:
    """Number of token slots a batch of superpixel maps needs (largest id + 1)."""
    return int(labels.max()) + 1


def segment_sum_and_count(x: Tensor, labels: Tensor,
                          num_slots: Optional[int] = None) -> Tuple[Tensor, Tensor]:
    """Per-segment sums ``(B, M, C)`` and pixel counts ``(B, M)`` of ``x`` ``(B, H, W, C)``."""
    batch, channels = x.shape[0], x.shape[-1]
    if num_slots is None:
        num_slots = num_segments(labels)
    flat = labels.reshape(batch, -1)
    flat = flat + torch.arange(batch, device=flat.device).unsqueeze(1) * num_slots
    flat = flat.reshape(-1)
    sums = x.new_zeros(batch * num_slots, channels)
    sums.index_add_(0, flat, x.reshape(-1, channels))
    counts = torch.bincount(flat, minlength=batch * num_slots)
    return sums.view(batch, num_slots, channels), counts.view(batch, num_slots)


def segment_mean(x: Tensor, labels: Tensor, num_slots: Optional[int] = None) -> Tensor:
    """Mean of ``x`` ``(B, H, W, C)`` inside each segment of ``labels`` ``(B, H, W)``.

    Empty segments (ids an image does not use) average to zero vectors.
    """
    sums, counts = segment_sum_and_count(x, labels, num_slots)
    return sums / counts.clamp(min=1).unsqueeze(-1).to(sums.dtype)


def segment_padding_mask(labels: Tensor, num_slots: Optional[int] = None) -> Tensor:
    """``(B, M)`` bool mask, True where a segment id has no pixel in that image."""
    if num_slots is None:
        num_slots = num_segments(labels)
    batch = labels.shape[0]
    flat = labels.reshape(batch, -1)
    counts = labels.new_zeros((batch, num_slots), dtype=torch.long)
    counts.scatter_add_(1, flat, torch.ones_like(flat))
    return counts == 0


def gather_tokens(tokens: Tensor, index: Tensor) -> Tensor:
    """``out[b, i] = tokens[b, index[b, i]]`` for tokens ``(B, N, C)`` and index ``(B, ...)``."""
    batch, channels = tokens.shape[0], tokens.shape[-1]
    flat = index.reshape(batch, -1)
    out = tokens.gather(1, flat.unsqueeze(-1).expand(-1, -1, channels))
    return out.view(*index.shape, channels)


def segment_to_pixels(tokens: Tensor, labels: Tensor) -> Tensor:
    """Scatter segment values ``(B, M, C)`` to pixels through ``labels`` ``(B, H, W)``.

    Returns ``(B, C, H, W)``.
    """
    batch, num_slots, channels = tokens.shape
    # One row lookup over the batch-flattened table; faster than a batched gather on CPU.
    offsets = torch.arange(batch, device=labels.device).view(batch, 1, 1) * num_slots
    rows = tokens.reshape(batch * num_slots, channels).index_select(0, (labels + offsets).view(-1))
    return rows.view(*labels.shape, channels).permute(0, 3, 1, 2)

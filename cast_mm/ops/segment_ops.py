"""Pooling of per-pixel features into per-segment tokens, and back.

A superpixel map holds one integer id per pixel. ``segment_mean`` turns ``(B, H, W, C)``
features into ``(B, M, C)`` tokens, token ``j`` being the mean over the pixels whose id is ``j``.
``M`` is shared by the whole batch (largest id + 1 over the batch), as in the official code, so
ids that an image does not use give all-zero tokens that ``segment_padding_mask`` flags.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


def num_token_slots(labels: Tensor) -> int:
    """Number of token slots a batch of superpixel maps needs (largest id + 1).

    Reads the largest id on the host (a device sync on GPUs): pass the number where it is
    known beforehand (the data preprocessors compute it from the data loader's maps).
    """
    return int(labels.max()) + 1


def segment_sum_and_count(x: Tensor, labels: Tensor,
                          num_slots: Optional[int] = None) -> Tuple[Tensor, Tensor]:
    """Per-segment sums ``(B, M, C)`` and pixel counts ``(B, M)`` of ``x`` ``(B, H, W, C)``."""
    batch, channels = x.shape[0], x.shape[-1]
    if num_slots is None:
        num_slots = num_token_slots(labels)
    flat = labels.reshape(batch, -1)
    flat = flat + torch.arange(batch, device=flat.device).unsqueeze(1) * num_slots
    flat = flat.reshape(-1)
    sums = x.new_zeros(batch * num_slots, channels)
    sums.index_add_(0, flat, x.reshape(-1, channels))
    # Not bincount: on GPUs it reads the id range on the host.
    counts = torch.zeros(batch * num_slots, dtype=torch.long, device=flat.device)
    counts.index_add_(0, flat, torch.ones_like(flat))
    return sums.view(batch, num_slots, channels), counts.view(batch, num_slots)


def segment_mean(x: Tensor, labels: Tensor, num_slots: Optional[int] = None) -> Tensor:
    """Mean of ``x`` ``(B, H, W, C)`` inside each segment of ``labels`` ``(B, H, W)``.

    Empty segments (ids an image does not use) average to zero vectors.
    """
    sums, counts = segment_sum_and_count(x, labels, num_slots)
    return sums / counts.clamp(min=1).unsqueeze(-1).to(sums.dtype)


def masked_mean(x: Tensor, padding_mask: Optional[Tensor], keepdim: bool = False) -> Tensor:
    """Mean of tokens ``x`` ``(B, N, C)`` over ``N``, leaving out those ``padding_mask`` flags.

    Args:
        x (Tensor): ``(B, N, C)`` tokens.
        padding_mask (Tensor, optional): ``(B, N)`` bool, True for padded tokens; None averages
            all tokens.
        keepdim (bool): return ``(B, 1, C)`` instead of ``(B, C)``.
    """
    if padding_mask is None:
        return x.mean(dim=1, keepdim=keepdim)
    valid = (~padding_mask).unsqueeze(-1).to(x.dtype)
    count = valid.sum(dim=1, keepdim=keepdim).clamp(min=1)
    return (x * valid).sum(dim=1, keepdim=keepdim) / count


def segment_prototypes(embeddings: Tensor, superpixel_map: Tensor, segment_of: Tensor,
                       num_segments: int) -> Tensor:
    """Prototypes ``(num_segments, D)``: pixel-weighted means of normalised embeddings.

    A pixel's embedding is that of its superpixel; a segment's prototype is the mean of the
    L2-normalised embeddings of its pixels.

    Args:
        embeddings (Tensor): ``(S, D)`` embedding of each superpixel.
        superpixel_map (Tensor): ``(H, W)`` superpixel id (``0 .. S - 1``) of each pixel.
        segment_of (Tensor): ``(S,)`` segment (``0 .. num_segments - 1``) of each superpixel.
        num_segments (int): number of segments; one without pixels gets a zero prototype.
    """
    if segment_of.numel() != embeddings.shape[0]:
        raise ValueError(f'{embeddings.shape[0]} superpixel embeddings but segment_of has '
                         f'{segment_of.numel()} entries')
    pixels = torch.bincount(superpixel_map.reshape(-1), minlength=embeddings.shape[0])
    if pixels.numel() > embeddings.shape[0]:
        raise ValueError(f'superpixel ids reach {pixels.numel() - 1} but there are only '
                         f'{embeddings.shape[0]} embeddings')
    pixels = pixels.to(embeddings.device, torch.float32)
    weighted = F.normalize(embeddings.float(), dim=-1) * pixels[:, None]
    sums = weighted.new_zeros(num_segments, embeddings.shape[1]).index_add_(0, segment_of,
                                                                            weighted)
    counts = pixels.new_zeros(num_segments).index_add_(0, segment_of, pixels)
    return sums / counts.clamp(min=1)[:, None]


def segment_padding_mask(labels: Tensor, num_slots: Optional[int] = None) -> Tensor:
    """``(B, M)`` bool mask, True where a segment id has no pixel in that image."""
    if num_slots is None:
        num_slots = num_token_slots(labels)
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

"""Normalisation of segment tokens that keeps padded token slots out of batch statistics."""
import torch.distributed as dist
import torch.nn as nn
from torch import Tensor

from .sync_norm import MaskedSyncBatchNorm, batch_norm_with_statistics


def norm_segment_tokens(norm: nn.Module, tokens: Tensor, padding_mask: Tensor) -> Tensor:
    """Apply ``norm`` to segment tokens ``(B, N, C)``.

    Batch norms see only the real tokens: padded slots (``padding_mask`` True, ids an image
    does not use) own no pixel, and their values would otherwise enter the batch statistics.
    Padded slots come out as zeros. Per-token norms (LayerNorm) see everything.

    ``nn.BatchNorm*`` and :class:`MaskedSyncBatchNorm` weigh the tokens by the mask, so no
    tensor value is read on the host; torch's ``SyncBatchNorm`` in training selects the real
    tokens (boolean indexing, one host read).
    """
    if not isinstance(norm, nn.modules.batchnorm._BatchNorm):
        return norm(tokens)
    batch, slots, channels = tokens.shape
    flat = tokens.reshape(batch * slots, channels)
    valid = ~padding_mask.reshape(-1)
    use_batch_stats = norm.training or not norm.track_running_stats
    if not use_batch_stats:
        out = norm(flat)
    elif isinstance(norm, MaskedSyncBatchNorm):
        group = (norm.process_group or dist.group.WORLD) if norm.synchronises() else None
        out = batch_norm_with_statistics(norm, flat, valid, group)
    elif isinstance(norm, nn.SyncBatchNorm):
        out = tokens.new_zeros(flat.shape)
        out[valid] = norm(flat[valid]).to(out.dtype)
    else:
        out = batch_norm_with_statistics(norm, flat, valid)
    return out.to(tokens.dtype).masked_fill(padding_mask.reshape(-1, 1), 0).view_as(tokens)

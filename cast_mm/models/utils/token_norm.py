"""Normalisation of segment tokens that keeps padded token slots out of batch statistics."""
import torch.nn as nn
from torch import Tensor


def norm_segment_tokens(norm: nn.Module, tokens: Tensor, padding_mask: Tensor) -> Tensor:
    """Apply ``norm`` to segment tokens ``(B, N, C)``.

    Batch norms (BN, SyncBN) see only the real tokens: padded slots (``padding_mask`` True,
    ids an image does not use) own no pixel, and their values would otherwise enter the batch
    statistics. Padded slots come out as zeros. Per-token norms (LayerNorm) see everything.
    """
    if not isinstance(norm, nn.modules.batchnorm._BatchNorm):
        return norm(tokens)
    valid = ~padding_mask
    out = tokens.new_zeros(tokens.shape)
    out[valid] = norm(tokens[valid]).to(out.dtype)
    return out

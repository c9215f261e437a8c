"""Fusion of the four hierarchy levels onto the stage-1 segment tokens (segmentation mode)."""
from typing import Callable, List, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from cast_mm.ops import gather_tokens


def level_assignments(pool_logits: Sequence[Tensor]) -> List[Tensor]:
    """Hard assignment of every stage-1 token to a token of each coarser level.

    Args:
        pool_logits: assignment logits of consecutive poolings, ``(B, N_k, K_k)`` each.

    Returns:
        list of ``(B, N_1)`` index tensors, one per pooling: the index, among the tokens that
        pooling produced, of the token each stage-1 token ends up in (argmax chain).
    """
    chain = []
    index = None
    for logits in pool_logits:
        labels = logits.argmax(dim=-1)
        index = labels if index is None else labels.gather(1, index)
        chain.append(index)
    return chain


def unpool_levels(level_tokens: Sequence[Tensor], pool_logits: Sequence[Tensor]) -> List[Tensor]:
    """Every level's tokens carried back onto the stage-1 tokens through the argmax chain.

    Args:
        level_tokens: tokens of consecutive levels, ``(B, N_k, C_k)`` each.
        pool_logits: logits of the poolings between them (the first
            ``len(level_tokens) - 1`` are used).

    Returns:
        list of ``(B, N_1, C_k)``: for every stage-1 token, the token of level ``k`` it ends up
        in (no gradient flows through the argmax).
    """
    chain = level_assignments(pool_logits[:len(level_tokens) - 1])
    return [level_tokens[0]] + [gather_tokens(tokens, index)
                                for tokens, index in zip(level_tokens[1:], chain)]


class BlockFusion(nn.Module):
    """Concatenate every level's tokens on the stage-1 tokens and project back to ``C``.

    Level ``k > 1`` tokens reach the stage-1 tokens through the argmax chain of the pooling
    logits (no gradient flows through the argmax). The class tokens of the levels are fused the
    same way, as one more row of the same BatchNorm + linear projection (official behaviour).

    Args:
        embed_dims (int): token width ``C``.
        num_levels (int): number of levels fused. Defaults to 4.
        dropout (float): dropout before the projection. Defaults to 0.2.
        norm_layer (callable): ``num_features -> batch norm`` over ``(B, C, N)`` tokens (a
            ``BatchNorm1d`` or a synchronised variant). Its batch statistics count every token
            slot, padded ones included, as the official fusion does. Defaults to
            ``nn.BatchNorm1d``.
    """

    def __init__(self, embed_dims: int, num_levels: int = 4, dropout: float = 0.2,
                 norm_layer: Callable[[int], nn.Module] = nn.BatchNorm1d) -> None:
        super().__init__()
        self.norm = norm_layer(embed_dims * num_levels)
        self.drop = nn.Dropout(dropout)
        self.proj = nn.Linear(embed_dims * num_levels, embed_dims)

    def forward(self, level_tokens: Sequence[Tensor], level_cls: Sequence[Tensor],
                pool_logits: Sequence[Tensor]) -> Tuple[Tensor, Tensor]:
        """Fuse.

        Args:
            level_tokens: tokens entering each pooling, ``(B, N_k, C)``.
            level_cls: class token of each level, ``(B, 1, C)``.
            pool_logits: logits of the poolings between consecutive levels (the first
                ``len(level_tokens) - 1`` are used).

        Returns:
            ``(tokens (B, N_1, C), cls_token (B, 1, C))``.
        """
        feats = unpool_levels(level_tokens, pool_logits)
        x = torch.cat([torch.cat(list(level_cls), dim=-1), torch.cat(feats, dim=-1)], dim=1)
        x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        x = self.proj(self.drop(x))
        return x[:, 1:], x[:, :1]

"""Graph pooling: farthest point sampling picks cluster centres, tokens are softly assigned.

One pooling step turns ``N`` tokens into ``K`` coarser ones:

1. farthest point sampling over ``[mean token, tokens]`` (padded tokens replaced by the mean, so
   they are never chosen) picks ``K`` centre tokens;
2. ``centroid_fc`` (attention + mean-centring) embeds the tokens, and each token's assignment
   logits are ``logit_scale * cos(token, centre)``;
3. the new tokens are ``fc2`` of the assignment-weighted average of ``fc1`` features, plus the
   centre token itself; the class token goes through ``fc1``/``fc2`` with a residual.

When an image has fewer distinct tokens than clusters, farthest point sampling runs out of
points and returns the mean token again (the official code asserts there). Such clusters are
marked as padding in the returned mask: no token is assigned to them, later stages treat them
as padded tokens, and their slots point at the image's first valid token.
"""
from typing import NamedTuple, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from cast_mm.ops import farthest_point_sampling, gather_tokens, masked_mean
from ..execution_profile import FAST
from .attention import Attention


class PoolingOutput(NamedTuple):
    """What one graph pooling step returns.

    Attributes:
        cls_token (Tensor): ``(B, 1, C)`` updated class token.
        tokens (Tensor): ``(B, K, C)`` pooled tokens (the official ``centroids``).
        logits (Tensor): ``(B, N, K)`` assignment logits of the input tokens.
        sampled_inds (Tensor): ``(B, K)`` input-token index of each cluster centre.
        padding_mask (Tensor): ``(B, K)`` True for clusters that found no distinct centre.
    """
    cls_token: Tensor
    tokens: Tensor
    logits: Tensor
    sampled_inds: Tensor
    padding_mask: Tensor


class CentroidProjection(nn.Module):
    """``h = x + attn(norm(x))``, mean-centred over the tokens, plus a learned bias.

    Args:
        embed_dims (int): token width.
        num_heads (int): attention heads. Defaults to 12 (fixed in every official model).
        fused_attn (bool): fused scaled-dot-product attention. Defaults to True.
    """

    def __init__(self, embed_dims: int, num_heads: int = 12,
                 fused_attn: bool = FAST['backbone']['fused_attn']) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(embed_dims, eps=1e-6)
        self.attn = Attention(embed_dims, num_heads, qkv_bias=True, fused_attn=fused_attn)
        self.bias = nn.Parameter(torch.zeros(embed_dims))
        nn.init.normal_(self.bias, std=0.01)

    def forward(self, x: Tensor, padding_mask: Optional[Tensor] = None) -> Tensor:
        """Embed ``x`` ``(B, N, C)``; with ``padding_mask`` padded tokens are left out."""
        h = x + self.attn(self.norm(x), padding_mask)
        return h - masked_mean(h, padding_mask, keepdim=True) + self.bias


class GraphPooling(nn.Module):
    """Pool ``N`` tokens into ``num_clusters`` tokens (official ``GraphPooling``).

    Args:
        embed_dims (int): token width ``C``.
        num_clusters (int): number of output tokens ``K``.
        num_heads (int): heads of the centroid attention. Defaults to 12.
        logit_scale (float): scale of the cosine assignment logits. Defaults to 5.
        dropout (float): dropout after ``fc1``. Defaults to 0.1.
        fps_backend (str): ``'native'`` or ``'dgl'`` farthest point sampling.
        fused_attn (bool): fused scaled-dot-product attention. Defaults to True.
    """

    def __init__(self,
                 embed_dims: int,
                 num_clusters: int,
                 num_heads: int = 12,
                 logit_scale: float = 5.,
                 dropout: float = 0.1,
                 fps_backend: str = FAST['backbone']['fps_backend'],
                 fused_attn: bool = FAST['backbone']['fused_attn']) -> None:
        super().__init__()
        self.num_clusters = num_clusters
        self.logit_scale = logit_scale
        self.fps_backend = fps_backend
        self.centroid_fc = CentroidProjection(embed_dims, num_heads, fused_attn)
        hidden = embed_dims * 4
        self.fc1 = nn.Sequential(
            nn.LayerNorm(embed_dims), nn.Linear(embed_dims, hidden), nn.GELU(),
            nn.Dropout(dropout))
        self.fc2 = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, embed_dims))

    def sample_centres(self, tokens: Tensor, padding_mask: Tensor):
        """Farthest point sampling of cluster centres.

        Returns ``(sampled_inds (B, K), cluster_padding_mask (B, K))``.
        """
        mean = masked_mean(tokens, padding_mask, keepdim=True)
        filled = torch.where(padding_mask.unsqueeze(-1), mean, tokens)
        points = torch.cat([mean, filled], dim=1)
        picked = farthest_point_sampling(
            points, self.num_clusters + 1, start_idx=0, backend=self.fps_backend)[:, 1:]
        # Index 0 is the mean token: FPS only returns it again once no distinct point is left.
        exhausted = picked == 0
        first_valid = (~padding_mask).to(torch.uint8).argmax(dim=1, keepdim=True)
        sampled_inds = torch.where(exhausted, first_valid, picked - 1)
        cluster_padding = exhausted.clone()
        cluster_padding[:, 0] = False
        return sampled_inds, cluster_padding

    def forward(self,
                cls_token: Tensor,
                tokens: Tensor,
                padding_mask: Tensor,
                mask_padding: bool = False) -> PoolingOutput:
        """Pool ``tokens`` ``(B, N, C)``.

        Args:
            cls_token (Tensor): ``(B, 1, C)``.
            tokens (Tensor): ``(B, N, C)``.
            padding_mask (Tensor): ``(B, N)`` bool, True for padded tokens. They never become
                centres; with ``mask_padding`` they are also left out of the centroid attention,
                the mean-centring and the cluster averages (batch-invariant mode).
            mask_padding (bool): batch-invariant mode. Defaults to False (official).
        """
        sampled_inds, cluster_padding = self.sample_centres(tokens, padding_mask)

        h = self.centroid_fc(tokens, padding_mask if mask_padding else None)
        centres = gather_tokens(h, sampled_inds)
        logits = self.logit_scale * torch.einsum(
            'bnc,bkc->bnk', F.normalize(h, dim=-1), F.normalize(centres, dim=-1))
        logits = logits.masked_fill(cluster_padding.unsqueeze(1), torch.finfo(logits.dtype).min)
        assign = logits.softmax(dim=-1)
        if mask_padding:
            assign = assign.masked_fill(padding_mask.unsqueeze(-1), 0.)

        feats = self.fc1(torch.cat([cls_token, tokens], dim=1))
        cls_feat, token_feats = feats[:, :1], feats[:, 1:]
        mass = assign.sum(dim=1)
        mass = torch.where(mass > 0, mass, torch.ones_like(mass))
        clusters = torch.einsum('bnk,bnc->bkc', assign, token_feats) / mass.unsqueeze(-1)
        out = self.fc2(torch.cat([cls_feat, clusters], dim=1))
        return PoolingOutput(
            cls_token=out[:, :1] + cls_token,
            tokens=out[:, 1:] + gather_tokens(tokens, sampled_inds),
            logits=logits,
            sampled_inds=sampled_inds,
            padding_mask=cluster_padding)

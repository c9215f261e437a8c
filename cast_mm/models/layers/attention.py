"""Multi-head self-attention with an optional key padding mask, and the pre-norm block."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import DropPath, Mlp
from torch import Tensor

from ..execution_profile import FAST


class Attention(nn.Module):
    """Multi-head self-attention (``qkv`` and ``proj`` linears, timm parameter names).

    Args:
        embed_dims (int): token width.
        num_heads (int): number of heads; must divide ``embed_dims``.
        qkv_bias (bool): bias in the ``qkv`` projection. Defaults to True.
        attn_drop (float): dropout on attention weights. Defaults to 0.
        proj_drop (float): dropout after ``proj``. Defaults to 0.
        fused_attn (bool): ``F.scaled_dot_product_attention`` (attention dropout as its
            ``dropout_p``) instead of the explicit softmax and ``nn.Dropout`` of the official
            code. Defaults to True (the fast path).
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 qkv_bias: bool = True,
                 attn_drop: float = 0.,
                 proj_drop: float = 0.,
                 fused_attn: bool = FAST['backbone']['fused_attn']) -> None:
        super().__init__()
        if embed_dims % num_heads != 0:
            raise ValueError(f'embed_dims ({embed_dims}) must be divisible by num_heads '
                             f'({num_heads})')
        self.num_heads = num_heads
        self.scale = (embed_dims // num_heads)**-0.5
        self.fused_attn = fused_attn
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor, key_padding_mask: Optional[Tensor] = None) -> Tensor:
        """Attend over ``x`` ``(B, N, C)``; keys where ``key_padding_mask`` is True are ignored."""
        batch, num_tokens, channels = x.shape
        qkv = self.qkv(x).reshape(batch, num_tokens, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        bias = None
        if key_padding_mask is not None:
            bias = torch.zeros(key_padding_mask.shape, dtype=q.dtype, device=q.device)
            bias = bias.masked_fill(key_padding_mask, float('-inf'))[:, None, None, :]
        if self.fused_attn:
            x = F.scaled_dot_product_attention(
                q, k, v, attn_mask=bias, dropout_p=self.attn_drop.p if self.training else 0.)
        else:
            attn = (q @ k.transpose(-2, -1)) * self.scale
            if bias is not None:
                attn = attn + bias
            attn = self.attn_drop(attn.softmax(dim=-1))
            x = attn @ v
        x = x.transpose(1, 2).reshape(batch, num_tokens, channels)
        return self.proj_drop(self.proj(x))


class TransformerBlock(nn.Module):
    """Pre-norm ViT block: ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``.

    Parameter names match timm's ``Block`` (``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``,
    ``mlp.fc1``, ``mlp.fc2``).

    Args:
        embed_dims (int): token width.
        num_heads (int): attention heads.
        mlp_ratio (float): hidden width of the MLP over ``embed_dims``. Defaults to 4.
        qkv_bias (bool): bias in ``qkv``. Defaults to True.
        drop_rate (float): dropout after attention / MLP projections. Defaults to 0.
        attn_drop_rate (float): attention-weight dropout. Defaults to 0.
        drop_path_rate (float): stochastic depth rate. Defaults to 0.
        norm_eps (float): LayerNorm epsilon. Defaults to 1e-6 (official).
        fused_attn (bool): use fused scaled-dot-product attention. Defaults to True.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 mlp_ratio: float = 4.,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 norm_eps: float = 1e-6,
                 fused_attn: bool = FAST['backbone']['fused_attn']) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.attn = Attention(embed_dims, num_heads, qkv_bias, attn_drop_rate, drop_rate,
                              fused_attn)
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.mlp = Mlp(embed_dims, int(embed_dims * mlp_ratio), drop=drop_rate)

    def forward(self, x: Tensor, key_padding_mask: Optional[Tensor] = None) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), key_padding_mask))
        return x + self.drop_path(self.mlp(self.norm2(x)))

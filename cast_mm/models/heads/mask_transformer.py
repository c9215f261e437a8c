"""Superpixel mask transformer: Segmenter's decoder over CAST segment tokens."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model.weight_init import trunc_normal_
from torch import Tensor

from cast_mm.ops import segment_to_pixels
from ..execution_profile import FAST
from ..layers import TransformerBlock


def _dense_grad(grad: Tensor) -> Tensor:
    """A dense copy of a gradient that is a slice of a larger one.

    With one image per process the class embeddings' gradient would otherwise reach DDP as a
    strided slice of the sequence's gradient, which DDP copies into its bucket with a warning on
    every step. ``contiguous()`` is not enough: it keeps the size-1 batch dimension's stride.
    """
    return grad.clone(memory_format=torch.contiguous_format)


class SuperpixelMaskTransformer(nn.Module):
    """Class masks per segment token, scattered to pixels through the superpixel map.

    Segment tokens are projected to ``embed_dims``, processed together with one learned
    embedding per class by ``num_layers`` transformer blocks, and each token's mask score for a
    class is the cosine similarity of their projections (then LayerNorm over classes). Pixels
    take the scores of the segment they belong to. Parameter names follow the official decoder
    (``proj_dec``, ``cls_emb``, ``blocks``, ``decoder_norm``, ``proj_patch``, ``proj_classes``,
    ``mask_norm``).

    Args:
        num_classes (int): number of classes.
        in_channels (int): width of the encoder tokens.
        embed_dims (int): decoder width. Defaults to 384.
        num_layers (int): decoder blocks. Defaults to 2.
        num_heads (int): attention heads. Defaults to 6.
        ffn_dims (int): MLP hidden width. Defaults to ``4 * embed_dims``.
        dropout (float): dropout in the blocks, on the attention weights as well as after
            the attention and MLP projections (as Segmenter's blocks). Defaults to 0.1.
        drop_path_rate (float): stochastic depth over the blocks. Defaults to 0.
        fused_attn (bool): ``F.scaled_dot_product_attention`` in the blocks instead of the
            official explicit softmax (equal outputs up to rounding). Defaults to True.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 embed_dims: int = 384,
                 num_layers: int = 2,
                 num_heads: int = 6,
                 ffn_dims: int = None,
                 dropout: float = 0.1,
                 drop_path_rate: float = 0.,
                 fused_attn: bool = FAST['decoder']['fused_attn']) -> None:
        super().__init__()
        ffn_dims = ffn_dims or 4 * embed_dims
        self.num_classes = num_classes
        #: The execution-profile choices of this decoder (``execution_profile.FAST`` keys).
        self.execution = dict(fused_attn=fused_attn)
        self.proj_dec = nn.Linear(in_channels, embed_dims)
        self.cls_emb = nn.Parameter(torch.zeros(1, num_classes, embed_dims))
        dpr = torch.linspace(0, drop_path_rate, num_layers).tolist()
        self.blocks = nn.ModuleList([
            TransformerBlock(embed_dims, num_heads, ffn_dims / embed_dims, drop_rate=dropout,
                             attn_drop_rate=dropout, drop_path_rate=rate, norm_eps=1e-5,
                             fused_attn=fused_attn)
            for rate in dpr
        ])
        self.decoder_norm = nn.LayerNorm(embed_dims)
        scale = embed_dims**-0.5
        self.proj_patch = nn.Parameter(scale * torch.randn(embed_dims, embed_dims))
        self.proj_classes = nn.Parameter(scale * torch.randn(embed_dims, embed_dims))
        self.mask_norm = nn.LayerNorm(num_classes)
        self.init_weights()

    def init_weights(self) -> None:
        """Official init: truncated normal for linears and class embeddings.

        The constructor runs it once; ``is_init`` then tells MMEngine's
        ``BaseModule.init_weights`` of an enclosing head not to run it again.
        """
        trunc_normal_(self.cls_emb, std=.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                trunc_normal_(module.weight, std=.02)
                nn.init.zeros_(module.bias)
        self.is_init = True

    def token_masks(self, tokens: Tensor) -> Tensor:
        """Class scores per segment token: ``(B, N, C_in)`` -> ``(B, N, num_classes)``."""
        x = self.proj_dec(tokens)
        classes = self.cls_emb.expand(x.shape[0], -1, -1).to(x.dtype)
        if classes.requires_grad:
            classes.register_hook(_dense_grad)
        x = torch.cat([x, classes], dim=1)
        for block in self.blocks:
            x = block(x)
        x = self.decoder_norm(x)
        patches = F.normalize(x[:, :-self.num_classes] @ self.proj_patch, dim=-1)
        classes = F.normalize(x[:, -self.num_classes:] @ self.proj_classes, dim=-1)
        return self.mask_norm(patches @ classes.transpose(1, 2))

    def forward(self, tokens: Tensor, token_labels: Tensor) -> Tensor:
        """Per-pixel class scores ``(B, num_classes, H, W)`` for ``token_labels`` ``(B, H, W)``."""
        return segment_to_pixels(self.token_masks(tokens), token_labels)

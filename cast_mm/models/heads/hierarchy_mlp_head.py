"""SegFormer-style all-MLP head over the four CAST hierarchy levels."""
from typing import Dict, Optional

import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from torch import Tensor

from cast_mm.ops import gather_tokens, segment_to_pixels
from cast_mm.registry import MODELS
from ..backbones.cast import CASTFeatures
from ..layers import level_assignments
from ..utils import norm_segment_tokens


@MODELS.register_module()
class HierarchyMLPHead(BaseDecodeHead):
    """All-MLP decoder (SegFormer) whose multi-scale inputs are CAST's hierarchy levels.

    The tokens of every stage (after its blocks) are projected to ``channels`` by one linear
    layer each, unpooled to the stage-1 segments through the argmax chain of the pooling
    assignments, concatenated, fused by a linear layer with norm and activation, and classified
    per segment; pixels take the scores of their superpixel. Per-segment MLPs followed by the
    scatter equal SegFormer's per-pixel MLPs on the unpooled maps, at a fraction of the cost.

    Args:
        in_channels (int): width of the backbone tokens.
        channels (int): width of the per-level projections and of the fused features.
        num_classes (int): number of classes.
        num_levels (int): hierarchy levels fused (stages). Defaults to 4.
        norm_cfg (dict): norm after fusion, over the channel dim. Defaults to LayerNorm,
            which keeps an image's output independent of the rest of the batch.
        act_cfg (dict): activation after fusion. Defaults to ReLU.
        **kwargs: the rest of ``BaseDecodeHead`` (``dropout_ratio`` (default 0.1, before
            the classifier), ``loss_decode``, ``ignore_index``, ...).
    """

    def __init__(self,
                 in_channels: int,
                 channels: int,
                 num_classes: int,
                 num_levels: int = 4,
                 norm_cfg: Optional[Dict] = None,
                 act_cfg: Optional[Dict] = None,
                 **kwargs) -> None:
        kwargs.setdefault('init_cfg', None)
        dropout_ratio = kwargs.pop('dropout_ratio', 0.1)
        # BaseDecodeHead's Dropout2d and 1x1 conv classifier work on maps; ours on tokens.
        super().__init__(in_channels, channels, num_classes=num_classes, dropout_ratio=0.,
                         **kwargs)
        del self.conv_seg
        self.num_levels = num_levels
        self.level_projs = nn.ModuleList(
            [nn.Linear(in_channels, channels) for _ in range(num_levels)])
        self.fuse = nn.Linear(channels * num_levels, channels, bias=False)
        self.fuse_norm = build_norm_layer(norm_cfg or dict(type='LN'), channels)[1]
        self.fuse_act = build_activation_layer(act_cfg or dict(type='ReLU'))
        self.token_dropout = nn.Dropout(dropout_ratio)
        self.cls = nn.Linear(channels, self.out_channels)

    def forward(self, inputs: CASTFeatures) -> Tensor:
        """Per-pixel class scores ``(B, num_classes, H, W)`` at the superpixel-map size."""
        if not isinstance(inputs, CASTFeatures):
            raise TypeError('HierarchyMLPHead needs the CASTFeatures of a CAST backbone')
        if len(inputs.stage_tokens) < self.num_levels:
            raise ValueError(f'HierarchyMLPHead fuses {self.num_levels} levels, the backbone '
                             f'has {len(inputs.stage_tokens)} stages')
        levels = inputs.stage_tokens[:self.num_levels]
        chain = level_assignments(inputs.pool_logits[:self.num_levels - 1])
        feats = [self.level_projs[0](levels[0])]
        for proj, tokens, index in zip(self.level_projs[1:], levels[1:], chain):
            feats.append(gather_tokens(proj(tokens), index))
        x = self.fuse(torch.cat(feats, dim=-1))
        x = self.fuse_act(norm_segment_tokens(self.fuse_norm, x, inputs.padding_masks[0]))
        scores = self.cls(self.token_dropout(x))
        return segment_to_pixels(scores, inputs.token_labels)

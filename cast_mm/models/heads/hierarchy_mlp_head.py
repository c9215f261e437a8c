"""SegFormer-style all-MLP head over the four CAST hierarchy levels."""
from typing import Dict, Optional

import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer, build_norm_layer
from torch import Tensor

from cast_mm.registry import MODELS
from ..backbones.cast import CASTFeatures
from ..layers import unpool_levels
from ..utils import norm_segment_tokens
from .segment_decode_head import SegmentDecodeHead


@MODELS.register_module()
class HierarchyMLPHead(SegmentDecodeHead):
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
        dropout_ratio (float): dropout before the classifier. Defaults to 0.1.
        **kwargs: the rest of :class:`SegmentDecodeHead` (``loss_decode``,
            ``ignore_index``, ``loss_by_superpixel``, ...).
    """

    needs_fused_tokens = False

    def __init__(self,
                 in_channels: int,
                 channels: int,
                 num_classes: int,
                 num_levels: int = 4,
                 norm_cfg: Optional[Dict] = None,
                 act_cfg: Optional[Dict] = None,
                 dropout_ratio: float = 0.1,
                 **kwargs) -> None:
        super().__init__(in_channels, channels, num_classes=num_classes,
                         dropout_ratio=dropout_ratio, **kwargs)
        self.num_levels = num_levels
        self.level_projs = nn.ModuleList(
            [nn.Linear(in_channels, channels) for _ in range(num_levels)])
        self.fuse = nn.Linear(channels * num_levels, channels, bias=False)
        self.fuse_norm = build_norm_layer(norm_cfg or dict(type='LN'), channels)[1]
        self.fuse_act = build_activation_layer(act_cfg or dict(type='ReLU'))
        self.cls = nn.Linear(channels, self.out_channels)

    def segment_scores(self, inputs: CASTFeatures) -> Tensor:
        """Class scores ``(B, N_1, num_classes)`` of the stage-1 segments."""
        if len(inputs.stage_tokens) < self.num_levels:
            raise ValueError(f'HierarchyMLPHead fuses {self.num_levels} levels, the backbone '
                             f'has {len(inputs.stage_tokens)} stages')
        levels = [proj(tokens) for proj, tokens in zip(self.level_projs, inputs.stage_tokens)]
        x = self.fuse(torch.cat(unpool_levels(levels, inputs.pool_logits), dim=-1))
        x = self.fuse_act(norm_segment_tokens(self.fuse_norm, x, inputs.padding_masks[0]))
        return self.cls(self.token_dropout(x))

"""Per-segment MLP classifier over CAST's fused segment tokens (the SPML VOC fine-tuning head)."""
from typing import Dict, Optional

import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from torch import Tensor

from cast_mm.ops import segment_to_pixels
from cast_mm.registry import MODELS
from ..backbones.cast import CASTFeatures
from ..utils import norm_segment_tokens


@MODELS.register_module()
class SegmentMLPHead(BaseDecodeHead):
    """Linear (no bias) + norm + ReLU + linear classifier on every fused segment token.

    The official VOC fine-tuning (spec §7.1) ran ``Conv1x1(C, C, bias=False) + BN + ReLU +
    Conv1x1(C, num_classes)`` on the per-pixel map of segment embeddings; the same layers on the
    segment tokens, scattered to pixels through the superpixel map, give the same scores (the
    norm's batch statistics are taken over the real segments of the batch, padded token slots
    left out, instead of over pixels).

    Args:
        in_channels (int): width of the backbone tokens.
        channels (int): hidden width. Defaults to ``in_channels``.
        num_classes (int): number of classes.
        norm_cfg (dict): norm of the hidden layer. Defaults to BatchNorm (``SyncBN`` in
            distributed configs).
        **kwargs: the rest of ``BaseDecodeHead`` (``dropout_ratio`` before the classifier,
            ``loss_decode``, ``ignore_index``, ...).
    """

    def __init__(self,
                 in_channels: int,
                 num_classes: int,
                 channels: Optional[int] = None,
                 norm_cfg: Optional[Dict] = None,
                 **kwargs) -> None:
        kwargs.setdefault('init_cfg', None)
        dropout_ratio = kwargs.pop('dropout_ratio', 0.)
        channels = channels or in_channels
        super().__init__(in_channels, channels, num_classes=num_classes, dropout_ratio=0.,
                         **kwargs)
        del self.conv_seg  # per-token classifier below
        self.fc = nn.Linear(in_channels, channels, bias=False)
        self.bn = build_norm_layer(norm_cfg or dict(type='BN1d'), channels)[1]
        self.act = nn.ReLU(inplace=True)
        self.token_dropout = nn.Dropout(dropout_ratio)
        self.cls = nn.Linear(channels, self.out_channels)

    def forward(self, inputs: CASTFeatures) -> Tensor:
        """Per-pixel class scores ``(B, num_classes, H, W)`` at the superpixel-map size."""
        if not isinstance(inputs, CASTFeatures) or inputs.fused_tokens is None:
            raise TypeError("SegmentMLPHead needs the CASTFeatures of a CAST backbone in "
                            "mode='segmentation'")
        x = self.fc(inputs.fused_tokens)
        x = self.act(norm_segment_tokens(self.bn, x, inputs.padding_masks[0]))
        scores = self.cls(self.token_dropout(x))
        return segment_to_pixels(scores, inputs.token_labels)

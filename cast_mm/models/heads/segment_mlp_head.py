"""Per-segment MLP classifier over CAST's fused segment tokens (the SPML VOC fine-tuning head)."""
from typing import Dict, Optional

import torch.nn as nn
from mmcv.cnn import build_norm_layer
from torch import Tensor

from cast_mm.registry import MODELS
from ..backbones.cast import CASTFeatures
from ..utils import norm_segment_tokens
from .segment_decode_head import SegmentDecodeHead


@MODELS.register_module()
class SegmentMLPHead(SegmentDecodeHead):
    """Linear (no bias) + norm + ReLU + linear classifier on every fused segment token.

    The official VOC fine-tuning ran ``Conv1x1(C, C, bias=False) + BN + ReLU +
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
        dropout_ratio (float): dropout before the classifier. Defaults to 0.
        **kwargs: the rest of :class:`SegmentDecodeHead` (``loss_decode``,
            ``ignore_index``, ``loss_by_superpixel``, ...).
    """

    def __init__(self,
                 in_channels: int,
                 num_classes: int,
                 channels: Optional[int] = None,
                 norm_cfg: Optional[Dict] = None,
                 dropout_ratio: float = 0.,
                 **kwargs) -> None:
        channels = channels or in_channels
        super().__init__(in_channels, channels, num_classes=num_classes,
                         dropout_ratio=dropout_ratio, **kwargs)
        self.fc = nn.Linear(in_channels, channels, bias=False)
        self.bn = build_norm_layer(norm_cfg or dict(type='BN1d'), channels)[1]
        self.act = nn.ReLU(inplace=True)
        self.cls = nn.Linear(channels, self.out_channels)

    def segment_scores(self, inputs: CASTFeatures) -> Tensor:
        """Class scores ``(B, N, num_classes)`` of the fused segment tokens."""
        x = self.fc(inputs.fused_tokens)
        x = self.act(norm_segment_tokens(self.bn, x, inputs.padding_masks[0]))
        return self.cls(self.token_dropout(x))

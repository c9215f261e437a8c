"""Shared base of the decode heads that classify CAST segment tokens."""
from typing import Dict, List, Sequence

import torch.nn as nn
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.utils import ConfigType, SampleList
from torch import Tensor

from cast_mm.ops import segment_to_pixels
from ..backbones.cast import CASTFeatures
from ..execution_profile import FAST
from ..losses import (decomposes_over_segments, segment_accuracy, segment_cross_entropy,
                      segment_label_histogram)


class SegmentDecodeHead(BaseDecodeHead):
    """An mmseg decode head whose class scores are computed per stage-1 segment token.

    Subclasses implement :meth:`segment_scores` (``(B, N, num_classes)`` per token slot);
    ``forward`` scatters them to pixels through the superpixel map, so predictions are
    piecewise constant on superpixels and already at the superpixel-map size. mmseg's
    per-pixel classifier (``conv_seg``) and its ``Dropout2d`` are not used: heads that want
    dropout before their classifier apply ``self.token_dropout``.

    Training computes the decode losses from per-superpixel label counts when they allow it
    (:func:`~cast_mm.models.losses.decomposes_over_segments`: mmseg's softmax
    ``CrossEntropyLoss``), which gives the pixel-level value and gradients without building
    pixel logits; other losses (Dice, Lovasz, ...), a pixel ``sampler``, or labels of another
    size than the superpixel map take mmseg's pixel path, per loss.

    Args:
        in_channels (int): width of the backbone tokens.
        channels (int): width of the head's hidden features.
        num_classes (int): number of classes.
        dropout_ratio (float): dropout on the segment features before the classifier
            (``self.token_dropout``). Defaults to 0.
        loss_by_superpixel (bool): compute decomposable losses per superpixel (True) or,
            as the official code did, on pixel logits through mmseg's ``loss_by_feat``
            (False). Both give the same losses and gradients up to float rounding.
            Defaults to True.
        **kwargs: the rest of ``BaseDecodeHead`` (``loss_decode``, ``ignore_index``, ...).
    """

    #: The head reads :class:`CASTFeatures` (not feature maps): the segmentor hands it those.
    reads_cast_features = True
    #: The head reads ``CASTFeatures.fused_tokens`` (backbone ``mode='segmentation'``).
    needs_fused_tokens = True

    def __init__(self,
                 in_channels: int,
                 channels: int,
                 num_classes: int,
                 dropout_ratio: float = 0.,
                 loss_by_superpixel: bool = FAST['decode_head']['loss_by_superpixel'],
                 **kwargs) -> None:
        kwargs.setdefault('init_cfg', None)
        super().__init__(in_channels, channels, num_classes=num_classes, dropout_ratio=0.,
                         **kwargs)
        del self.conv_seg
        self.token_dropout = nn.Dropout(dropout_ratio)
        self.loss_by_superpixel = loss_by_superpixel

    def check_inputs(self, inputs: CASTFeatures) -> None:
        """Raise ``TypeError`` unless ``inputs`` are CAST features this head can read."""
        missing_fused = self.needs_fused_tokens and inputs.fused_tokens is None \
            if isinstance(inputs, CASTFeatures) else True
        if not isinstance(inputs, CASTFeatures) or missing_fused:
            mode = " in mode='segmentation'" if self.needs_fused_tokens else ''
            raise TypeError(f'{type(self).__name__} needs the CASTFeatures of a CAST '
                            f'backbone{mode}, got {type(inputs).__name__}')

    def segment_scores(self, inputs: CASTFeatures) -> Tensor:
        """Class scores ``(B, N, num_classes)`` of the stage-1 token slots."""
        raise NotImplementedError

    def forward(self, inputs: CASTFeatures) -> Tensor:
        """Per-pixel class scores ``(B, num_classes, H, W)`` at the superpixel-map size."""
        self.check_inputs(inputs)
        return segment_to_pixels(self.segment_scores(inputs), inputs.token_labels)

    def loss(self, inputs: CASTFeatures, batch_data_samples: SampleList,
             train_cfg: ConfigType) -> Dict[str, Tensor]:
        """Decode losses and ``acc_seg`` of a batch, as mmseg's ``BaseDecodeHead.loss``."""
        self.check_inputs(inputs)
        scores = self.segment_scores(inputs)
        if not self.loss_by_superpixel:
            return self.loss_by_feat(segment_to_pixels(scores, inputs.token_labels),
                                     batch_data_samples)
        return self.loss_by_segments(scores, inputs.token_labels, batch_data_samples)

    def _decode_losses(self) -> List[nn.Module]:
        if isinstance(self.loss_decode, nn.ModuleList):
            return list(self.loss_decode)
        return [self.loss_decode]

    def loss_by_segments(self, scores: Tensor, token_labels: Tensor,
                         batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """The losses of ``loss_by_feat`` from per-segment scores.

        Args:
            scores (Tensor): ``(B, N, num_classes)`` class scores per token slot.
            token_labels (Tensor): ``(B, H, W)`` superpixel ids (below ``N``).
            batch_data_samples (list[SegDataSample]): samples with ``gt_sem_seg``.

        Returns:
            dict[str, Tensor]: one entry per ``loss_name`` of ``loss_decode`` and
            ``acc_seg``, equal to ``loss_by_feat`` on the pixel scores.
        """
        seg_label = self._stack_batch_gt(batch_data_samples)
        losses_decode: Sequence[nn.Module] = self._decode_losses()
        if (self.sampler is not None or seg_label.shape[-2:] != token_labels.shape[-2:]
                or not any(decomposes_over_segments(loss) for loss in losses_decode)):
            return self.loss_by_feat(segment_to_pixels(scores, token_labels),
                                     batch_data_samples)
        seg_label = seg_label.squeeze(1)
        histogram = segment_label_histogram(token_labels, seg_label, scores.shape[1],
                                            scores.shape[-1], self.ignore_index)
        pixel_logits = None
        losses: Dict[str, Tensor] = dict()
        for loss_decode in losses_decode:
            if decomposes_over_segments(loss_decode):
                value = segment_cross_entropy(loss_decode, scores, histogram, self.ignore_index)
            else:
                if pixel_logits is None:
                    pixel_logits = segment_to_pixels(scores, token_labels)
                value = loss_decode(pixel_logits, seg_label, weight=None,
                                    ignore_index=self.ignore_index)
            name = loss_decode.loss_name
            losses[name] = losses[name] + value if name in losses else value
        losses['acc_seg'] = segment_accuracy(scores, histogram)
        return losses

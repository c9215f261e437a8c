"""mmpretrain ``ImageClassifier`` whose backbone also takes superpixels (CAST)."""
from typing import Any, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.structures import DataSample
from torch import Tensor

from cast_mm.registry import MODELS
from cast_mm.superpixels import MISSING_CLS_SUPERPIXELS_HINT, batch_slot_count, sample_superpixels
from ..execution_log import log_model_execution

#: How to get padded superpixels into a classifier's data samples.
_CLASSIFIER_HINT = ("use data_preprocessor=dict(type='cast_mm.SuperpixelClsDataPreprocessor') "
                    f'(or the SelfSup one) and {MISSING_CLS_SUPERPIXELS_HINT}')


def stack_sample_superpixels(data_samples: Optional[Sequence[Any]]) -> Tensor:
    """``(B, H, W)`` (or ``(B, V, H, W)`` for multi-view) superpixels of a batch.

    Args:
        data_samples: samples carrying ``superpixels`` already padded to the batch size (the
            cast_mm data preprocessors do it).
    """
    return torch.stack(sample_superpixels(data_samples, _CLASSIFIER_HINT, required=True))


def preprocessor_with_default(cfg: Optional[Union[dict, nn.Module]],
                              default_type: str) -> Union[dict, nn.Module]:
    """A data preprocessor config with ``type`` defaulting to ``default_type`` (a copy), or the
    given module."""
    if isinstance(cfg, nn.Module):
        return cfg
    return dict(dict(type=default_type), **(cfg or {}))


@MODELS.register_module()
class SuperpixelImageClassifier(ImageClassifier):
    """``ImageClassifier`` that hands each image's superpixels to the backbone.

    Every method takes the data samples, which carry ``superpixels`` (see
    :class:`~cast_mm.models.SuperpixelClsDataPreprocessor`, the default preprocessor).

    Args:
        frozen_backbone (bool): linear probing: the backbone gets no gradients and stays in
            eval mode while training (the official MoCo-v3 linear probe keeps the whole model
            in eval mode). Defaults to False.
        Other args are those of :class:`mmpretrain.models.ImageClassifier`.
    """

    def __init__(self,
                 backbone: dict,
                 neck: Optional[dict] = None,
                 head: Optional[dict] = None,
                 frozen_backbone: bool = False,
                 pretrained: Optional[str] = None,
                 train_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        data_preprocessor = preprocessor_with_default(data_preprocessor,
                                                      'cast_mm.SuperpixelClsDataPreprocessor')
        super().__init__(backbone, neck, head, pretrained, train_cfg, data_preprocessor,
                         init_cfg)
        self.frozen_backbone = frozen_backbone
        if frozen_backbone:
            self.backbone.requires_grad_(False)
        log_model_execution(self)

    def train(self, mode: bool = True) -> 'SuperpixelImageClassifier':
        super().train(mode)
        if self.frozen_backbone:
            self.backbone.eval()
        return self

    def forward(self,
                inputs: Tensor,
                data_samples: Optional[List[DataSample]] = None,
                mode: str = 'tensor'):
        """As :meth:`ImageClassifier.forward`; ``data_samples`` are needed in every mode."""
        if mode == 'tensor':
            feats = self.extract_feat(inputs, data_samples)
            return self.head(feats) if self.with_head else feats
        return super().forward(inputs, data_samples, mode)

    def extract_feat(self,
                     inputs: Tensor,
                     data_samples: Optional[List[DataSample]] = None,
                     stage: str = 'neck') -> Union[Tuple[Tensor], Tensor]:
        """Features at ``stage`` (``'backbone'``, ``'neck'`` or ``'pre_logits'``).

        Args:
            inputs (Tensor): normalised images ``(B, 3, H, W)``.
            data_samples (List[DataSample]): samples carrying ``superpixels``.
            stage (str): where to stop. Defaults to ``'neck'``.
        """
        if stage not in ('backbone', 'neck', 'pre_logits'):
            raise ValueError(f"stage must be 'backbone', 'neck' or 'pre_logits', got {stage!r}")
        superpixels = stack_sample_superpixels(data_samples)
        if batch_slot_count(data_samples) is not None:  # ids checked on the host
            x = self.backbone(inputs, superpixels, ids_checked=True)
        else:
            x = self.backbone(inputs, superpixels)
        if stage == 'backbone':
            return x
        if self.with_neck:
            x = self.neck(x)
        if stage == 'neck':
            return x
        return self.head.pre_logits(x)

    def loss(self, inputs: Tensor, data_samples: List[DataSample]) -> dict:
        """Losses of a batch (see :meth:`ImageClassifier.loss`)."""
        return self.head.loss(self.extract_feat(inputs, data_samples), data_samples)

    def predict(self,
                inputs: Tensor,
                data_samples: Optional[List[DataSample]] = None,
                **kwargs) -> List[DataSample]:
        """Predictions of a batch (see :meth:`ImageClassifier.predict`)."""
        feats = self.extract_feat(inputs, data_samples)
        return self.head.predict(feats, data_samples, **kwargs)

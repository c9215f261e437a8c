"""MoCo-v3 with a superpixel backbone: mmpretrain's ``MoCoV3`` with per-view superpixels."""
from typing import Dict, List, Optional, Union

import torch
import torch.nn as nn
from mmpretrain.models.selfsup import MoCoV3
from mmpretrain.structures import DataSample
from torch import Tensor

from cast_mm.registry import MODELS
from ..execution_log import log_model_execution
from .superpixel_image_classifier import preprocessor_with_default, stack_sample_superpixels


@MODELS.register_module()
class SuperpixelMoCoV3(MoCoV3):
    """MoCo-v3 (symmetric contrastive loss, cosine-momentum key encoder) for CAST.

    Each view ``inputs[v]`` comes with its own superpixels (``data_sample.superpixels`` of
    shape ``(V, H, W)``, see :class:`~cast_mm.models.SuperpixelSelfSupDataPreprocessor`, the
    default preprocessor); query and momentum encoders both see them. Args are those of
    :class:`mmpretrain.models.MoCoV3`.
    """

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 head: dict,
                 base_momentum: float = 0.01,
                 pretrained: Optional[str] = None,
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[Union[List[dict], dict]] = None) -> None:
        data_preprocessor = preprocessor_with_default(data_preprocessor,
                                                      'cast_mm.SuperpixelSelfSupDataPreprocessor')
        super().__init__(backbone, neck, head, base_momentum, pretrained, data_preprocessor,
                         init_cfg)
        log_model_execution(self)

    def forward(self,
                inputs: Union[Tensor, List[Tensor]],
                data_samples: Optional[List[DataSample]] = None,
                mode: str = 'tensor'):
        """As :meth:`MoCoV3.forward`; ``data_samples`` are needed in every mode."""
        if mode == 'tensor':
            return self.extract_feat(inputs, data_samples)
        return super().forward(inputs, data_samples, mode)

    def extract_feat(self, inputs: Tensor,
                     data_samples: Optional[List[DataSample]] = None) -> tuple:
        """Backbone features of one view ``(B, 3, H, W)`` with ``(B, H, W)`` superpixels."""
        return self.backbone(inputs, stack_sample_superpixels(data_samples))

    def loss(self, inputs: List[Tensor], data_samples: List[DataSample],
             **kwargs) -> Dict[str, Tensor]:
        """Symmetric contrastive loss of two views.

        Args:
            inputs (List[Tensor]): two views, each ``(B, 3, H, W)``.
            data_samples (List[DataSample]): samples carrying ``(2, H, W)`` superpixels.
        """
        superpixels = stack_sample_superpixels(data_samples)
        if not isinstance(inputs, list) or len(inputs) != 2 or superpixels.dim() != 4 \
                or superpixels.shape[1] != 2:
            raise ValueError('MoCo-v3 needs two views and one superpixel map per view '
                             "(MultiView with num_views=[1, 1], then ApplyToList around "
                             'cast_mm.SEEDSSuperpixels)')
        queries = [self.neck(self.backbone(view, superpixels[:, v]))[0]
                   for v, view in enumerate(inputs)]
        with torch.no_grad():
            self.momentum_encoder.update_parameters(nn.Sequential(self.backbone, self.neck))
            key_backbone, key_neck = self.momentum_encoder.module
            keys = [key_neck(key_backbone(view, superpixels[:, v]))[0]
                    for v, view in enumerate(inputs)]
        loss = self.head.loss(queries[0], keys[1]) + self.head.loss(queries[1], keys[0])
        return dict(loss=loss)

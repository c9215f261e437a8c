"""Test-time model that turns a CAST backbone's hierarchy into data samples for metrics."""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.structures import PixelData
from torch import Tensor

from cast_mm.ops import segment_prototypes
from cast_mm.registry import MODELS
from cast_mm.superpixels import MISSING_SUPERPIXELS_HINT, sample_superpixels
from .execution_log import log_model_execution
from .segment_hierarchy import SegmentHierarchy, hierarchy_from_features

OUTPUT_SHAPES = ('ori_shape', 'img_shape')


@MODELS.register_module()
class HierarchySegmentor(BaseModel):
    """Predict the segmentation hierarchy (the argmax chains of the poolings) of each image.

    For every image the segment maps of ``levels`` go to ``data_sample.pred_hierarchy``
    (``PixelData`` of shape ``(len(levels), H, W)``, metainfo ``hierarchy_levels``). With
    ``prototype_level``, ``data_sample.segment_prototypes`` (``(S, D)``) holds the prototype of
    each segment of that level: the pixel-weighted mean of the L2-normalised embeddings of its
    superpixels (segmentation mode: the fused tokens; classification mode: the stage-1 tokens),
    after the optional ``neck`` (where a cast_mm MoCo-v3 checkpoint loads its projector).
    Only ``mode='predict'`` is supported: train the backbone with a classifier, MoCo or a
    segmentor and load the checkpoint here.

    Args:
        backbone (dict): a :class:`~cast_mm.models.CAST` config.
        levels (Sequence[int]): hierarchy levels to predict (0: superpixels, 1-4: poolings).
            Defaults to (1, 2, 3, 4).
        prototype_level (int, optional): level whose segment prototypes are computed (4 for
            the VOC retrieval protocol). Defaults to None.
        neck (dict, optional): projector applied to the ``(B * N, C)`` tokens before the
            prototypes, e.g. the MoCo-v3 projector ``dict(type='mmpretrain.NonLinearNeck',
            in_channels=384, hid_channels=4096, out_channels=256, num_layers=3, ...)``.
        output_shape (str): size of the predicted maps: ``'ori_shape'`` (resized back with
            nearest interpolation, for ground truth loaded at the original size) or
            ``'img_shape'`` (the network input, for ground truth transformed with the image).
        data_preprocessor (dict, optional): e.g.
            ``dict(type='cast_mm.SuperpixelSegDataPreProcessor', ...)``.
        init_cfg (dict, optional): MMEngine init config.
    """

    def __init__(self,
                 backbone: Dict,
                 levels: Sequence[int] = (1, 2, 3, 4),
                 prototype_level: Optional[int] = None,
                 neck: Optional[Dict] = None,
                 output_shape: str = 'ori_shape',
                 data_preprocessor: Optional[Dict] = None,
                 init_cfg: Optional[Dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        num_levels = len(self.backbone.num_clusters) + 1
        self.levels = tuple(int(level) for level in levels)
        if not self.levels or any(not 0 <= level < num_levels for level in self.levels):
            raise ValueError(f'levels must be in [0, {num_levels}), got {levels}')
        if prototype_level is not None and prototype_level not in self.levels:
            raise ValueError(f'prototype_level {prototype_level} must be one of the predicted '
                             f'levels {self.levels}')
        self.prototype_level = prototype_level
        self.neck = MODELS.build(neck) if neck else None
        if output_shape not in OUTPUT_SHAPES:
            raise ValueError(f'output_shape must be one of {OUTPUT_SHAPES}, got '
                             f'{output_shape!r}')
        self.output_shape = output_shape
        log_model_execution(self)

    def forward(self, inputs: Tensor, data_samples: Optional[List] = None,
                mode: str = 'predict') -> List:
        """Predict the hierarchy of ``inputs`` ``(B, 3, H, W)`` (``mode='predict'`` only)."""
        if mode != 'predict':
            raise ValueError(f"HierarchySegmentor is a test-time model (mode='predict'), got "
                             f'mode={mode!r}')
        superpixels = torch.stack(sample_superpixels(
            data_samples, 'HierarchySegmentor reads them from the pipeline: '
            f'{MISSING_SUPERPIXELS_HINT}', required=True)).to(inputs.device)
        feats = self.backbone.forward_features(inputs, superpixels)
        hierarchies = hierarchy_from_features(feats, superpixels)
        tokens = None
        if self.prototype_level is not None:
            tokens = (feats.fused_tokens if self.backbone.mode == 'segmentation' else
                      feats.stage_tokens[0])
            if self.neck is not None:
                tokens = self.neck((tokens.flatten(0, 1), ))[0].unflatten(
                    0, tokens.shape[:2])
        for b, (hierarchy, sample) in enumerate(zip(hierarchies, data_samples)):
            self._fill_sample(sample, hierarchy, None if tokens is None else tokens[b])
        return data_samples

    def _fill_sample(self, sample, hierarchy: SegmentHierarchy,
                     tokens: Optional[Tensor]) -> None:
        height, width = sample.img_shape[:2]
        maps = torch.stack([hierarchy.label_maps[level] for level in self.levels])
        maps = maps[:, :height, :width]
        if self.output_shape == 'ori_shape' and tuple(maps.shape[-2:]) != sample.ori_shape[:2]:
            maps = F.interpolate(maps[None].float(), size=sample.ori_shape[:2],
                                 mode='nearest')[0].long()
        sample.pred_hierarchy = PixelData(data=maps)
        sample.set_metainfo(dict(hierarchy_levels=self.levels))
        if tokens is None:
            return
        segment_of = hierarchy.superpixel_segments(self.prototype_level).to(tokens.device)
        superpixel_map = hierarchy.label_maps[0][:height, :width].to(tokens.device)
        sample.segment_prototypes = segment_prototypes(
            tokens[hierarchy.token_index[0].to(tokens.device)], superpixel_map, segment_of,
            hierarchy.num_segments[self.prototype_level])
        sample.set_metainfo(dict(prototype_level=self.prototype_level))

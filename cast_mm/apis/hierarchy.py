"""Segmentation hierarchy of images: superpixels, a CAST forward pass, the nested segments.

:class:`HierarchyExtractor` computes SEEDS superpixels of images, runs a CAST backbone and reads
the hierarchy out of its outputs (:func:`cast_mm.models.hierarchy_from_features`).
"""
import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from cast_mm.models.backbones.cast import CAST, CASTFeatures
from cast_mm.models.segment_hierarchy import SegmentHierarchy, hierarchy_from_features
from cast_mm.superpixels import SEEDSSource

ImageLike = Union[str, np.ndarray]

#: ImageNet mean / std on the 0-255 scale (the OpenMMLab data-preprocessor convention).
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)

#: SEEDS preset used for each backbone mode when superpixels are not given.
DEFAULT_SEEDS_PRESET = dict(classification='moco', segmentation='seg')


def get_cast_backbone(model: nn.Module) -> CAST:
    """The :class:`CAST` backbone of ``model`` (itself, or its ``.backbone``).

    Raises:
        TypeError: when ``model`` holds no CAST backbone.
    """
    if isinstance(model, CAST):
        return model
    backbone = getattr(model, 'backbone', None)
    if isinstance(backbone, CAST):
        return backbone
    raise TypeError(f'expected a cast_mm CAST backbone or a model whose .backbone is one, got '
                    f'{type(model).__name__} (backbone: {type(backbone).__name__})')


def load_rgb_image(image: ImageLike) -> np.ndarray:
    """An ``H x W x 3`` uint8 RGB array from a file path or an array.

    Arrays are taken as RGB. Grayscale ``H x W`` arrays are replicated to three channels.
    """
    if isinstance(image, str):
        array = cv2.imread(image, cv2.IMREAD_COLOR)
        if array is None:
            raise FileNotFoundError(f'cannot read image {image!r}')
        return cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
    if not isinstance(image, np.ndarray):
        raise TypeError(f'image must be a path or a numpy array, got {type(image).__name__}')
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'image must be H x W x 3 (RGB), got shape {image.shape}')
    if image.dtype != np.uint8:
        raise ValueError(f'image must be uint8, got {image.dtype}')
    return image


class HierarchyExtractor:
    """Compute superpixels, run a CAST backbone and return each image's hierarchy.

    Args:
        model (nn.Module): a :class:`CAST` backbone or a model holding one as ``.backbone``
            (mmpretrain classifier, mmseg segmentor), classification or segmentation mode.
        mean (Sequence[float]): per-channel RGB mean on the 0-255 scale. Defaults to ImageNet.
        std (Sequence[float]): per-channel RGB std on the 0-255 scale. Defaults to ImageNet.
        superpixel_cfg (dict, optional): arguments of
            :class:`~cast_mm.superpixels.SEEDSSource` (e.g. ``dict(preset='deit')``); the
            default preset follows the backbone mode (``'moco'`` for classification,
            ``'seg'`` for segmentation). Images are RGB.
    """

    def __init__(self,
                 model: nn.Module,
                 mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD,
                 superpixel_cfg: Optional[Dict] = None) -> None:
        self.backbone = get_cast_backbone(model)
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f'mean and std need 3 values (RGB), got {mean} and {std}')
        if min(std) <= 0:
            raise ValueError(f'std must be positive, got {std}')
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        cfg = dict(preset=DEFAULT_SEEDS_PRESET[self.backbone.mode])
        cfg.update(superpixel_cfg or {})
        cfg['channel_order'] = 'rgb'
        self.seeds = SEEDSSource(**cfg)

    def superpixels(self, image: np.ndarray) -> np.ndarray:
        """SEEDS superpixels ``(H, W)`` of one RGB uint8 image with the configured preset."""
        return self.seeds.compute(image)

    def __call__(
        self,
        images: Union[ImageLike, Sequence[ImageLike]],
        superpixels: Optional[Union[np.ndarray, Tensor, Sequence]] = None,
    ) -> Union[SegmentHierarchy, List[SegmentHierarchy]]:
        """Hierarchy of one image or of a list of images.

        Args:
            images: a path or ``H x W x 3`` uint8 RGB array, or a list of them. Images of equal
                size are run as one batch.
            superpixels: ``(H, W)`` integer ids per image (a list for a list of images);
                computed with SEEDS when omitted.

        Returns:
            a :class:`SegmentHierarchy` for a single image, a list of them for a list.
        """
        single = isinstance(images, (str, np.ndarray))
        arrays = [load_rgb_image(img) for img in ([images] if single else images)]
        if superpixels is None:
            maps = [self.superpixels(img) for img in arrays]
        else:
            maps = [superpixels] if single else list(superpixels)
            if len(maps) != len(arrays):
                raise ValueError(f'got {len(arrays)} images but {len(maps)} superpixel maps')
        maps = [torch.as_tensor(np.asarray(m) if not isinstance(m, Tensor) else m).long()
                for m in maps]
        for img, spx in zip(arrays, maps):
            if tuple(spx.shape) != img.shape[:2]:
                raise ValueError(f'superpixel map of shape {tuple(spx.shape)} does not match '
                                 f'image of shape {img.shape[:2]}')
        results: List[Optional[SegmentHierarchy]] = [None] * len(arrays)
        groups: Dict[Tuple[int, int], List[int]] = {}
        for i, img in enumerate(arrays):
            groups.setdefault(img.shape[:2], []).append(i)
        for indices in groups.values():
            batch, _ = self.run_batch([arrays[i] for i in indices], [maps[i] for i in indices])
            for i, hierarchy in zip(indices, batch):
                results[i] = hierarchy
        return results[0] if single else results

    @torch.no_grad()
    def run_batch(self, images: List[np.ndarray],
                  superpixels: List[Tensor]) -> Tuple[List[SegmentHierarchy], CASTFeatures]:
        """Hierarchies of equal-size RGB uint8 images and the forward pass they come from.

        Args:
            images (list[np.ndarray]): ``H x W x 3`` uint8 RGB arrays of one size.
            superpixels (list[Tensor]): their ``(H, W)`` integer superpixel ids.

        Returns:
            ``(hierarchies, feats)``: one :class:`SegmentHierarchy` per image (on the CPU) and
            the backbone's :class:`CASTFeatures` (on its device), e.g. for a classifier's head.
        """
        device = next(self.backbone.parameters()).device
        pixels = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
        inputs = ((pixels - self.mean) / self.std).to(device)
        spx = torch.stack(superpixels).to(device)
        was_training = self.backbone.training
        self.backbone.eval()
        try:
            feats = self.backbone.forward_features(inputs, spx)
        finally:
            self.backbone.train(was_training)
        return [_to_cpu(h) for h in hierarchy_from_features(feats, spx)], feats


def _to_cpu(hierarchy: SegmentHierarchy) -> SegmentHierarchy:
    values = {}
    for field in dataclasses.fields(hierarchy):
        value = getattr(hierarchy, field.name)
        values[field.name] = ([t.cpu() for t in value] if isinstance(value, list)
                              else value.cpu())
    return SegmentHierarchy(**values)


def extract_hierarchy(model: nn.Module,
                      images: Union[ImageLike, Sequence[ImageLike]],
                      superpixels: Optional[Union[np.ndarray, Tensor, Sequence]] = None,
                      **kwargs) -> Union[SegmentHierarchy, List[SegmentHierarchy]]:
    """One-call form of :class:`HierarchyExtractor`: ``extract_hierarchy(model, 'cat.jpg')``.

    Args:
        model (nn.Module): a CAST backbone or a model holding one as ``.backbone``.
        images: a path or RGB uint8 array, or a list of them.
        superpixels: optional superpixel maps (see :meth:`HierarchyExtractor.__call__`).
        **kwargs: ``mean``, ``std``, ``superpixel_cfg`` of :class:`HierarchyExtractor`.
    """
    return HierarchyExtractor(model, **kwargs)(images, superpixels)

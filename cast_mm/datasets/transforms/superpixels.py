"""Superpixel sources as data transforms (one implementation for mmseg and mmpretrain).

The algorithms and their settings live in :mod:`cast_mm.superpixels`; a transform here only
reads the image of ``results`` and writes the map back. ``cast_mm.SEEDSSuperpixels`` is the
official SEEDS with its presets (:mod:`cast_mm.superpixels.presets`).
"""
from typing import Dict

import numpy as np
from mmcv.transforms import BaseTransform

from cast_mm.registry import TRANSFORMS
from cast_mm.superpixels import PRESETS, SEEDSSource, SuperpixelSource, seeds_superpixels
from cast_mm.utils.images import three_channel_image

__all__ = ['PRESETS', 'SEEDSSuperpixels', 'SuperpixelTransform', 'seeds_superpixels']


class SuperpixelTransform(SuperpixelSource, BaseTransform):
    """A superpixel source as a pipeline step: ``results[key]`` -> ``results['superpixels']``.

    Required keys: ``img`` (``H x W x 3``; a grey ``H x W`` / ``H x W x 1`` or an RGBA image is
    made three-channel in ``results`` too, as ``LoadImageFromFile`` loads such files; values
    outside 0..255 are clipped, other dtypes cast to uint8). Added keys: ``superpixels``
    (``H x W`` int64), ``num_superpixels`` (the budget used).
    """

    key: str = 'img'

    def image(self, results: Dict) -> np.ndarray:
        """The ``H x W x 3`` uint8 image of ``results`` the superpixels are computed on."""
        name = type(self).__name__
        if self.key not in results:
            raise KeyError(f'{name} needs results[{self.key!r}] (an H x W x 3 image)')
        image = three_channel_image(results[self.key], name)
        if image is not results[self.key]:
            results[self.key] = image
        if image.dtype != np.uint8:
            image = np.clip(image, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(image)

    def transform(self, results: Dict) -> Dict:
        image = self.image(results)
        results['superpixels'] = self.compute(image)
        results['num_superpixels'] = self.budget(*image.shape[:2])
        return results


@TRANSFORMS.register_module()
class SEEDSSuperpixels(SEEDSSource, SuperpixelTransform):
    """Compute SEEDS superpixels of ``results[key]`` into ``results['superpixels']``.

    Put it after every geometric and photometric augmentation (and padding), so the map matches
    the image the model sees. Arguments: those of :class:`cast_mm.superpixels.SEEDSSource`
    (``preset='seg'``, ``'deit'`` or ``'moco'``, explicit settings override it). Required and
    added keys: see :class:`SuperpixelTransform`.
    """

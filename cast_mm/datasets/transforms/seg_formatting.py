"""Packing of superpixel maps into mmseg data samples."""
from typing import Dict

import numpy as np
import torch
from mmengine.structures import PixelData
from mmseg.datasets.transforms import PackSegInputs

from cast_mm.registry import TRANSFORMS
from cast_mm.superpixels import MISSING_SUPERPIXELS_HINT


@TRANSFORMS.register_module()
class PackSuperpixelSegInputs(PackSegInputs):
    """mmseg's ``PackSegInputs`` that also packs ``results['superpixels']``.

    The map becomes ``data_sample.superpixels`` (a ``PixelData`` of shape ``1 x H x W``,
    int64), which :class:`~cast_mm.models.SuperpixelSegDataPreProcessor` stacks and pads.
    Pipelines without superpixels (slide inference computes them per window) pack as usual.

    Args:
        meta_keys (Sequence[str]): as in ``PackSegInputs``.
    """

    def transform(self, results: Dict) -> Dict:
        packed = super().transform(results)
        superpixels = results.get('superpixels')
        if superpixels is None:
            return packed
        superpixels = np.asarray(superpixels)
        image_shape = results['img'].shape[:2]
        if superpixels.shape != image_shape:
            raise ValueError(
                f'superpixel map of shape {superpixels.shape} does not match the image '
                f'{image_shape}: SEEDSSuperpixels must come after every transform that changes '
                f'the image size ({MISSING_SUPERPIXELS_HINT})')
        data = torch.from_numpy(superpixels.astype(np.int64, copy=False))[None]
        packed['data_samples'].superpixels = PixelData(data=data)
        return packed

"""SLIC superpixels as a data transform (torch implementation, see ``cast_mm.ops``).

A drop-in alternative to :class:`SEEDSSuperpixels` in a pipeline. For GPU training the same
function, :func:`cast_mm.ops.slic_superpixels`, can instead run on the device batch inside the
model, which removes superpixels from the data loader altogether.
"""
from typing import Dict, Optional

import numpy as np
import torch
from mmcv.transforms import BaseTransform

from cast_mm.ops import slic_superpixels
from cast_mm.registry import TRANSFORMS


@TRANSFORMS.register_module()
class SLICSuperpixels(BaseTransform):
    """Compute SLIC superpixels of ``results[key]`` into ``results['superpixels']``.

    Put it after every geometric and photometric augmentation, like ``SEEDSSuperpixels``.

    Required keys: ``img`` (``H x W x 3``, values in 0..255). Added keys: ``superpixels``
    (``H x W`` int64, ids ``0 .. S - 1`` all used), ``num_superpixels`` (the budget).

    Args:
        num_superpixels (int, optional): fixed budget per image.
        pixels_per_superpixel (int, optional): budget ``H * W // pixels_per_superpixel`` when
            ``num_superpixels`` is None. Defaults to 256 (the Segmenter SEEDS budget).
        compactness (float): spatial weight of the SLIC distance. Defaults to 10.
        num_iterations (int): k-means iterations. Defaults to 10.
        channel_order (str): ``'bgr'`` (mmcv loading, default) or ``'rgb'``.
        key (str): image key. Defaults to ``'img'``.
    """

    def __init__(self,
                 num_superpixels: Optional[int] = None,
                 pixels_per_superpixel: Optional[int] = 256,
                 compactness: float = 10.,
                 num_iterations: int = 10,
                 channel_order: str = 'bgr',
                 key: str = 'img') -> None:
        if num_superpixels is None and pixels_per_superpixel is None:
            raise ValueError('give num_superpixels or pixels_per_superpixel')
        if channel_order not in ('bgr', 'rgb'):
            raise ValueError(f"channel_order must be 'bgr' or 'rgb', got {channel_order!r}")
        self.num_superpixels = num_superpixels
        self.pixels_per_superpixel = pixels_per_superpixel
        self.compactness = compactness
        self.num_iterations = num_iterations
        self.channel_order = channel_order
        self.key = key

    def budget(self, height: int, width: int) -> int:
        """Number of superpixels asked for an image of this size."""
        if self.num_superpixels is not None:
            return int(self.num_superpixels)
        return max(1, (height * width) // int(self.pixels_per_superpixel))

    def transform(self, results: Dict) -> Dict:
        if self.key not in results:
            raise KeyError(f'SLICSuperpixels needs results[{self.key!r}] (an H x W x 3 image)')
        image = np.ascontiguousarray(results[self.key])
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f'SLICSuperpixels needs an H x W x 3 image, got {image.shape}')
        budget = self.budget(*image.shape[:2])
        batch = torch.from_numpy(image).permute(2, 0, 1)[None]
        labels = slic_superpixels(batch, budget, self.compactness, self.num_iterations,
                                  self.channel_order)
        results['superpixels'] = labels[0].numpy()
        results['num_superpixels'] = budget
        return results

    def __repr__(self) -> str:
        budget = (f'num_superpixels={self.num_superpixels}' if self.num_superpixels is not None
                  else f'pixels_per_superpixel={self.pixels_per_superpixel}')
        return (f'{self.__class__.__name__}({budget}, compactness={self.compactness}, '
                f'num_iterations={self.num_iterations}, channel_order={self.channel_order!r})')

"""SLIC superpixels as a data transform and a device-side superpixel source.

A drop-in alternative to :class:`SEEDSSuperpixels` in a pipeline. The same source computes a
whole batch on the batch's device (the torch SLIC of :func:`cast_mm.ops.slic_superpixels`),
which is how a segmentor with ``device_superpixels`` removes superpixels from the data loader.
"""
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from cast_mm.models.utils.superpixel_source import SEG_PIXELS_PER_SUPERPIXEL, check_images
from cast_mm.ops import slic_superpixels
from cast_mm.registry import TRANSFORMS
from .superpixels import SuperpixelTransform


@TRANSFORMS.register_module()
class SLICSuperpixels(SuperpixelTransform):
    """Compute SLIC superpixels of ``results[key]`` into ``results['superpixels']``.

    Put it after every geometric and photometric augmentation, like ``SEEDSSuperpixels``.
    Required and added keys: see :class:`SuperpixelTransform`.

    Args:
        num_superpixels (int, optional): fixed budget per image.
        pixels_per_superpixel (int, optional): budget ``H * W // pixels_per_superpixel`` when
            ``num_superpixels`` is None. Defaults to 256 (the official segmentation budget).
        compactness (float): spatial weight of the SLIC distance. Defaults to 10.
        num_iterations (int): k-means iterations. Defaults to 10.
        channel_order (str): ``'bgr'`` (mmcv loading, default) or ``'rgb'``.
        key (str): image key. Defaults to ``'img'``.
    """

    def __init__(self,
                 num_superpixels: Optional[int] = None,
                 pixels_per_superpixel: Optional[int] = SEG_PIXELS_PER_SUPERPIXEL,
                 compactness: float = 10.,
                 num_iterations: int = 10,
                 channel_order: str = 'bgr',
                 key: str = 'img') -> None:
        self.set_budget(num_superpixels, pixels_per_superpixel)
        self.set_channel_order(channel_order)
        self.compactness = compactness
        self.num_iterations = num_iterations
        self.key = key

    def compute(self, image: np.ndarray) -> np.ndarray:
        """Superpixels of one ``H x W x 3`` uint8 image."""
        batch = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
        return self.compute_batch(batch)[0].numpy()

    def compute_batch(self, images: Tensor) -> Tensor:
        """Superpixels ``(B, H, W)`` of uint8 images ``(B, 3, H, W)``, on their device."""
        check_images(images)
        with torch.no_grad():
            return slic_superpixels(images, self.budget(*images.shape[-2:]), self.compactness,
                                    self.num_iterations, self.channel_order)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.budget_repr()}, compactness={self.compactness}, '
                f'num_iterations={self.num_iterations}, channel_order={self.channel_order!r})')

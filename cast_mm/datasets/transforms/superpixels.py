"""SEEDS superpixels as a data transform (one implementation for mmseg and mmpretrain).

The official pipelines run OpenCV-contrib SEEDS on the final augmented image, converted to
CIE LAB, with one of two parameter sets (spec §4.3, §5, §6):

=============  ==================  ==============  ==========  ==========================
preset         budget              histogram_bins  iterations  used by
=============  ==================  ==============  ==========  ==========================
``'seg'``      ``H * W / 16**2``   5               15          Segmenter / SPML fine-tuning
``'deit'``     196                 5               15          supervised ImageNet (DeiT)
``'moco'``     196                 15              20          MoCo-v3, linear probing
=============  ==================  ==============  ==========  ==========================

All use ``num_levels=1, prior=2, double_step=False``.
"""
from typing import Dict, Optional

import cv2
import numpy as np
from mmcv.transforms import BaseTransform

from cast_mm.registry import TRANSFORMS

PRESETS: Dict[str, Dict] = dict(
    seg=dict(num_superpixels=None, pixels_per_superpixel=256, histogram_bins=5,
             num_iterations=15),
    deit=dict(num_superpixels=196, pixels_per_superpixel=None, histogram_bins=5,
              num_iterations=15),
    moco=dict(num_superpixels=196, pixels_per_superpixel=None, histogram_bins=15,
              num_iterations=20),
)


def _require_seeds():
    if not hasattr(cv2, 'ximgproc'):
        raise ImportError(
            'SEEDS superpixels need the OpenCV contrib build (cv2.ximgproc is missing): '
            'pip install --force-reinstall --no-deps "opencv-contrib-python-headless<5", '
            'or run bash tools/install.sh')
    return cv2.ximgproc.createSuperpixelSEEDS


def seeds_superpixels(image: np.ndarray,
                      num_superpixels: int,
                      channel_order: str = 'rgb',
                      num_levels: int = 1,
                      prior: int = 2,
                      histogram_bins: int = 5,
                      num_iterations: int = 15,
                      double_step: bool = False) -> np.ndarray:
    """SEEDS superpixels of one ``H x W x 3`` uint8 image, computed in CIE LAB.

    Returns:
        np.ndarray: ``H x W`` int64 ids in ``[0, S)``.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'SEEDS needs an H x W x 3 image, got shape {image.shape}')
    if image.dtype != np.uint8:
        raise ValueError(f'SEEDS needs a uint8 image, got {image.dtype}')
    if num_superpixels < 1:
        raise ValueError(f'num_superpixels must be >= 1, got {num_superpixels}')
    create = _require_seeds()
    code = cv2.COLOR_RGB2LAB if channel_order == 'rgb' else cv2.COLOR_BGR2LAB
    lab = cv2.cvtColor(np.ascontiguousarray(image), code)
    height, width = image.shape[:2]
    seeds = create(width, height, 3, int(num_superpixels), num_levels, prior, histogram_bins,
                   double_step)
    seeds.iterate(lab, num_iterations)
    return seeds.getLabels().astype(np.int64)


@TRANSFORMS.register_module()
class SEEDSSuperpixels(BaseTransform):
    """Compute SEEDS superpixels of ``results[key]`` into ``results['superpixels']``.

    Put it after every geometric and photometric augmentation (and padding), so the map matches
    the image the model sees.

    Required keys: ``img`` (``H x W x 3`` uint8). Added keys: ``superpixels`` (``H x W``
    int64), ``num_superpixels`` (the budget used).

    Args:
        preset (str): ``'seg'``, ``'deit'`` or ``'moco'`` (table above); explicit arguments
            override it. Defaults to ``'seg'``.
        num_superpixels (int, optional): fixed budget per image.
        pixels_per_superpixel (int, optional): budget ``H * W // pixels_per_superpixel``
            (used when ``num_superpixels`` is None).
        histogram_bins (int, optional), num_iterations (int, optional): SEEDS settings.
        num_levels (int): SEEDS block levels. Defaults to 1.
        prior (int): SEEDS smoothing prior. Defaults to 2.
        channel_order (str): ``'bgr'`` (mmcv loading, default) or ``'rgb'``.
        official_color_wrap (bool): reproduce the official Segmenter quirk (spec §10.2): the
            image was multiplied by 255 again as uint8, so every value ``v`` became
            ``(256 - v) % 256`` before SEEDS. Only for evaluating checkpoints fine-tuned with the
            official code. Defaults to False.
        key (str): image key. Defaults to ``'img'``.
    """

    def __init__(self,
                 preset: str = 'seg',
                 num_superpixels: Optional[int] = None,
                 pixels_per_superpixel: Optional[int] = None,
                 histogram_bins: Optional[int] = None,
                 num_iterations: Optional[int] = None,
                 num_levels: int = 1,
                 prior: int = 2,
                 channel_order: str = 'bgr',
                 official_color_wrap: bool = False,
                 key: str = 'img') -> None:
        if preset not in PRESETS:
            raise ValueError(f'unknown SEEDS preset {preset!r}; choose one of {sorted(PRESETS)}')
        if channel_order not in ('bgr', 'rgb'):
            raise ValueError(f"channel_order must be 'bgr' or 'rgb', got {channel_order!r}")
        cfg = dict(PRESETS[preset])
        if num_superpixels is not None or pixels_per_superpixel is not None:
            cfg['num_superpixels'] = num_superpixels
            cfg['pixels_per_superpixel'] = pixels_per_superpixel
        self.num_superpixels = cfg['num_superpixels']
        self.pixels_per_superpixel = cfg['pixels_per_superpixel']
        self.histogram_bins = histogram_bins or cfg['histogram_bins']
        self.num_iterations = num_iterations or cfg['num_iterations']
        self.num_levels = num_levels
        self.prior = prior
        self.channel_order = channel_order
        self.official_color_wrap = official_color_wrap
        self.key = key
        _require_seeds()

    def budget(self, height: int, width: int) -> int:
        """Number of superpixels asked of SEEDS for an image of this size."""
        if self.num_superpixels is not None:
            return int(self.num_superpixels)
        return max(1, (height * width) // int(self.pixels_per_superpixel))

    def compute(self, image: np.ndarray) -> np.ndarray:
        """Superpixels of one uint8 image with this transform's settings."""
        if self.official_color_wrap:
            image = ((256 - image.astype(np.int64)) % 256).astype(np.uint8)
        return seeds_superpixels(
            image, self.budget(*image.shape[:2]), self.channel_order, self.num_levels,
            self.prior, self.histogram_bins, self.num_iterations)

    def transform(self, results: Dict) -> Dict:
        if self.key not in results:
            raise KeyError(f'SEEDSSuperpixels needs results[{self.key!r}] (an H x W x 3 image)')
        image = results[self.key]
        if image.dtype != np.uint8:
            image = np.clip(image, 0, 255).astype(np.uint8)
        results['superpixels'] = self.compute(image)
        results['num_superpixels'] = self.budget(*image.shape[:2])
        return results

    def __repr__(self) -> str:
        budget = (f'num_superpixels={self.num_superpixels}' if self.num_superpixels is not None
                  else f'pixels_per_superpixel={self.pixels_per_superpixel}')
        return (f'{self.__class__.__name__}({budget}, histogram_bins={self.histogram_bins}, '
                f'num_iterations={self.num_iterations}, channel_order={self.channel_order!r}, '
                f'official_color_wrap={self.official_color_wrap})')

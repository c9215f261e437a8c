"""SEEDS superpixels (OpenCV contrib), the superpixels of the official CAST pipelines.

The official pipelines run OpenCV-contrib SEEDS on the final augmented image, converted to
CIE LAB, with one of three parameter sets (the presets of :mod:`cast_mm.superpixels.presets`).
All use ``num_levels=1, prior=2, double_step=False``. :func:`seeds_superpixels` computes the
map of one image; :class:`SEEDSSource` is SEEDS as a superpixel source (the pipeline step
``cast_mm.SEEDSSuperpixels`` and the segmentor's windows use it).
"""
import math
from typing import Optional

import cv2
import numpy as np

from cast_mm.registry import SUPERPIXEL_SOURCES
from .presets import PRESETS
from .source import SuperpixelSource


def _require_seeds():
    if not hasattr(cv2, 'ximgproc'):
        raise ImportError(
            'SEEDS superpixels need the OpenCV contrib build (cv2.ximgproc is missing): '
            'pip install --force-reinstall --no-deps "opencv-contrib-python-headless<5", '
            'or run bash tools/install.sh')
    return cv2.ximgproc.createSuperpixelSEEDS


#: Shortest image side given to OpenCV's SEEDS (smaller images are edge-padded first).
SEEDS_MIN_SIDE = 16
#: SEEDS' seed blocks must be this many times smaller than the image's shorter side.
SEEDS_BLOCK_MARGIN = 1.25


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
    # OpenCV's SEEDS crashes or never returns on images with a side below a few pixels and on
    # thin images whose seed blocks (side sqrt(H * W / S)) are taller or wider than the image.
    # Such images are edge-padded to SEEDS_MIN_SIDE and given enough superpixels for blocks to
    # fit; the labels of the padding are cropped off and the ids renumbered. Ordinary images
    # (SEEDS' own budget fits) are left exactly as they are.
    padded_h, padded_w = max(height, SEEDS_MIN_SIDE), max(width, SEEDS_MIN_SIDE)
    short = min(padded_h, padded_w)
    budget = max(int(num_superpixels),
                 math.ceil(padded_h * padded_w * (SEEDS_BLOCK_MARGIN / short)**2))
    if (padded_h, padded_w) != (height, width):
        lab = cv2.copyMakeBorder(lab, 0, padded_h - height, 0, padded_w - width,
                                 cv2.BORDER_REPLICATE)
    seeds = create(padded_w, padded_h, 3, budget, num_levels, prior, histogram_bins,
                   double_step)
    seeds.iterate(lab, num_iterations)
    labels = seeds.getLabels()
    if budget == int(num_superpixels) and (padded_h, padded_w) == (height, width):
        return labels.astype(np.int64)
    labels = labels[:height, :width]
    return np.unique(labels, return_inverse=True)[1].reshape(height, width).astype(np.int64)


@SUPERPIXEL_SOURCES.register_module(name='SEEDSSuperpixels')
class SEEDSSource(SuperpixelSource):
    """SEEDS as a superpixel source, with the official presets.

    Configs name it ``cast_mm.SEEDSSuperpixels``: as a pipeline step (the transform of that
    name) and as the segmentor's ``window_superpixels`` (this class, one window at a time).

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
        official_color_wrap (bool): reproduce a quirk of the official Segmenter evaluation:
            the image was multiplied by 255 again as uint8, so every value ``v`` became
            ``(256 - v) % 256`` before SEEDS. Only for evaluating checkpoints fine-tuned with the
            official code. Defaults to False.
        key (str): image key of the pipeline step. Defaults to ``'img'``.
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
        self.set_channel_order(channel_order)
        cfg = dict(PRESETS[preset])
        if num_superpixels is not None or pixels_per_superpixel is not None:
            cfg['num_superpixels'] = num_superpixels
            cfg['pixels_per_superpixel'] = pixels_per_superpixel
        self.set_budget(cfg['num_superpixels'], cfg['pixels_per_superpixel'])
        self.histogram_bins = histogram_bins or cfg['histogram_bins']
        self.num_iterations = num_iterations or cfg['num_iterations']
        self.num_levels = num_levels
        self.prior = prior
        self.official_color_wrap = official_color_wrap
        self.key = key
        _require_seeds()

    def compute(self, image: np.ndarray) -> np.ndarray:
        """Superpixels of one uint8 image with this source's settings."""
        if self.official_color_wrap:
            image = ((256 - image.astype(np.int64)) % 256).astype(np.uint8)
        return seeds_superpixels(
            image, self.budget(*image.shape[:2]), self.channel_order, self.num_levels,
            self.prior, self.histogram_bins, self.num_iterations)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.budget_repr()}, '
                f'histogram_bins={self.histogram_bins}, num_iterations={self.num_iterations}, '
                f'channel_order={self.channel_order!r}, '
                f'official_color_wrap={self.official_color_wrap})')

"""Bring any loaded or user-given image to the ``H x W x 3`` uint8 form an image file loads as.

``LoadImageFromFile`` turns every readable file into ``H x W x 3`` uint8 (grey files are
repeated into three channels, the alpha of RGBA files is dropped, 16-bit files are reduced to
8 bits). Arrays handed to ``mmseg.apis.inference_model`` or mmpretrain's inferencers skip that
step, so :class:`CheckImage`, right after loading in the shipped test pipelines, does the same for
them, and refuses what no file could be (an empty image, an unsupported dtype, values that are
not pixel intensities) with an error that names the problem, before a resize step fails on it
with an unrelated error (a division by zero for an empty image, a Pillow type error for floats).
"""
from typing import Dict

from mmcv.transforms import BaseTransform

from cast_mm.registry import TRANSFORMS
from cast_mm.utils.images import FLOAT_RANGES, uint8_three_channel_image


@TRANSFORMS.register_module()
class CheckImage(BaseTransform):
    """Make ``results['img']`` an ``H x W x 3`` uint8 image as ``LoadImageFromFile`` loads files,
    or refuse it with an error that names the problem.

    Grey ``H x W`` / ``H x W x 1`` images are repeated into three channels, the alpha channel
    of RGBA images is dropped, and other dtypes are converted (uint16: high byte, floats: 0..1
    or 0..255): the rules of :mod:`cast_mm.utils.images`. Empty images, images of another
    shape, unsupported dtypes and values that are not intensities are refused. Put it right
    after the loading step (before any resize, which fails on an empty image with a division by
    zero and, with Pillow, on float images).

    Required keys: ``img``. Modified keys: ``img`` (``H x W x 3`` uint8; unchanged when it is
    one already).

    Args:
        float_range (str): How float images are read: ``'auto'`` (default; values all in
            ``[0, 1]``: 0..1, otherwise 0..255), ``'0-1'`` or ``'0-255'``.
    """

    def __init__(self, float_range: str = 'auto') -> None:
        if float_range not in FLOAT_RANGES:
            raise ValueError(f'float_range must be one of {FLOAT_RANGES}, got {float_range!r}')
        self.float_range = float_range

    def transform(self, results: Dict) -> Dict:
        results['img'] = uint8_three_channel_image(results.get('img'), 'CheckImage',
                                                   self.float_range)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(float_range={self.float_range!r})'

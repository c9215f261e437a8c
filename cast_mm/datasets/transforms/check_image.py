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

import numpy as np
from mmcv.transforms import BaseTransform

from cast_mm.registry import TRANSFORMS

#: How :func:`uint8_image` reads float images: ``'auto'`` takes an image whose values all lie in
#: ``[0, 1]`` as 0..1 and any other as 0..255.
FLOAT_RANGES = ('auto', '0-1', '0-255')


def three_channel_image(image, owner: str = 'the pipeline') -> np.ndarray:
    """``image`` as ``H x W x 3``, the way ``LoadImageFromFile`` loads files.

    A grey ``H x W`` or ``H x W x 1`` image is repeated into three channels and the alpha
    channel of an ``H x W x 4`` image is dropped; an empty image or any other shape is refused.
    The dtype is kept (see :func:`uint8_image`).

    Args:
        image (array-like): The image.
        owner (str): Who asks, for the error message.
    """
    if image is None:
        raise ValueError(f'{owner} got no image (None): the file could not be read or decoded')
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(f'{owner} needs an H x W image with 1, 3 or 4 channels, got shape '
                         f'{image.shape}')
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f'{owner} got an empty image ({image.shape[0]} x {image.shape[1]} '
                         'pixels)')
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    elif image.shape[2] == 4:
        image = image[..., :3]
    return image


def uint8_image(image: np.ndarray, owner: str = 'the pipeline',
                float_range: str = 'auto') -> np.ndarray:
    """``image`` with uint8 intensities, converted as image files are.

    - uint8: unchanged.
    - uint16: the high byte (``v >> 8``), as OpenCV reads a 16-bit file in colour mode.
    - bool: 0 and 255.
    - other integers: taken as 0..255 intensities; values outside 0..255 are refused.
    - floats: 0..1 (multiplied by 255) or 0..255, rounded; see ``float_range``. Values outside
      that range (a mean-subtracted, normalised image) and NaN / infinity are refused.
    - anything else (complex, object, strings, ...): refused.

    Args:
        image (np.ndarray): The image (any shape).
        owner (str): Who asks, for the error message.
        float_range (str): ``'auto'`` (default: an image whose values all lie in ``[0, 1]`` is
            0..1, any other 0..255; a 0..255 image darker than 2 / 255 everywhere is read as
            0..1), ``'0-1'`` or ``'0-255'``.

    Raises:
        ValueError: an unsupported dtype or values that are not intensities of that dtype.
    """
    if float_range not in FLOAT_RANGES:
        raise ValueError(f'float_range must be one of {FLOAT_RANGES}, got {float_range!r}')
    dtype = image.dtype
    if dtype == np.uint8:
        return image
    if dtype == np.uint16:
        return (image >> 8).astype(np.uint8)
    if dtype == np.bool_:
        return image.astype(np.uint8) * 255
    if np.issubdtype(dtype, np.integer):
        low, high = int(image.min()), int(image.max())
        if low < 0 or high > 255:
            raise ValueError(
                f'{owner} got an image of dtype {dtype} with values {low}..{high}; integer '
                'images need values in 0..255 (or the uint16 / uint8 dtype of the file they came '
                'from)')
        return image.astype(np.uint8)
    if np.issubdtype(dtype, np.floating):
        if not np.isfinite(image).all():
            raise ValueError(f'{owner} got an image of dtype {dtype} with NaN or infinite values')
        low, high = float(image.min()), float(image.max())
        scale = float_range == '0-1' or (float_range == 'auto' and high <= 1.0)
        limit = 1.0 if scale else 255.0
        if low < 0 or high > limit:
            raise ValueError(
                f'{owner} got an image of dtype {dtype} with values {low:g}..{high:g}, outside '
                f"{'0..1' if scale else '0..255'}: float images need intensities in 0..1 or "
                '0..255 (give the image before mean / std normalisation)')
        if scale:
            image = image * 255.0
        return np.rint(image).astype(np.uint8)
    raise ValueError(f'{owner} cannot use an image of dtype {dtype}: give uint8, uint16, '
                     'another integer type with values in 0..255, bool, or float (0..1 or '
                     '0..255)')


@TRANSFORMS.register_module()
class CheckImage(BaseTransform):
    """Make ``results['img']`` an ``H x W x 3`` uint8 image as ``LoadImageFromFile`` loads files,
    or refuse it with an error that names the problem.

    Grey ``H x W`` / ``H x W x 1`` images are repeated into three channels, the alpha channel
    of RGBA images is dropped, and other dtypes are converted by :func:`uint8_image` (uint16:
    high byte, floats: 0..1 or 0..255). Empty images, images of another shape, unsupported
    dtypes and values that are not intensities are refused. Put it right after the loading step
    (before any resize, which fails on an empty image with a division by zero and, with Pillow,
    on float images).

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
        image = three_channel_image(results.get('img'), 'CheckImage')
        results['img'] = np.ascontiguousarray(
            uint8_image(image, 'CheckImage', self.float_range))
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(float_range={self.float_range!r})'

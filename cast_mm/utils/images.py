"""Images as the models see them: one conversion of any image to ``H x W x 3`` uint8.

Every entry point of cast_mm (the ``cast_mm.CheckImage`` pipeline step, the hierarchy API and
through it the tools and the explorer) converts images here, with one rule per case. The rules
are those of loading a file with ``LoadImageFromFile`` (OpenCV, colour mode), so that an array
and the file it came from give the model the same pixels:

=====================  ==========================================================================
input                  rule
=====================  ==========================================================================
grey (``H x W``,       the grey values are repeated into three channels
``H x W x 1``)
RGBA (``H x W x 4``)   the alpha channel is dropped (not blended over a background)
uint16 (16-bit)        the high byte is kept (``v >> 8``), as OpenCV reads 16-bit files
bool                   0 and 255
other integers         taken as 0..255; values outside are refused
float                  0..1 (times 255) or 0..255, rounded; see ``float_range``; values outside
                       (a normalised image), NaN and infinity are refused
EXIF orientation       applied (files only: OpenCV's colour mode rotates as the tag says)
several frames         the first one (files only)
=====================  ==========================================================================

Anything else (an empty image, two channels, complex or object dtypes, a file that is empty or
not an image) is refused with a ValueError that names the problem.
"""
import os.path as osp
from typing import List

import numpy as np

#: How :func:`uint8_image` reads float images: ``'auto'`` takes an image whose values all lie in
#: ``[0, 1]`` as 0..1 and any other as 0..255.
FLOAT_RANGES = ('auto', '0-1', '0-255')
#: EXIF tag of the orientation.
_EXIF_ORIENTATION = 0x0112


class ImageFileError(ValueError):
    """A file that is not an image the models can read; the message names the problem."""


def three_channel_image(image, owner: str = 'the pipeline') -> np.ndarray:
    """``image`` as ``H x W x 3`` (grey repeated, alpha dropped; the dtype is kept).

    Args:
        image (array-like): The image.
        owner (str): Who asks, for the error message.

    Raises:
        ValueError: None, an empty image or a shape that is not ``H x W`` with 1, 3 or 4
            channels.
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
    """``image`` with uint8 intensities, by the rules of the module docstring.

    Args:
        image (np.ndarray): The image (any shape); returned as is when it is uint8.
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


def uint8_three_channel_image(image, owner: str = 'the pipeline',
                              float_range: str = 'auto') -> np.ndarray:
    """``image`` as a contiguous ``H x W x 3`` uint8 array (both rules above); the array
    itself when it is one already."""
    return np.ascontiguousarray(uint8_image(three_channel_image(image, owner), owner,
                                            float_range))


def image_file_notes(path: str) -> List[str]:
    """What the rules change when ``path`` is loaded (one note per rule that applies), read
    from the file's header; nothing is decoded.

    Raises:
        ImageFileError: no such file, an empty file, or a file that is not an image.
    """
    from PIL import Image, UnidentifiedImageError
    if not osp.isfile(path):
        raise ImageFileError(f'no such image file: {path}')
    if osp.getsize(path) == 0:
        raise ImageFileError(f'the file is empty (0 bytes): {path}')
    notes = []
    try:
        with Image.open(path) as img:
            mode, frames = img.mode, getattr(img, 'n_frames', 1)
            orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
            transparent = mode in ('RGBA', 'LA', 'PA') or 'transparency' in img.info
    except UnidentifiedImageError:
        raise ImageFileError(f'{path} is not an image (use PNG, JPEG, BMP, TIFF or WebP)')
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ImageFileError(f'{path} cannot be read as an image ({err})')
    if frames > 1:
        notes.append(f'the file holds {frames} frames: the first one is used')
    if orientation not in (0, 1):
        notes.append('turned upright as its EXIF orientation says')
    if mode.startswith('I;16') or mode in ('I', 'F'):
        notes.append(f'{mode!r} image (more than 8 bits): reduced to 8 bits')
    if transparent:
        notes.append('transparent image: the alpha channel is dropped')
    if mode in ('1', 'L', 'LA', 'I', 'F') or mode.startswith('I;16'):
        notes.append('grey image: copied to three channels')
    return notes

"""Superpixels, everything about them: the algorithms, their presets, the superpixel-source
protocol and the superpixel maps of a batch.

Below :mod:`cast_mm.models` and :mod:`cast_mm.datasets`, which adapt it: the pipeline steps
``cast_mm.SEEDSSuperpixels`` / ``cast_mm.SLICSuperpixels`` wrap the sources of this package as
data transforms, and ``SuperpixelEncoderDecoder`` builds its window and in-model sources here.

* :mod:`.seeds`: OpenCV-contrib SEEDS (:func:`seeds_superpixels`, :class:`SEEDSSource`).
* :mod:`.slic`: batched torch SLIC (:func:`slic_superpixels`, :class:`SLICSource`).
* :mod:`.presets`: the official budgets and SEEDS settings.
* :mod:`.source`: the :class:`SuperpixelSource` protocol and :func:`build_superpixel_source`.
* :mod:`.batch`: the superpixel maps carried by data samples, stacked and padded.
"""
from .batch import (MISSING_CLS_SUPERPIXELS_HINT, MISSING_SUPERPIXELS_HINT, SUPERPIXEL_SLOTS_KEY,
                    batch_slot_count, host_slot_count, sample_superpixels, stack_superpixel_maps)
from .presets import PRESETS, SEG_PIXELS_PER_SUPERPIXEL
from .seeds import SEEDSSource, seeds_superpixels
from .slic import SLICSource, slic_superpixels
from .source import CHANNEL_ORDERS, SuperpixelSource, build_superpixel_source, check_images

__all__ = [
    'CHANNEL_ORDERS', 'MISSING_CLS_SUPERPIXELS_HINT', 'MISSING_SUPERPIXELS_HINT', 'PRESETS',
    'SEEDSSource', 'SEG_PIXELS_PER_SUPERPIXEL', 'SLICSource', 'SUPERPIXEL_SLOTS_KEY',
    'SuperpixelSource', 'batch_slot_count', 'build_superpixel_source',
    'check_images', 'host_slot_count', 'sample_superpixels',
    'seeds_superpixels', 'slic_superpixels', 'stack_superpixel_maps'
]

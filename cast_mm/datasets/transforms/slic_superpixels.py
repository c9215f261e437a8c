"""SLIC superpixels as a data transform, a drop-in alternative to ``SEEDSSuperpixels``.

The algorithm (batched torch SLIC) and its settings live in :mod:`cast_mm.superpixels.slic`;
the same source computes whole batches on their device for a segmentor with
``device_superpixels``, which removes superpixels from the data loader.
"""
from cast_mm.registry import TRANSFORMS
from cast_mm.superpixels import SLICSource
from .superpixels import SuperpixelTransform


@TRANSFORMS.register_module()
class SLICSuperpixels(SLICSource, SuperpixelTransform):
    """Compute SLIC superpixels of ``results[key]`` into ``results['superpixels']``.

    Put it after every geometric and photometric augmentation, like ``SEEDSSuperpixels``.
    Arguments: those of :class:`cast_mm.superpixels.SLICSource`. Required and added keys: see
    :class:`~cast_mm.datasets.transforms.superpixels.SuperpixelTransform`.
    """

"""Data side of cast_mm: superpixel transforms, packing and datasets."""
from .transforms import SEEDSSuperpixels, seeds_superpixels

__all__ = ['SEEDSSuperpixels', 'seeds_superpixels']

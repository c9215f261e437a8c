from .superpixels import PRESETS, SEEDSSuperpixels, seeds_superpixels

__all__ = ['PRESETS', 'SEEDSSuperpixels', 'seeds_superpixels']

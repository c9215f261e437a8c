from .check_image import CheckImage
from .cls_formatting import PackSuperpixelClsInputs
from .seg_formatting import MISSING_SUPERPIXELS_HINT, PackSuperpixelSegInputs
from .slic_superpixels import SLICSuperpixels
from .superpixels import PRESETS, SEEDSSuperpixels, SuperpixelTransform, seeds_superpixels

__all__ = [
    'MISSING_SUPERPIXELS_HINT', 'PRESETS', 'CheckImage', 'PackSuperpixelClsInputs',
    'PackSuperpixelSegInputs', 'SEEDSSuperpixels', 'SLICSuperpixels', 'SuperpixelTransform',
    'seeds_superpixels'
]

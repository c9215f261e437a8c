from .formatting import MISSING_SUPERPIXELS_HINT, PackSuperpixelSegInputs
from .superpixels import PRESETS, SEEDSSuperpixels, seeds_superpixels
from .cls_formatting import PackSuperpixelClsInputs
from .slic_superpixels import SLICSuperpixels

__all__ = [
    'MISSING_SUPERPIXELS_HINT', 'PRESETS', 'PackSuperpixelSegInputs', 'SEEDSSuperpixels',
    'seeds_superpixels', 'PackSuperpixelClsInputs']
__all__ += ['SLICSuperpixels']

from .seg_data_preprocessor import SuperpixelSegDataPreProcessor, sample_superpixels
from .cls_data_preprocessor import (SuperpixelClsDataPreprocessor,
                                    SuperpixelSelfSupDataPreprocessor)

__all__ = [
    'SuperpixelSegDataPreProcessor', 'sample_superpixels', 'SuperpixelClsDataPreprocessor',
    'SuperpixelSelfSupDataPreprocessor'
]

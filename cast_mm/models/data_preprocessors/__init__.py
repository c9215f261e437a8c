from .cls_data_preprocessor import SuperpixelClsDataPreprocessor, SuperpixelSelfSupDataPreprocessor
from .seg_data_preprocessor import SuperpixelSegDataPreProcessor, sample_superpixels

__all__ = [
    'SuperpixelSegDataPreProcessor', 'sample_superpixels', 'SuperpixelClsDataPreprocessor',
    'SuperpixelSelfSupDataPreprocessor'
]

"""Models of cast_mm: the CAST backbone, its layers, heads and model wrappers."""
from .backbones import CAST, CASTFeatures
from .data_preprocessors import SuperpixelSegDataPreProcessor
from .heads import HierarchyMLPHead, SuperpixelMaskTransformer, SuperpixelMaskTransformerHead
from .layers import BlockFusion, ConvStem, GraphPooling, TransformerBlock
from .segmentors import SuperpixelEncoderDecoder
from .classifiers import SuperpixelImageClassifier, SuperpixelMoCoV3
from .hierarchy_segmentor import HierarchySegmentor
from .data_preprocessors import (SuperpixelClsDataPreprocessor,
                                 SuperpixelSelfSupDataPreprocessor)

__all__ = [
    'CAST', 'CASTFeatures', 'BlockFusion', 'ConvStem', 'GraphPooling', 'HierarchyMLPHead',
    'SuperpixelEncoderDecoder', 'SuperpixelMaskTransformer', 'SuperpixelMaskTransformerHead',
    'SuperpixelSegDataPreProcessor', 'TransformerBlock', 'SuperpixelImageClassifier',
    'SuperpixelMoCoV3', 'SuperpixelClsDataPreprocessor', 'SuperpixelSelfSupDataPreprocessor'
]

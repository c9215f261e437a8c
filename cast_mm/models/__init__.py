"""Models of cast_mm: the CAST backbone, its layers, heads and model wrappers."""
from .backbones import CAST, CASTFeatures
from .classifiers import SuperpixelImageClassifier, SuperpixelMoCoV3
from .data_preprocessors import (SuperpixelClsDataPreprocessor, SuperpixelSegDataPreProcessor,
                                 SuperpixelSelfSupDataPreprocessor)
from .heads import HierarchyMLPHead, SuperpixelMaskTransformer, SuperpixelMaskTransformerHead
from .hierarchy_segmentor import HierarchySegmentor
from .layers import BlockFusion, ConvStem, GraphPooling, TransformerBlock
from .segment_hierarchy import SegmentHierarchy, hierarchy_from_features
from .segmentors import SuperpixelEncoderDecoder

__all__ = [
    'CAST', 'CASTFeatures', 'BlockFusion', 'ConvStem', 'GraphPooling', 'HierarchyMLPHead',
    'SuperpixelEncoderDecoder', 'SuperpixelMaskTransformer', 'SuperpixelMaskTransformerHead',
    'SuperpixelSegDataPreProcessor', 'TransformerBlock', 'SuperpixelImageClassifier',
    'SuperpixelMoCoV3', 'SuperpixelClsDataPreprocessor', 'SuperpixelSelfSupDataPreprocessor',
    'HierarchySegmentor', 'SegmentHierarchy', 'hierarchy_from_features'
]

from .hierarchy_mlp_head import HierarchyMLPHead
from .mask_transformer import SuperpixelMaskTransformer
from .mask_transformer_head import SuperpixelMaskTransformerHead
from .segment_mlp_head import SegmentMLPHead

__all__ = [
    'HierarchyMLPHead', 'SegmentMLPHead', 'SuperpixelMaskTransformer',
    'SuperpixelMaskTransformerHead'
]

from .hierarchy_mlp_head import HierarchyMLPHead
from .mask_transformer import SuperpixelMaskTransformer
from .mask_transformer_head import SuperpixelMaskTransformerHead
from .segment_decode_head import SegmentDecodeHead
from .segment_mlp_head import SegmentMLPHead

__all__ = [
    'HierarchyMLPHead', 'SegmentDecodeHead', 'SegmentMLPHead', 'SuperpixelMaskTransformer',
    'SuperpixelMaskTransformerHead'
]

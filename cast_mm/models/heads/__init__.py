from .hierarchy_mlp_head import HierarchyMLPHead
from .mask_transformer import SuperpixelMaskTransformer
from .mask_transformer_head import SuperpixelMaskTransformerHead

__all__ = ['HierarchyMLPHead', 'SuperpixelMaskTransformer', 'SuperpixelMaskTransformerHead']

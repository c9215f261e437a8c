"""Models of cast_mm: the CAST backbone, its layers, heads and model wrappers."""
from .backbones import CAST, CASTFeatures
from .heads import SuperpixelMaskTransformer
from .layers import BlockFusion, ConvStem, GraphPooling, TransformerBlock

__all__ = [
    'CAST', 'CASTFeatures', 'SuperpixelMaskTransformer', 'BlockFusion', 'ConvStem', 'GraphPooling', 'TransformerBlock']

from .mask_transformer import SuperpixelMaskTransformer

__all__ = ['SuperpixelMaskTransformer']

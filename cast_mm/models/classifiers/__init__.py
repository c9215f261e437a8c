from .moco_v3 import SuperpixelMoCoV3
from .superpixel_image_classifier import SuperpixelImageClassifier, stack_sample_superpixels

__all__ = ['SuperpixelImageClassifier', 'SuperpixelMoCoV3', 'stack_sample_superpixels']

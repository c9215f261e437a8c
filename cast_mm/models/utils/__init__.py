from .superpixel_batch import stack_superpixel_maps

__all__ = ['stack_superpixel_maps']

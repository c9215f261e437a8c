from .superpixel_batch import stack_superpixel_maps
from .token_norm import norm_segment_tokens

__all__ = ['norm_segment_tokens', 'stack_superpixel_maps']

"""Plain-torch operators of CAST (no OpenMMLab imports)."""
from .farthest_point_sampling import farthest_point_sampling
from .segment_ops import (gather_tokens, masked_mean, num_token_slots, segment_mean,
                          segment_padding_mask, segment_prototypes, segment_sum_and_count,
                          segment_to_pixels)

__all__ = [
    'farthest_point_sampling', 'gather_tokens', 'masked_mean', 'num_token_slots', 'segment_mean',
    'segment_padding_mask', 'segment_prototypes', 'segment_sum_and_count', 'segment_to_pixels'
]

"""Building blocks of CAST (plain torch modules)."""
from .attention import Attention, TransformerBlock
from .block_fusion import BlockFusion, level_assignments, unpool_levels
from .conv_stem import ConvStem
from .graph_pooling import CentroidProjection, GraphPooling, PoolingOutput
from .pos_embed import resize_pos_grid, sincos_pos_embed_2d
from .segment_pooling import (interpolated_segment_mean, interpolated_segment_means,
                              resized_segment_mean, segment_interpolation_weights)

__all__ = [
    'Attention', 'TransformerBlock', 'BlockFusion', 'level_assignments', 'ConvStem',
    'CentroidProjection', 'GraphPooling', 'PoolingOutput', 'resize_pos_grid',
    'sincos_pos_embed_2d', 'interpolated_segment_mean', 'interpolated_segment_means',
    'resized_segment_mean', 'segment_interpolation_weights', 'unpool_levels'
]

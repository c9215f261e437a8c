from cast_mm.superpixels import (MISSING_CLS_SUPERPIXELS_HINT, MISSING_SUPERPIXELS_HINT,
                                 SUPERPIXEL_SLOTS_KEY, SuperpixelSource, batch_slot_count,
                                 build_superpixel_source, host_slot_count, sample_superpixels,
                                 stack_superpixel_maps)
from .sync_norm import MaskedSyncBatchNorm, batch_norm_factory, build_batch_norm
from .token_norm import norm_segment_tokens
from .weight_init import CASTMoCoV3Init

__all__ = [
    'CASTMoCoV3Init', 'MaskedSyncBatchNorm', 'batch_norm_factory', 'build_batch_norm',
    'norm_segment_tokens', 'stack_superpixel_maps', 'MISSING_CLS_SUPERPIXELS_HINT',
    'MISSING_SUPERPIXELS_HINT', 'SuperpixelSource', 'build_superpixel_source',
    'sample_superpixels', 'SUPERPIXEL_SLOTS_KEY', 'batch_slot_count', 'host_slot_count'
]

"""Losses of class scores that are constant on superpixels, computed per superpixel."""
from .segment_losses import (decomposes_over_segments, segment_accuracy, segment_cross_entropy,
                             segment_label_histogram)

__all__ = [
    'decomposes_over_segments', 'segment_accuracy', 'segment_cross_entropy',
    'segment_label_histogram'
]

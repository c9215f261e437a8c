"""Official CAST checkpoints to cast_mm."""
from .official import (LAYOUTS, ConvertedCheckpoint, UnknownCheckpointLayout,
                       convert_encoder, convert_official_checkpoint, detect_layout,
                       load_official_checkpoint)

__all__ = [
    'LAYOUTS', 'ConvertedCheckpoint', 'UnknownCheckpointLayout', 'convert_encoder',
    'convert_official_checkpoint', 'detect_layout', 'load_official_checkpoint'
]

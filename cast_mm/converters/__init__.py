"""Official CAST checkpoints to cast_mm: safe reading, conversion, download by URL.

Importing this package registers MMEngine checkpoint loaders (see
:func:`~cast_mm.converters.weights.register_checkpoint_loaders`), so official files load,
converted, wherever MMEngine takes a checkpoint.
"""
from cast_mm.utils.checkpoint_file import (OFFICIAL_SAFE_GLOBALS, CheckpointError,
                                           CorruptCheckpointError, ForeignCheckpointError,
                                           UnsafeCheckpointError, check_cast_weights,
                                           checkpoint_problem, describe_state_dict, read_checkpoint)
from .official import (LAYOUTS, ConvertedCheckpoint, UnknownCheckpointLayout, convert_encoder,
                       convert_official_checkpoint, detect_layout, load_official_checkpoint)
from .weights import (DEFAULT_WEIGHTS_BASE, OFFICIAL_FILES, WEIGHTS_BASE_ENV, WeightsDownloadError,
                      load_official_weights, official_url, register_checkpoint_loaders,
                      weights_base)

register_checkpoint_loaders()

__all__ = [
    'CheckpointError', 'ConvertedCheckpoint', 'CorruptCheckpointError', 'DEFAULT_WEIGHTS_BASE',
    'ForeignCheckpointError', 'LAYOUTS', 'OFFICIAL_FILES', 'OFFICIAL_SAFE_GLOBALS',
    'UnknownCheckpointLayout', 'UnsafeCheckpointError', 'WEIGHTS_BASE_ENV',
    'WeightsDownloadError', 'check_cast_weights', 'checkpoint_problem', 'convert_encoder',
    'convert_official_checkpoint', 'describe_state_dict', 'detect_layout',
    'load_official_checkpoint', 'load_official_weights', 'official_url', 'read_checkpoint',
    'register_checkpoint_loaders', 'weights_base'
]

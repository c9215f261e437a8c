"""Official CAST checkpoints to cast_mm: safe reading, conversion, download by URL.

Importing this package registers MMEngine's loader of the official URLs (and of no other
URL); :func:`cast_mm.setup_env` also makes MMEngine's loader of local files read them safely
and convert official files (:func:`~cast_mm.converters.weights.register_local_file_loader`),
so official files load, converted, wherever MMEngine takes a checkpoint.
"""
from cast_mm.utils.checkpoint_file import (OFFICIAL_SAFE_GLOBALS, CheckpointError,
                                           CorruptCheckpointError, ForeignCheckpointError,
                                           UnsafeCheckpointError, check_cast_weights,
                                           checkpoint_problem, describe_state_dict, read_checkpoint)
from .official import (LAYOUTS, ConvertedCheckpoint, UnknownCheckpointLayout, convert_encoder,
                       convert_official_checkpoint, detect_layout, load_official_checkpoint)
from .weights import (DEFAULT_WEIGHTS_BASE, OFFICIAL_FILES, WEIGHTS_BASE_ENV, WeightsDownloadError,
                      load_official_weights, official_url, register_checkpoint_loaders,
                      register_local_file_loader, register_official_url_loader, weights_base)

register_official_url_loader()

__all__ = [
    'CheckpointError', 'ConvertedCheckpoint', 'CorruptCheckpointError', 'DEFAULT_WEIGHTS_BASE',
    'ForeignCheckpointError', 'LAYOUTS', 'OFFICIAL_FILES', 'OFFICIAL_SAFE_GLOBALS',
    'UnknownCheckpointLayout', 'UnsafeCheckpointError', 'WEIGHTS_BASE_ENV',
    'WeightsDownloadError', 'check_cast_weights', 'checkpoint_problem', 'convert_encoder',
    'convert_official_checkpoint', 'describe_state_dict', 'detect_layout',
    'load_official_checkpoint', 'load_official_weights', 'official_url', 'read_checkpoint',
    'register_checkpoint_loaders', 'register_local_file_loader', 'register_official_url_loader',
    'weights_base'
]

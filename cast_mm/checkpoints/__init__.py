"""Checkpoints: safe reading, refusing foreign weights, the official CAST files (table,
conversion, download), MMEngine's loader schemes and the model index. Importing this package
registers the loader of the official URLs (:mod:`~cast_mm.checkpoints.loaders`)."""
from .download import WEIGHTS_BASE_ENV, WeightsDownloadError, load_official_weights
from .foreign import check_cast_weights, describe_state_dict
from .loaders import register_local_file_loader, register_official_url_loader
from .model_index import (index_models, model_info, register_model_index,
                          register_model_index_if_mmpretrain)
from .official import (DEFAULT_WEIGHTS_BASE, LAYOUTS, OFFICIAL_FILES, ConvertedCheckpoint,
                       OfficialFile, UnknownCheckpointLayout, convert_encoder,
                       convert_official_checkpoint, detect_layout)
from .reading import (ALLOWED_GLOBALS, CheckpointError, CorruptCheckpointError,
                      ForeignCheckpointError, UnsafeCheckpointError, checkpoint_problem,
                      read_checkpoint)

register_official_url_loader()

__all__ = [
    'ALLOWED_GLOBALS', 'CheckpointError', 'ConvertedCheckpoint', 'CorruptCheckpointError',
    'DEFAULT_WEIGHTS_BASE', 'ForeignCheckpointError', 'LAYOUTS', 'OFFICIAL_FILES', 'OfficialFile',
    'UnknownCheckpointLayout', 'UnsafeCheckpointError', 'WEIGHTS_BASE_ENV', 'WeightsDownloadError',
    'check_cast_weights', 'checkpoint_problem', 'convert_encoder', 'convert_official_checkpoint',
    'describe_state_dict', 'detect_layout', 'index_models', 'load_official_weights', 'model_info',
    'read_checkpoint', 'register_local_file_loader', 'register_model_index',
    'register_model_index_if_mmpretrain', 'register_official_url_loader'
]

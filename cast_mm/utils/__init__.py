from .checkpoint_compat import mmengine_checkpoint_globals
from .checkpoint_file import (CheckpointError, CorruptCheckpointError, ForeignCheckpointError,
                              UnsafeCheckpointError, check_cast_weights, checkpoint_problem,
                              read_checkpoint)
from .distributed import close_distributed, setup_cpu_distributed
from .tool_config import load_tool_config

__all__ = [
    'CheckpointError', 'CorruptCheckpointError', 'ForeignCheckpointError',
    'UnsafeCheckpointError', 'check_cast_weights',
    'checkpoint_problem', 'close_distributed', 'load_tool_config',
    'mmengine_checkpoint_globals', 'read_checkpoint',
    'setup_cpu_distributed'
]

from .checkpoint_compat import mmengine_checkpoint_globals
from .checkpoint_file import (CheckpointError, CorruptCheckpointError, ForeignCheckpointError,
                              UnsafeCheckpointError, check_cast_weights, checkpoint_problem,
                              read_checkpoint)
from .determinism import prepare_deterministic_environment
from .distributed import close_distributed, setup_cpu_distributed
from .host_reads import HostReadCounter, host_values
from .tool_config import load_tool_config

__all__ = [
    'CheckpointError', 'CorruptCheckpointError', 'ForeignCheckpointError', 'HostReadCounter',
    'UnsafeCheckpointError', 'check_cast_weights', 'checkpoint_problem', 'close_distributed',
    'host_values', 'load_tool_config', 'mmengine_checkpoint_globals',
    'prepare_deterministic_environment', 'read_checkpoint', 'setup_cpu_distributed'
]

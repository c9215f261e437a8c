from .checkpoint_compat import allow_mmengine_checkpoint_globals
from .distributed import close_distributed, setup_cpu_distributed
from .tool_config import load_tool_config

__all__ = [
    'allow_mmengine_checkpoint_globals', 'close_distributed', 'load_tool_config',
    'setup_cpu_distributed'
]

from .determinism import prepare_deterministic_environment
from .distributed import close_distributed, setup_cpu_distributed
from .host_values import host_values
from .tool_config import load_tool_config

__all__ = [
    'close_distributed', 'host_values', 'load_tool_config',
    'prepare_deterministic_environment', 'setup_cpu_distributed'
]

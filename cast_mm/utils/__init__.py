from .checkpoint_compat import allow_mmengine_checkpoint_globals
from .distributed import setup_cpu_distributed

__all__ = ['allow_mmengine_checkpoint_globals', 'setup_cpu_distributed']

"""cast_mm: CAST (superpixel-token ViT with graph pooling) for OpenMMLab."""
# isort: skip_file  (the registry scope must exist before the modules that register)
from . import registry  # noqa: F401  (the cast_mm scope)
from .utils import allow_mmengine_checkpoint_globals
from . import converters, datasets, models, ops  # noqa: F401,E402
from . import apis, engine, evaluation, visualization  # noqa: F401,E402
from .version import __version__

# MMEngine checkpoints (resume, load_from) hold objects torch's safe loader refuses by default.
allow_mmengine_checkpoint_globals()

__all__ = ['__version__']

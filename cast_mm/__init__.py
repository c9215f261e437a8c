"""cast_mm: CAST (superpixel-token ViT with graph pooling) for OpenMMLab."""
from . import registry  # noqa: F401  (the cast_mm scope)
from . import converters, models, ops  # noqa: F401
from .version import __version__

__all__ = ['__version__']

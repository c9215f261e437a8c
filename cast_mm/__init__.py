"""cast_mm: CAST (superpixel-token ViT with graph pooling) for OpenMMLab.

``import cast_mm`` registers cast_mm's modules and its model names (with mmpretrain's model hub,
so ``mmpretrain.get_model('cast-s_deit_in1k')`` works) and changes nothing else in the process;
:func:`setup_env` applies the compatibility measures of :mod:`cast_mm.compat` (the tools and
configs of cast_mm call it).
"""
# isort: skip_file  (the registry scope must exist before the modules that register)
from . import registry  # noqa: F401  (the cast_mm scope)
from . import checkpoints, datasets, models, ops, superpixels  # noqa: F401,E402
from . import apis, engine, evaluation, visualization  # noqa: F401,E402
from .compat import setup_env  # noqa: E402
from .version import __version__  # noqa: E402

checkpoints.register_model_index_if_mmpretrain()

__all__ = ['__version__', 'setup_env']

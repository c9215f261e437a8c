"""Make cast_mm's models known to MMPretrain's model hub by name, without importing it early.

``import cast_mm`` calls :func:`register_model_index_lazily`: when ``mmpretrain.apis`` is
already imported the index is registered at once, otherwise the first import of
``mmpretrain.apis`` (which ``get_model``, ``list_models`` and the Inferencers live in)
registers it, through a standard :mod:`importlib` meta-path finder. So mmseg-only users do not
pay for importing mmpretrain's APIs, and ``mmpretrain.get_model('cast-s_deit_in1k')`` works
after ``import cast_mm`` as for mmpretrain's own models.
"""
import importlib.abc
import os.path as osp
import sys
import threading
import warnings

#: Where ``setup.py`` exposes ``configs/`` and ``model-index.yml`` inside the package.
MIM_DIR = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), '.mim')
#: The module whose import registers the index.
HUB_MODULE = 'mmpretrain.apis'
#: A model of our index, to tell whether it is registered already.
PROBE_MODEL = 'cast-s_8xb128_in1k'


def register_model_index() -> bool:
    """Register ``model-index.yml`` with ``mmpretrain.apis.ModelHub`` now (once).

    Afterwards ``mmpretrain.apis.get_model('cast-s_deit_in1k', pretrained=True)`` and
    ``inference_model('cast-s_deit_in1k', image)`` find our configs and official weights.

    Returns:
        bool: whether the index was found (it is, for any install made by ``setup.py``).
    """
    from mmpretrain.apis import ModelHub
    index = osp.join(MIM_DIR, 'model-index.yml')
    if not osp.exists(index):
        return False
    if not ModelHub.has(PROBE_MODEL):
        ModelHub.register_model_index(index, config_prefix=MIM_DIR)
    return True


class _RegisterOnImport(importlib.abc.MetaPathFinder):
    """Finds ``mmpretrain.apis`` with the other finders and registers the index once its
    module has run."""

    def __init__(self):
        self._busy = threading.local()

    def find_spec(self, fullname, path, target=None):
        if fullname != HUB_MODULE or getattr(self._busy, 'on', False):
            return None
        self._busy.on = True
        try:
            spec = None
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, 'find_spec'):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
        finally:
            self._busy.on = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, 'exec_module'):
            return spec
        run_module = spec.loader.exec_module
        finder = self

        def exec_module(module):
            run_module(module)
            finder.remove()
            try:
                register_model_index()
            except Exception as err:  # never break the import of mmpretrain.apis itself
                warnings.warn(f'cast_mm could not register its model index with mmpretrain: '
                              f'{type(err).__name__}: {err}')

        spec.loader.exec_module = exec_module
        return spec

    def remove(self) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)


def register_model_index_lazily() -> None:
    """Register the index now if ``mmpretrain.apis`` is imported, else on its first import."""
    if HUB_MODULE in sys.modules:
        register_model_index()
        return
    if not any(isinstance(finder, _RegisterOnImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RegisterOnImport())


def _index_root() -> str:
    """The folder of ``model-index.yml``: setup.py's ``.mim`` folder or a source checkout."""
    if osp.exists(osp.join(MIM_DIR, 'model-index.yml')):
        return MIM_DIR
    return osp.dirname(osp.dirname(MIM_DIR))


def index_models() -> list:
    """Every model entry of our metafiles (``Name``, ``Config``, ``Weights``, ``Results``...),
    in metafile order, without mmpretrain."""
    import yaml
    root = _index_root()
    with open(osp.join(root, 'model-index.yml')) as f:
        index = yaml.safe_load(f)
    models = []
    for metafile in index.get('Import', []):
        with open(osp.join(root, metafile)) as f:
            models.extend(yaml.safe_load(f).get('Models', []))
    return models


def model_info(name: str) -> dict:
    """The config file and official weights of a model of our index, without mmpretrain.

    Args:
        name (str): a model name of ``configs/cast/metafile.yml`` (e.g. ``cast-s_deit_in1k``).

    Returns:
        dict: ``name``, ``config`` (absolute path) and ``weights`` (URL or None).

    Raises:
        ValueError: no model of that name; the message lists the names.
    """
    models = {entry['Name'].lower(): entry for entry in index_models()}
    entry = models.get(name.lower())
    if entry is None:
        raise ValueError(f'unknown model {name!r}; models of cast_mm: {", ".join(sorted(models))}')
    return dict(name=entry['Name'], config=osp.join(_index_root(), entry['Config']),
                weights=entry.get('Weights'))

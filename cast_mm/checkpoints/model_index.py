"""cast_mm's model index: the configs and official weights of its models, by name.

:func:`register_model_index` makes MMPretrain's model hub know the names, so that
``mmpretrain.get_model('cast-s_deit_in1k', pretrained=True)`` works as for mmpretrain's own
models. MMPretrain (1.2.0) finds no other package's index by itself; registering one adds our
names to a table of ``mmpretrain.apis`` (an addition, as registering modules is), so
``import cast_mm`` does it. :func:`model_info` reads the index without mmpretrain.
"""
import os.path as osp
from typing import Tuple

#: Where ``setup.py`` exposes ``configs/`` and ``model-index.yml`` inside the package.
MIM_DIR = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), '.mim')
#: A model of our index, to tell whether it is registered already.
PROBE_MODEL = 'cast-s_8xb128_in1k'


def index_location() -> Tuple[str, str]:
    """``(model-index.yml, the folder its paths are relative to)``: the installed ``.mim``
    copy, or the repository's own files in a source checkout without it."""
    index = osp.join(MIM_DIR, 'model-index.yml')
    if osp.exists(index):
        return index, MIM_DIR
    root = osp.dirname(osp.dirname(MIM_DIR))
    return osp.join(root, 'model-index.yml'), root


def register_model_index() -> bool:
    """Register ``model-index.yml`` with ``mmpretrain.apis.ModelHub`` now (once).

    Afterwards ``mmpretrain.apis.get_model('cast-s_deit_in1k', pretrained=True)`` and
    ``inference_model('cast-s_deit_in1k', image)`` find our configs and official weights.

    Returns:
        bool: whether the index was found (it is, for any install made by ``setup.py`` and in
        a source checkout).
    """
    from mmpretrain.apis import ModelHub
    index, root = index_location()
    if not osp.exists(index):
        return False
    if not ModelHub.has(PROBE_MODEL):
        ModelHub.register_model_index(index, config_prefix=root)
    return True


def register_model_index_if_mmpretrain() -> bool:
    """:func:`register_model_index` where mmpretrain is installed (an mmseg-only environment
    has no model hub); returns whether the names were registered."""
    try:
        import mmpretrain  # noqa: F401
    except ImportError:
        return False
    return register_model_index()


def index_models() -> list:
    """Every model entry of our metafiles (``Name``, ``Config``, ``Weights``, ``Results``...),
    in metafile order, without mmpretrain."""
    import yaml
    index_path, root = index_location()
    with open(index_path) as f:
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
    return dict(name=entry['Name'], config=osp.join(index_location()[1], entry['Config']),
                weights=entry.get('Weights'))

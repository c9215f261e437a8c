"""MMEngine checkpoint loader schemes: every place that takes a checkpoint (``init_cfg`` of type
``Pretrained``, ``load_from``, ``resume``, ``mmseg.apis.init_model``, ``mmpretrain.get_model``,
``tools/test.py``) reads safely and accepts official files, by URL (registered by ``import
cast_mm``) or by path (a measure of :func:`cast_mm.setup_env`: it replaces MMEngine's loader of
every local file)."""
import os
import os.path as osp
import re
from typing import Any, Mapping

from mmengine.runner import CheckpointLoader

from .download import WEIGHTS_BASE_ENV, load_official_weights, weights_base
from .foreign import remember_source
from .official import DEFAULT_WEIGHTS_BASE, to_mmengine_checkpoint
from .reading import read_checkpoint


def load_from_official_url(filename: str, map_location: Any = None) -> Any:
    """MMEngine checkpoint loader for URLs under the official (or configured) base."""
    return load_official_weights(filename, map_location=map_location or 'cpu')


def load_from_local(filename: str, map_location: Any = None) -> Any:
    """MMEngine's local-file loader, reading safely and converting official layouts."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    checkpoint = to_mmengine_checkpoint(read_checkpoint(filename, map_location=map_location),
                                        filename)
    state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, Mapping) else None
    if isinstance(state, Mapping):
        remember_source(filename, state)
    return checkpoint


def register_official_url_loader() -> None:
    """Load URLs under the official base with :func:`load_from_official_url` (idempotent).

    The scheme covers the default base and, when set, ``$CAST_MM_WEIGHTS_BASE`` (read now; URLs
    under the default base follow the variable at load time). No other URL is concerned.
    """
    bases = [DEFAULT_WEIGHTS_BASE] + ([weights_base()] if os.environ.get(WEIGHTS_BASE_ENV) else [])
    CheckpointLoader.register_scheme(prefixes=[re.escape(base.rstrip('/') + '/') for base in bases],
                                     loader=load_from_official_url, force=True)


def register_local_file_loader() -> None:
    """Load every local file with :func:`load_from_local` instead of MMEngine's own loader,
    which reads them with torch's default unpickler and converts nothing (idempotent)."""
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)

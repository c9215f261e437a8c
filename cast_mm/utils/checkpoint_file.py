"""Read checkpoint files safely, and say clearly what is wrong with the ones that cannot be read.

Every file goes through torch's ``weights_only`` unpickler. Besides tensors and plain containers
it accepts, for the duration of one call (nothing is allow-listed process-wide), MMEngine's
checkpoint objects (:mod:`cast_mm.utils.checkpoint_compat`) and the few classes the official
CAST checkpoints pickle (:data:`OFFICIAL_SAFE_GLOBALS`). Anything else (a file that would call a
function while it is unpickled) is refused before any of it runs.
"""
import argparse
import os
import os.path as osp
import pathlib
import pickle
import re
import zipfile
from collections import OrderedDict
from typing import Any, Mapping, Optional

import torch

from .checkpoint_compat import mmengine_checkpoint_globals

#: Classes the official CAST checkpoints pickle besides tensors and containers: the DeiT
#: training script stores its ``argparse.Namespace`` under ``'args'`` (whose values may be paths).
OFFICIAL_SAFE_GLOBALS = (argparse.Namespace, pathlib.PosixPath, pathlib.PurePosixPath)

_TRUE = ('1', 'y', 'yes', 'true', 'on')


class CheckpointError(ValueError):
    """A checkpoint file cannot be used; the message names the file and the problem."""


class CorruptCheckpointError(CheckpointError):
    """The file is truncated, corrupt, or not a checkpoint at all."""


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """Unpickling the file would run code (call a function or build an unknown class)."""


class ForeignCheckpointError(CheckpointError):
    """The file holds the weights of another model (or another CAST family) than the one
    being loaded."""


def _refused_global(message: str) -> Optional[str]:
    """The global a weights-only load refused, as torch's message names it."""
    match = re.search(r'(?:unsupported|Unsupported) GLOBAL:? ([\w.]+)', message)
    return match.group(1) if match else None


def trust_pickle_from_env() -> bool:
    """Whether the user asked torch for full unpickling (``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``)."""
    return os.environ.get('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '').lower() in _TRUE


def read_checkpoint(path: str, map_location: Any = 'cpu', trust_pickle: bool = False,
                    source: Optional[str] = None) -> Any:
    """Load a checkpoint file with torch's safe unpickler, or raise a :class:`CheckpointError`.

    Args:
        path (str): the file.
        map_location: as in ``torch.load``. Defaults to ``'cpu'``.
        trust_pickle (bool): unpickle fully, which runs whatever code the file names; only
            for files you trust. Defaults to False.
        source (str, optional): how to name the file in errors (e.g. the URL it came from).
            Defaults to ``path``.

    Returns:
        The unpickled object (usually a dict).

    Raises:
        FileNotFoundError: there is no such file.
        CorruptCheckpointError: the file is truncated, corrupt or not a checkpoint.
        UnsafeCheckpointError: the file asks the unpickler to run code (nothing of it ran).
    """
    name = source or path
    if not osp.exists(path):
        raise FileNotFoundError(f'checkpoint {name} does not exist')
    if not osp.isfile(path):
        raise CorruptCheckpointError(f'checkpoint {name} is not a file')
    size = osp.getsize(path)
    if size == 0:
        raise CorruptCheckpointError(f'checkpoint {name} is truncated or corrupt: it is empty')
    if zipfile.is_zipfile(path) is False:
        with open(path, 'rb') as f:
            head = f.read(512)
        if head.startswith(b'PK'):  # a zip (torch.save's format) without its central directory
            raise CorruptCheckpointError(
                f'checkpoint {name} is truncated or corrupt ({size} bytes): a torch.save zip '
                'archive without its end (an interrupted download or save?)')
        if head.lstrip().lower().startswith((b'<!doctype html', b'<html')):
            raise CorruptCheckpointError(
                f'checkpoint {name} is an HTML page, not a checkpoint (an error or login page, '
                "or a web page link such as Hugging Face's /blob/ instead of /resolve/)")
    if trust_pickle or trust_pickle_from_env():
        try:
            return torch.load(path, map_location=map_location, weights_only=False)
        except (EOFError, RuntimeError, pickle.UnpicklingError) as err:
            raise CorruptCheckpointError(
                f'checkpoint {name} is truncated or corrupt: {_first_line(err)}') from err
    try:
        with torch.serialization.safe_globals(list(OFFICIAL_SAFE_GLOBALS)
                                              + mmengine_checkpoint_globals()):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        message = str(err)
        refused = _refused_global(message)
        if refused is not None or 'Weights only load failed' in message:
            what = f'calls or builds {refused}' if refused else 'holds objects'
            raise UnsafeCheckpointError(
                f'checkpoint {name} was not loaded: unpickling it {what}, which the safe '
                'loader refuses because a pickle can run arbitrary code that way (nothing of it '
                'ran). Tensors, plain containers, MMEngine checkpoint objects and the official '
                'CAST files load safely. Only if you trust this file: pass --trust-pickle to '
                'tools/model_converters/cast_official_to_mm.py (trust_pickle=True from Python) '
                'or set TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1') from err
        raise CorruptCheckpointError(
            f'checkpoint {name} is truncated or corrupt: {_first_line(err)}') from err
    except (EOFError, RuntimeError, OSError, ValueError, TypeError, AttributeError,
            KeyError) as err:
        raise CorruptCheckpointError(
            f'checkpoint {name} is truncated or corrupt ({size} bytes): torch.load failed '
            f'with {type(err).__name__}: {_first_line(err)}') from err


def checkpoint_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot be loaded as a checkpoint, or None when it can.

    Reads the file as :func:`read_checkpoint` does (memory-mapped when possible, so a large
    readable file costs little), for callers that pick among several checkpoints.
    """
    try:
        read_checkpoint(path, map_location='cpu')
    except (FileNotFoundError, CheckpointError) as err:
        return str(err)
    return None


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


_SOURCES: 'OrderedDict[str, frozenset]' = OrderedDict()
_MAX_SOURCES = 4


def remember_source(source: str, state: Mapping[str, Any]) -> None:
    """Note that the tensors of ``state`` came from ``source`` (for error messages)."""
    _SOURCES.pop(source, None)
    _SOURCES[source] = frozenset(id(v) for v in state.values() if isinstance(v, torch.Tensor))
    while len(_SOURCES) > _MAX_SOURCES:
        _SOURCES.popitem(last=False)


def source_of(state: Mapping[str, Any]) -> Optional[str]:
    """The file a state dict was recently read from (see :func:`remember_source`), if known."""
    ids = {id(v) for v in state.values() if isinstance(v, torch.Tensor)}
    found = [source for source, known in _SOURCES.items() if ids and ids <= known]
    return found[-1] if found else None


def describe_state_dict(state: Mapping[str, Any]) -> str:
    """A short description of which model a state dict belongs to (for error messages)."""
    keys = [k for k in state if isinstance(k, str)]

    def has(*patterns):
        return any(re.search(p, k) for p in patterns for k in keys)

    if has(r'(^|\.)pools\.\d+\.', r'(^|\.)stem\.proj\.'):
        return 'a cast_mm CAST checkpoint'
    if has(r'(^|\.)pool[1-4]\.pool_block\.'):
        return 'an official CAST checkpoint'
    if has(r'patch_embed\.projection\.', r'(^|\.)layers\.\d+\.attn\.'):
        if has(r'^decode_head\.'):
            return ('an MMSegmentation VisionTransformer (Segmenter / UperNet ViT) checkpoint, '
                    'not CAST')
        return 'an OpenMMLab VisionTransformer checkpoint, not CAST'
    if has(r'(^|\.)patch_embed\.proj\.weight$') and has(r'(^|\.)blocks\.\d+\.attn\.'):
        if has(r'(^|\.)encoder\.') and has(r'(^|\.)decoder\.'):
            return 'an official Segmenter ViT checkpoint, not CAST'
        return 'a timm / DeiT ViT checkpoint, not CAST'
    if has(r'(^|\.)layer[1-4]\.\d+\.conv\d\.'):
        return 'a ResNet checkpoint, not CAST'
    return 'not a CAST checkpoint'


#: Weights a CAST checkpoint may lack for a model that trains them from scratch: the level
#: fusion of segmentation mode (absent in classification checkpoints, the official ADE20K and
#: Pascal Context start) and the final norm of classification mode (unused in segmentation).
_OPTIONAL_CAST_KEYS = (re.compile(r'^fusion\.'), re.compile(r'^norm\.'))


def check_cast_weights(module: torch.nn.Module, state_dict: Mapping[str, Any],
                       prefix: str = '', *args, strict: bool = True) -> None:
    """Refuse weights that are not CAST weights of ``module``'s kind, naming the file.

    :class:`cast_mm.models.CAST` runs it on every ``load_state_dict`` (also as a part of a
    larger model). Checkpoints with no keys under ``prefix`` pass (a checkpoint of another part
    of the model); otherwise the keys under ``prefix`` must hold CAST weights, with the shapes
    of ``module``, and, when ``strict``, every weight except the ones a CAST checkpoint may
    lack (level fusion, final norm) and no deeper blocks. With ``strict=False`` missing and
    extra weights pass, as torch and MMEngine let them; weights of another shape and files
    without a single CAST weight are still refused. (Usable as a ``load_state_dict`` pre-hook,
    whose positional arguments it takes; torch tells hooks nothing of the caller's
    ``strict``, so a hook checks strictly.)

    Raises:
        ForeignCheckpointError: another model's weights, or CAST weights of another size,
            depth (when ``strict``), position embedding or mode.
    """
    own = OrderedDict((k[len(prefix):], v) for k, v in state_dict.items()
                      if isinstance(k, str) and k.startswith(prefix))
    if not own and prefix:
        return
    source = source_of(own) or source_of(state_dict)
    name = f'checkpoint {source}' if source else 'the checkpoint being loaded'
    expected = module.state_dict()
    matching = [k for k in own if k in expected]
    # cls_token, pos_embed and norm.* are common to every ViT: only CAST's own weights count.
    if not [k for k in matching if not re.match(r'^(cls_token|pos_embed|norm\.)', k)]:
        where = f" under '{prefix}'" if prefix else ''
        raise ForeignCheckpointError(
            f'{name} is {describe_state_dict(state_dict)}: none of its {len(own)} tensors{where} '
            f'is a CAST weight (e.g. {sorted(own)[:3]}; CAST has cls_token, stem.proj.*, '
            'blocks.*, pools.*). Use a CAST checkpoint, or an official one (converted when '
            'loaded)')
    problems = []
    for key in matching:
        value, mine = own[key], expected[key]
        if isinstance(value, torch.Tensor) and value.shape != mine.shape:
            problems.append(f'{key} has shape {tuple(value.shape)} in the file, '
                            f'{tuple(mine.shape)} in the model')
    missing = [k for k in expected if k not in own
               and not any(p.match(k) for p in _OPTIONAL_CAST_KEYS)] if strict else []
    extra_blocks = sorted({int(m.group(1)) for k in own
                           for m in [re.match(r'^blocks\.(\d+)\.', k)]
                           if m and k not in expected}) if strict else []
    if missing:
        problems.append(f'{len(missing)} model weights are not in the file (e.g. '
                        f'{", ".join(missing[:3])})')
    if extra_blocks:
        problems.append(f'the file has blocks {extra_blocks[0]}..{extra_blocks[-1]} that the '
                        'model does not (a deeper CAST)')
    if problems:
        hints = []
        if any(k.startswith('pos_embed ') for k in problems):
            hints.append('a different position embedding (learned DeiT vs fixed sin-cos MoCo-v3) '
                         'or training size')
        if any(k.startswith(('cls_token ', 'stem.')) for k in problems):
            hints.append('a different width (CAST-S vs CAST-B)')
        hint = f' ({"; ".join(hints)})' if hints else ''
        raise ForeignCheckpointError(
            f'{name} holds CAST weights of another kind than this model{hint}: '
            + '; '.join(problems[:4]) + ('; ...' if len(problems) > 4 else ''))

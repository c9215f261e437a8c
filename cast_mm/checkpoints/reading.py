"""Read checkpoint files safely, and say clearly what is wrong with the ones that cannot be read.

Every file goes through torch's ``weights_only`` unpickler, which accepts tensors, plain
containers and, for the duration of one call (nothing is allow-listed process-wide),
:data:`ALLOWED_GLOBALS`. Anything else (a file that would call a function while it is
unpickled) is refused before any of it runs.
"""
import argparse
import os
import os.path as osp
import pathlib
import pickle
import re
import zipfile
from typing import Any, Optional

import numpy as np
import torch
from mmengine.config import ConfigDict
from mmengine.logging import HistoryBuffer

try:  # numpy >= 2
    from numpy._core import multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray

#: Classes a checkpoint may pickle besides tensors and containers: MMEngine's checkpoint objects
#: with the numpy classes and reconstructors of pickled arrays and scalars, and what the official
#: DeiT training script stores under ``'args'`` (an ``argparse.Namespace``, whose values may be
#: paths).
ALLOWED_GLOBALS = [
    HistoryBuffer, ConfigDict, np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar,
    np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
    np.float16, np.float32, np.float64, argparse.Namespace, pathlib.PosixPath,
    pathlib.PurePosixPath
] + [getattr(np.dtypes, name) for name in dir(getattr(np, 'dtypes', ()))  # numpy >= 1.25
     if name.endswith('DType')]

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


def checkpoint_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot be read as a checkpoint, or None when it can.

    Runs no unpickling and builds no tensor: it reads the zip directory of torch's file format,
    checks every record against its checksum and lists the classes and functions the pickle
    names, refusing those :func:`read_checkpoint` refuses. A file in torch's legacy format
    (torch < 1.6) is checked only when it is read.
    """
    try:
        _check_file(path, path, scan_pickle=not _trusted())
    except (FileNotFoundError, CheckpointError) as err:
        return str(err)
    return None


def read_checkpoint(path: str, map_location: Any = 'cpu', trust_pickle: bool = False,
                    source: Optional[str] = None) -> Any:
    """Load a checkpoint file with torch's safe unpickler, or raise a :class:`CheckpointError`.

    Args:
        path (str): the file.
        map_location: as in ``torch.load``. Defaults to ``'cpu'``.
        trust_pickle (bool): unpickle fully, which runs whatever code the file names; only
            for files you trust. Also set by ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``.
            Defaults to False.
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
    trusted = _trusted(trust_pickle)
    _check_file(path, name, scan_pickle=not trusted)
    try:
        if trusted:
            return torch.load(path, map_location=map_location, weights_only=False)
        with torch.serialization.safe_globals(ALLOWED_GLOBALS):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:  # a legacy-format file the scan could not see into
        message = str(err)
        refused = re.search(r'[Uu]nsupported GLOBAL:? ([\w.]+)', message)
        if not trusted and (refused or 'Weights only load failed' in message):
            raise _unsafe(name, refused.group(1) if refused else None) from err
        raise CorruptCheckpointError(
            f'checkpoint {name} is truncated or corrupt: {_first_line(err)}') from err
    except (EOFError, RuntimeError, OSError, ValueError, TypeError, AttributeError,
            KeyError) as err:
        raise CorruptCheckpointError(
            f'checkpoint {name} is truncated or corrupt ({osp.getsize(path)} bytes): '
            f'torch.load failed with {type(err).__name__}: {_first_line(err)}') from err


def _trusted(trust_pickle: bool = False) -> bool:
    """Full unpickling: asked for by the caller or torch's ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``."""
    return trust_pickle or os.environ.get('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '').lower() in _TRUE


def _check_file(path: str, name: str, scan_pickle: bool) -> None:
    """Raise the error :func:`checkpoint_problem` describes (``name`` names the file)."""
    if not osp.exists(path):
        raise FileNotFoundError(f'checkpoint {name} is missing: the file does not exist')
    if not osp.isfile(path):
        raise CorruptCheckpointError(f'checkpoint {name} is not a file')
    size = osp.getsize(path)
    corrupt = f'checkpoint {name} is truncated or corrupt ({size} bytes)'
    if size == 0:
        raise CorruptCheckpointError(f'{corrupt}: it is empty')
    with open(path, 'rb') as f:
        head = f.read(512)
    if head.lstrip().lower().startswith((b'<!doctype html', b'<html')):
        raise CorruptCheckpointError(
            f'checkpoint {name} is an HTML page, not a checkpoint (an error or login page, '
            "or a web page link such as Hugging Face's /blob/ instead of /resolve/)")
    if head.startswith(b'\x80'):  # a pickle: torch's legacy format, checked when it is read
        return
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
            records = archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        what = ('a torch.save zip archive without its end (an interrupted download or save?)'
                if head.startswith(b'PK') else f'not a torch.save file ({err})')
        raise CorruptCheckpointError(f'{corrupt}: {what}') from err
    if broken is not None:
        raise CorruptCheckpointError(f'{corrupt}: record {broken} fails its checksum')
    if not any(record.endswith('data.pkl') for record in records):
        raise CorruptCheckpointError(f'{corrupt}: a zip archive without a data.pkl record, '
                                     'not a torch.save file')
    if not scan_pickle:
        return
    try:
        with torch.serialization.safe_globals(ALLOWED_GLOBALS):
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except pickle.UnpicklingError as err:  # an opcode the weights-only unpickler does not take
        raise _unsafe(name, None) from err
    except (ValueError, RuntimeError, EOFError) as err:
        raise CorruptCheckpointError(f'{corrupt}: {_first_line(err)}') from err
    if unsafe:
        raise _unsafe(name, ', '.join(sorted(unsafe)))


def _unsafe(name: str, refused: Optional[str]) -> UnsafeCheckpointError:
    what = f'calls or builds {refused}' if refused else 'holds objects'
    return UnsafeCheckpointError(
        f'checkpoint {name} was not loaded: unpickling it {what}, which the safe loader '
        'refuses because a pickle can run arbitrary code that way (nothing of it ran). Tensors, '
        'plain containers, MMEngine checkpoint objects and the official CAST files load safely. '
        'Only if you trust this file: pass --trust-pickle to '
        'tools/model_converters/cast_official_to_mm.py (trust_pickle=True from Python) or set '
        'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1')


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _history_buffer_state(buffer) -> dict:
    """Pickled state of a ``HistoryBuffer``: its data, not the class's function registry."""
    return dict(buffer.__dict__)


#: MMEngine's own ``HistoryBuffer.__getstate__`` (kept so a test can check that the workaround
#: below is still needed).
UPSTREAM_HISTORY_BUFFER_GETSTATE = None


def pickle_history_buffers_without_functions() -> None:
    """Make ``HistoryBuffer`` pickle without function references (safe-loadable).

    Workaround for mmengine 0.10.7, whose ``HistoryBuffer.__getstate__`` adds the class's
    ``_statistics_methods`` (functions, which the safe loader could only read by allowing
    ``getattr``) to every pickled buffer; they live on the class and are registered again when
    their code is imported. It changes an MMEngine class, so :func:`cast_mm.setup_env` applies
    it, not ``import cast_mm``. Delete it once ``tests/test_compat.py`` reports the upstream
    state loads safely.
    """
    global UPSTREAM_HISTORY_BUFFER_GETSTATE
    if HistoryBuffer.__getstate__ is not _history_buffer_state:
        UPSTREAM_HISTORY_BUFFER_GETSTATE = HistoryBuffer.__getstate__
        HistoryBuffer.__getstate__ = _history_buffer_state

"""Let torch's safe checkpoint loader read MMEngine checkpoints.

MMEngine checkpoints hold objects besides tensors (``HistoryBuffer`` in the message hub,
``ConfigDict``, numpy arrays and scalars in logs and metadata), which torch's ``weights_only``
unpickler (torch's default since 2.6) refuses. :func:`mmengine_checkpoint_globals` lists
exactly those classes; :func:`~cast_mm.utils.checkpoint_file.read_checkpoint` allows them for
the duration of its own calls, and keeps refusing anything else.

``HistoryBuffer`` also pickles its class-level registry of statistics functions, which the
safe loader can only read by allow-listing ``getattr`` (that would let a file call anything).
:func:`pickle_history_buffers_without_functions` stops writing those functions: they live on the
class and are registered again by whatever code defines them when it is imported. It changes
an MMEngine class, so it is one of the measures :func:`cast_mm.setup_env` applies (see
:mod:`cast_mm.compat`), not something ``import cast_mm`` does.
"""
from typing import List

import numpy as np


def _numpy_globals() -> List:
    """numpy classes and reconstructors that pickled arrays and scalars refer to."""
    try:  # numpy >= 2
        from numpy._core import multiarray
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray
    found = [np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar]
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        found += [getattr(dtypes, name) for name in dir(dtypes) if name.endswith('DType')]
    found += [np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
              np.uint64, np.float16, np.float32, np.float64]
    return found


def _history_buffer_state(buffer) -> dict:
    """Pickled state of a ``HistoryBuffer``: its data, not the class's function registry."""
    return dict(buffer.__dict__)


#: MMEngine's own ``HistoryBuffer.__getstate__`` (kept so a test can check that the workaround
#: below is still needed).
UPSTREAM_HISTORY_BUFFER_GETSTATE = None


def pickle_history_buffers_without_functions() -> None:
    """Make ``HistoryBuffer`` pickle without function references (safe-loadable).

    Workaround for mmengine 0.10.7, whose ``HistoryBuffer.__getstate__`` adds the class's
    ``_statistics_methods`` (functions) to every pickled buffer; delete it once
    ``tests/test_utils/test_checkpoint_compat.py`` reports the upstream state loads safely.
    """
    global UPSTREAM_HISTORY_BUFFER_GETSTATE
    from mmengine.logging import HistoryBuffer
    if HistoryBuffer.__getstate__ is not _history_buffer_state:
        UPSTREAM_HISTORY_BUFFER_GETSTATE = HistoryBuffer.__getstate__
        HistoryBuffer.__getstate__ = _history_buffer_state


def mmengine_checkpoint_globals() -> List:
    """The classes of MMEngine's checkpoint objects, for ``torch.load(weights_only=True)``."""
    from mmengine.config import ConfigDict
    from mmengine.logging import HistoryBuffer
    return [HistoryBuffer, ConfigDict] + _numpy_globals()

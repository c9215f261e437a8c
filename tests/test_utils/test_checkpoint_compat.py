"""MMEngine checkpoints load with torch's safe unpickler; the one MMEngine workaround is needed."""
import io
import pickle

import pytest
import torch
from mmengine.logging import HistoryBuffer

import cast_mm  # noqa: F401  (allow-lists MMEngine's checkpoint objects, patches HistoryBuffer)
from cast_mm.utils import checkpoint_compat


def _safe_round_trip(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_history_buffers_load_safely_with_their_data():
    history = HistoryBuffer([1.0, 2.0, 4.0], [1, 1, 2])
    loaded = _safe_round_trip({'message_hub': {'loss': history}})['message_hub']['loss']
    assert loaded.data[0].tolist() == [1.0, 2.0, 4.0] and loaded.mean() == history.mean()
    assert loaded.current() == 4.0  # statistics methods still there (they live on the class)


def test_the_history_buffer_pickling_workaround_is_still_needed(monkeypatch):
    """mmengine 0.10.7: ``HistoryBuffer.__getstate__`` pickles the class's registry of statistics
    functions, which the safe unpickler refuses. This fails once MMEngine pickles data only;
    then delete ``pickle_history_buffers_without_functions``."""
    monkeypatch.setattr(HistoryBuffer, '__getstate__',
                        checkpoint_compat.UPSTREAM_HISTORY_BUFFER_GETSTATE)
    with pytest.raises(pickle.UnpicklingError):
        _safe_round_trip(HistoryBuffer([1.0], [1]))

"""Marking reads of values that live on the host (not a GPU stall).

A step's reads of tensor values stall a GPU; the benchmark and the tests count them
(``tools/analysis/cast_analysis/host_reads.py``). Values that are on the host whatever the
model's device (draws from a host random generator, maps and sizes the data loader produced)
are read inside :func:`host_values`, which that count leaves out.
"""
import contextlib
import threading
from typing import Iterator

_state = threading.local()


@contextlib.contextmanager
def host_values() -> Iterator[None]:
    """Declare that reads inside the block are of host values. Not for model tensors."""
    _state.depth = getattr(_state, 'depth', 0) + 1
    try:
        yield
    finally:
        _state.depth -= 1


def reading_host_values() -> bool:
    """Whether this thread is inside :func:`host_values`."""
    return getattr(_state, 'depth', 0) > 0

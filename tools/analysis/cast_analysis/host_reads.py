"""Counting the reads of tensor values by the host (what stalls a GPU step).

On a GPU, an op whose result size or a Python value depends on tensor values makes the host
wait for the device: ``.item()`` / ``int()`` / ``float()`` / ``bool()`` of a tensor
(``aten._local_scalar_dense``), ``nonzero`` (boolean indexing, ``masked_select``),
``unique``, ``bincount`` (reads the id range), ``repeat_interleave`` without
``output_size``, copies to the host (``.cpu()``, ``.numpy()``), and ``.tolist()``. On CPU
these ops do not stall, but they are the same ops, so :class:`HostReadCounter` counts them on
any device, which lets a CPU test pin how often a GPU step would stall::

    with HostReadCounter() as reads:
        loss = model(**data, mode='loss')
    print(reads.count, reads.summary())

Reads of values that live on the host by construction (draws from a host generator, data the
data loader produced) are declared with :func:`cast_mm.utils.host_values` and not counted.
"""
import dataclasses
import os.path as osp
import threading
import traceback
from collections import Counter
from typing import List

import torch
from torch.utils._python_dispatch import TorchDispatchMode

import cast_mm
from cast_mm.utils.host_values import host_values, reading_host_values

_aten = torch.ops.aten

#: Ops whose result (or result size) depends on the values of their input.
VALUE_DEPENDENT_OPS = frozenset([
    _aten._local_scalar_dense.default,
    _aten.nonzero.default,
    _aten.nonzero_static.default,
    _aten.masked_select.default,
    _aten.bincount.default,
    _aten._unique.default,
    _aten._unique2.default,
    _aten.unique_dim.default,
    _aten.unique_consecutive.default,
    _aten.repeat_interleave.Tensor,  # unless given its output_size
])

_state = threading.local()
_PACKAGE_ROOT = osp.dirname(osp.abspath(cast_mm.__file__))


@dataclasses.dataclass(frozen=True)
class HostRead:
    """One read: the op (``'tolist'`` and ``'copy to host'`` for those) and where it was made
    (``file:line`` of the innermost cast_mm frame, else of the innermost caller, then
    ``> file:line`` of the library code that made it where cast_mm did not)."""
    op: str
    where: str


_TORCH_ROOT = osp.dirname(osp.abspath(torch.__file__))
_THIS_FILE = osp.abspath(__file__)


def _where() -> str:
    frames = [f for f in traceback.extract_stack()
              if not osp.abspath(f.filename).startswith(_TORCH_ROOT + osp.sep)
              and osp.abspath(f.filename) != _THIS_FILE]
    ours = [f for f in frames if osp.abspath(f.filename).startswith(_PACKAGE_ROOT + osp.sep)]
    frame = (ours or frames)[-1]
    where = f'{osp.relpath(frame.filename, osp.dirname(_PACKAGE_ROOT))}:{frame.lineno}'
    if frames[-1] is not frame:  # made in a library cast_mm called
        inner = frames[-1]
        parts = osp.abspath(inner.filename).split(osp.sep)
        short = osp.join(*parts[-3:]) if len(parts) > 3 else inner.filename
        where += f' > {short}:{inner.lineno}'
    return where


def _is_mask_indexing(func, args) -> bool:
    """Indexing with a boolean mask (``x[mask]``, ``x[mask] = y``): a ``nonzero`` inside."""
    if func not in (_aten.index.Tensor, _aten.index_put.default, _aten.index_put_.default,
                    _aten._index_put_impl_.default):
        return False
    return any(index is not None and index.dtype in (torch.bool, torch.uint8)
               for index in args[1])


def _is_host_copy(func, args, kwargs) -> bool:
    """A copy that brings a non-CPU tensor to the host."""
    if func is _aten._to_copy.default:
        device = kwargs.get('device')
        return (device is not None and torch.device(device).type == 'cpu'
                and args[0].device.type != 'cpu')
    if func is _aten.copy_.default:
        return args[0].device.type == 'cpu' and args[1].device.type != 'cpu'
    return False


def _active() -> List['HostReadCounter']:
    if not hasattr(_state, 'counters'):
        _state.counters = []
    return _state.counters


_ORIGINALS = {name: getattr(torch.Tensor, name) for name in ('tolist', 'numpy', 'cpu')}


def _reads_values(name: str, host_only: bool):
    """``Tensor.<name>`` that reports itself to the active counters."""
    original = _ORIGINALS[name]

    def method(tensor, *args, **kwargs):
        if not host_only or tensor.device.type != 'cpu':
            for counter in _active():
                counter._record(name if not host_only else f'{name} (copy to host)')
        with host_values():  # the copy op it makes is this same read
            return original(tensor, *args, **kwargs)

    method.__doc__ = original.__doc__
    return method


class HostReadCounter(TorchDispatchMode):
    """Context manager recording every host read of tensor values made inside it.

    Counts the ops of :data:`VALUE_DEPENDENT_OPS`, indexing with boolean masks, copies of
    non-CPU tensors to the host, ``Tensor.tolist`` (any device: it reads values) and
    ``Tensor.numpy`` / ``Tensor.cpu`` of non-CPU tensors. The last three are not dispatched as
    ops, so they are wrapped while a counter is active. Reads inside :func:`host_values` are
    not counted. Counters nest: each sees the reads of its block.

    Attributes:
        reads (list[HostRead]): every read, in order.
    """

    def __init__(self) -> None:
        super().__init__()
        self.reads: List[HostRead] = []

    @property
    def count(self) -> int:
        """Number of reads recorded."""
        return len(self.reads)

    def summary(self) -> str:
        """One line per distinct ``(op, where)`` with how often it was read."""
        counts = Counter(self.reads)
        return '\n'.join(f'{n:4d} x {read.op} at {read.where}' for read, n in counts.items())

    def _record(self, op: str) -> None:
        if not reading_host_values():
            self.reads.append(HostRead(op, _where()))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in VALUE_DEPENDENT_OPS:
            if not (func is _aten.repeat_interleave.Tensor
                    and kwargs.get('output_size') is not None):
                self._record(func.overloadpacket.__name__)
        elif _is_mask_indexing(func, args):
            self._record('nonzero (boolean mask indexing)')
        elif _is_host_copy(func, args, kwargs):
            self._record('copy to host')
        return func(*args, **kwargs)

    def __enter__(self) -> 'HostReadCounter':
        counters = _active()
        if not counters:
            torch.Tensor.tolist = _reads_values('tolist', host_only=False)
            torch.Tensor.numpy = _reads_values('numpy', host_only=True)
            torch.Tensor.cpu = _reads_values('cpu', host_only=True)
        counters.append(self)
        return super().__enter__()

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        counters = _active()
        counters.remove(self)
        if not counters:
            for name, method in _ORIGINALS.items():
                setattr(torch.Tensor, name, method)


__all__ = ['HostRead', 'HostReadCounter', 'VALUE_DEPENDENT_OPS']

"""HostReadCounter: every kind of read a GPU step would stall on is counted, and only those."""
import torch

from cast_analysis.host_reads import HostReadCounter
from cast_mm.utils import host_values


def test_each_kind_of_read_is_counted_with_where_it_was_made():
    x = torch.arange(10)
    with HostReadCounter() as reads:
        int(x.max())
        x[x > 3]
        torch.bincount(x)
        torch.unique(x)
        torch.nonzero(x)
        x.tolist()
        torch.repeat_interleave(x, x)
    assert [r.op for r in reads.reads] == [
        '_local_scalar_dense', 'nonzero (boolean mask indexing)', 'bincount', '_unique2',
        'nonzero', 'tolist', 'repeat_interleave']
    assert all('test_host_reads.py:' in r.where for r in reads.reads), reads.summary()
    assert 'tolist at' in reads.summary()


def test_device_side_ops_and_declared_host_values_are_not_counted():
    x = torch.randn(4, 5)
    with HostReadCounter() as reads:
        y = (x * 2).sum(0).softmax(0)
        x.masked_fill(x > 0, 0.)
        torch.repeat_interleave(torch.arange(3), torch.tensor([1, 2, 3]), output_size=6)
        counts = torch.zeros(6, dtype=torch.long)
        counts.index_add_(0, torch.tensor([1, 1]), torch.ones(2, dtype=torch.long))
        x.cpu()  # already on the host: no copy
        with host_values():
            float(y[0])
    assert reads.count == 0, reads.summary()


def test_counters_nest_and_restore_the_tensor_methods():
    tolist = torch.Tensor.tolist
    x = torch.arange(3)
    with HostReadCounter() as outer:
        x.tolist()
        with HostReadCounter() as inner:
            x.tolist()
            int(x[0])
    assert (outer.count, inner.count) == (3, 2)
    assert torch.Tensor.tolist is tolist
    with HostReadCounter() as after:
        pass
    x.tolist()
    assert after.count == 0

"""The farthest point sampling custom op: DGL semantics, backends, tracing."""
import pytest
import torch

from cast_mm.ops import farthest_point_sampling


def reference_fps(points: torch.Tensor, k: int, start: int = 0) -> torch.Tensor:
    """Direct transcription of DGL's CPU loop (strict '>' scan, float64)."""
    out = []
    for item in points.double():
        dist = torch.full((item.shape[0], ), float('inf'), dtype=torch.float64)
        current, chosen = start, []
        for _ in range(k):
            chosen.append(current)
            best, best_idx = 0., 0
            for j in range(item.shape[0]):
                d = float(((item[j] - item[current])**2).sum())
                if d < dist[j]:
                    dist[j] = d
                if dist[j] > best:
                    best, best_idx = float(dist[j]), j
            current = best_idx
        out.append(chosen)
    return torch.tensor(out)


@pytest.mark.parametrize('shape,k', [((3, 40, 5), 9), ((2, 17, 3), 17), ((1, 65, 32), 33)])
def test_native_matches_dgl_and_reference(shape, k):
    torch.manual_seed(0)
    points = torch.randn(*shape)
    native = farthest_point_sampling(points, k)
    dgl = farthest_point_sampling(points, k, backend='dgl')
    assert native.dtype == torch.long and native.shape == (shape[0], k)
    assert torch.equal(native, dgl)
    assert torch.equal(native, reference_fps(points, k))


def test_ties_and_duplicates_pick_lowest_index():
    # Integer lattice points: many exact distance ties; duplicates exhaust distinct points.
    torch.manual_seed(1)
    points = torch.randint(0, 3, (4, 30, 2)).float()
    native = farthest_point_sampling(points, 12, start_idx=3)
    assert torch.equal(native, farthest_point_sampling(points, 12, start_idx=3, backend='dgl'))
    assert torch.equal(native, reference_fps(points, 12, start=3))


def test_exhausted_points_return_index_zero_like_dgl():
    points = torch.zeros(1, 5, 3)
    points[0, 1] = 1.
    out = farthest_point_sampling(points, 4)
    assert out.tolist() == [[0, 1, 0, 0]]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r'\(B, N, C\)'):
        farthest_point_sampling(torch.zeros(4, 3), 2)
    with pytest.raises(ValueError, match='start_idx'):
        farthest_point_sampling(torch.zeros(1, 4, 3), 2, start_idx=9)
    with pytest.raises(ValueError, match='unknown FPS backend'):
        farthest_point_sampling(torch.zeros(1, 4, 3), 2, backend='cuda-magic')


def test_registered_as_torch_custom_op_with_fake_kernel():
    op = torch.ops.cast_mm.farthest_point_sampling
    points = torch.randn(2, 10, 4)
    assert torch.equal(op(points, 3, 0, 'native'), farthest_point_sampling(points, 3))
    from torch._subclasses.fake_tensor import FakeTensorMode
    with FakeTensorMode():
        fake = op(torch.empty(2, 10, 4), 3, 0, 'native')
    assert fake.shape == (2, 3) and fake.dtype == torch.long


def test_compiles_without_graph_break():
    points = torch.randn(2, 20, 8)

    def pick(p):
        return farthest_point_sampling(p * 2, 5)

    compiled = torch.compile(pick, fullgraph=True, backend='eager')
    assert torch.equal(compiled(points), pick(points))

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


def cast_like_points(batch, num_tokens, channels, num_padded, seed=0):
    """[mean token, tokens] with the last ``num_padded`` tokens replaced by the mean (padding)."""
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randn(batch, num_tokens, channels, generator=gen)
    mean = tokens[:, :num_tokens - num_padded].mean(dim=1, keepdim=True)
    tokens[:, num_tokens - num_padded:] = mean
    return torch.cat([mean, tokens], dim=1)


@pytest.mark.parametrize('batch,num_tokens,k,num_padded', [(8, 196, 65, 20), (2, 1024, 321, 100),
                                                           (3, 40, 30, 15)])
def test_native_matches_dgl_at_cast_sizes_with_padding(batch, num_tokens, k, num_padded):
    # The last case runs out of distinct points: both must return index 0 from then on.
    points = cast_like_points(batch, num_tokens, 384, num_padded)
    native = farthest_point_sampling(points, k)
    assert torch.equal(native, farthest_point_sampling(points, k, backend='dgl'))
    distinct = num_tokens - num_padded + 1  # the mean token and the valid tokens
    assert (native < distinct).all()  # padded tokens (copies of the mean) are never picked
    assert (native[:, distinct:] == 0).all() and (k > distinct) == (batch == 3)


def test_pairwise_distances_are_exact_zero_for_equal_rows_only():
    from cast_mm.ops.farthest_point_sampling import pairwise_sq_distances
    points = torch.randn(2, 30, 64) * 100 + 1000  # large norms: cancellation in the Gram form
    points[:, 7] = points[:, 3]
    points[0, 9] = -0. * points[0, 9].abs()  # -0. equals +0.
    points[0, 10] = points[0, 9].abs() * 0.
    dist = pairwise_sq_distances(points)
    direct = (points.double()[:, :, None] - points.double()[:, None]).square().sum(-1)
    torch.testing.assert_close(dist, direct, atol=1e-6 * float(direct.max()), rtol=0)
    assert torch.equal(dist == 0, direct == 0)


def test_native_backend_never_reads_tensor_values_on_the_host():
    """On the meta device no value can reach the host (``.item()``, ``int(t)``, data-dependent
    shapes all raise), so a run there shows the op has no host round trip on CUDA either."""
    from cast_mm.ops.farthest_point_sampling import _native_fps

    # The implementation itself: the registered op would dispatch meta tensors to its fake kernel.
    points = torch.empty(3, 197, 384, device='meta')
    picks = _native_fps(points, 65, 0)
    assert picks.device.type == 'meta' and picks.shape == (3, 65)
    assert picks.dtype == torch.long


def torch_loop_fps(points, k, start=0):
    """The torch formulation (Gram matrix + torch loop) the compiled kernel replaces on CPU."""
    from cast_mm.ops.farthest_point_sampling import _fps_loop, pairwise_sq_distances
    return _fps_loop(pairwise_sq_distances(points), k, start)


def compiled_kernel():
    from cast_mm.ops import fps_kernel
    if fps_kernel.load() is None:
        pytest.skip(f'compiled FPS kernel unavailable here: {fps_kernel.status()}')
    return fps_kernel


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize('batch,num_tokens,k,num_padded', [(8, 196, 65, 20), (2, 1024, 321, 100),
                                                           (3, 40, 30, 15), (1, 5, 5, 0)])
def test_compiled_kernel_is_dgl_bitwise(dtype, batch, num_tokens, k, num_padded):
    kernel = compiled_kernel()
    points = cast_like_points(batch, num_tokens, 384, num_padded).to(dtype)
    out = kernel.sample(points, k, 0)
    assert out.dtype == torch.long and out.shape == (batch, k)
    assert torch.equal(out, farthest_point_sampling(points, k, backend='dgl'))
    assert torch.equal(out, torch_loop_fps(points, k))


def test_compiled_kernel_keeps_dgl_ties_and_odd_shapes():
    # Integer lattice: exact ties everywhere; odd point counts and channel counts exercise the
    # vector tails; every start index.
    kernel = compiled_kernel()
    gen = torch.Generator().manual_seed(3)
    for num_points, channels in [(30, 2), (37, 3), (9, 1), (64, 7)]:
        points = torch.randint(0, 3, (3, num_points, channels), generator=gen).double()
        for start in range(0, num_points, 4):
            out = kernel.sample(points, num_points, start)
            assert torch.equal(out, farthest_point_sampling(points, num_points, start, 'dgl'))
            assert torch.equal(out, reference_fps(points, num_points, start))


@pytest.mark.parametrize('batch,num_tokens,k,num_padded', [(2, 1024, 321, 100), (1, 196, 65, 20),
                                                           (3, 40, 30, 15), (2, 5, 5, 0)])
def test_compiled_kernel_split_between_threads_is_dgl_bitwise(batch, num_tokens, k, num_padded):
    # Threads sharing an item's points (a slice each, a barrier per sample) must give the
    # indices of whole items on one thread: every split, fewer points than threads included,
    # more threads than cores (the barrier then yields).
    kernel = compiled_kernel()
    points = cast_like_points(batch, num_tokens, 384, num_padded)
    expected = farthest_point_sampling(points, k, backend='dgl')
    for threads, per_item in [(1, 1), (2, 1), (2, 2), (3, 3), (4, 2), (4, 4), (5, 3), (7, 7)]:
        out = kernel.sample(points, k, 0, threads=threads, per_item=per_item)
        assert torch.equal(out, expected), (threads, per_item)


def test_compiled_kernel_split_keeps_ties_and_every_start():
    # Exact ties across slice boundaries: the first slice's (lowest) index wins, as in DGL.
    kernel = compiled_kernel()
    gen = torch.Generator().manual_seed(5)
    for num_points, channels in [(37, 3), (64, 2), (9, 1)]:
        points = torch.randint(0, 3, (2, num_points, channels), generator=gen).float()
        for start in range(0, num_points, 5):
            expected = farthest_point_sampling(points, num_points, start, 'dgl')
            for per_item in (2, 3):
                out = kernel.sample(points, num_points, start, threads=per_item,
                                    per_item=per_item)
                assert torch.equal(out, expected), (num_points, start, per_item)


def test_kernel_thread_counts_out_of_range_are_named():
    kernel = compiled_kernel()
    points = cast_like_points(2, 30, 8, 3)
    with pytest.raises(ValueError, match='threads must be >= 1'):
        kernel.sample(points, 5, 0, threads=0)
    for per_item in (0, 3):
        with pytest.raises(ValueError, match=r'per_item must be in \[1, threads=2\]'):
            kernel.sample(points, 5, 0, threads=2, per_item=per_item)


def test_threads_share_items_whose_points_exceed_a_cache():
    from cast_mm.ops.fps_kernel import SLICE_BYTES, threads_per_item
    assert SLICE_BYTES == 1 << 20
    assert threads_per_item(8, 197, 384, 2) == 1  # 600 KB items: one thread per item
    assert threads_per_item(2, 1025, 384, 2) == 2  # 3.1 MB items: both threads on each
    assert threads_per_item(2, 1025, 384, 16) == 8  # idle threads join the items
    assert threads_per_item(1, 197, 384, 2) == 2
    assert threads_per_item(4, 100, 16, 1) == 1


def test_native_backend_uses_the_kernel_on_cpu_and_the_torch_loop_without_it(monkeypatch):
    from cast_mm.ops import fps_kernel
    points = cast_like_points(2, 60, 16, 6)
    with_kernel = farthest_point_sampling(points, 20)
    monkeypatch.setenv('CAST_MM_FPS_KERNEL', '0')
    assert fps_kernel.load() is None and 'CAST_MM_FPS_KERNEL=0' in fps_kernel.status()
    assert torch.equal(farthest_point_sampling(points, 20), with_kernel)
    assert torch.equal(with_kernel, torch_loop_fps(points, 20))


def test_kernel_build_is_cached_and_a_missing_compiler_falls_back(monkeypatch, tmp_path):
    from cast_mm.ops import compiled_library, fps_kernel
    if compiled_library.find_compiler() is None:
        pytest.skip('no C compiler on this machine')
    monkeypatch.setenv('TORCH_EXTENSIONS_DIR', str(tmp_path))
    fps_kernel.LIBRARY.reset()
    try:
        assert fps_kernel.load() is not None
        built = list((tmp_path / 'cast_mm_fps').glob('fps_*.so'))
        assert len(built) == 1
        stamp = built[0].stat().st_mtime_ns
        fps_kernel.LIBRARY.reset()
        assert fps_kernel.load() is not None and built[0].stat().st_mtime_ns == stamp  # reused
        # No compiler: load() says why and the op still samples, through the torch loop.
        fps_kernel.LIBRARY.reset()
        monkeypatch.setattr(compiled_library, 'find_compiler', lambda: None)
        assert fps_kernel.load() is None and 'no C compiler' in fps_kernel.status()
        points = cast_like_points(2, 30, 8, 3)
        assert torch.equal(farthest_point_sampling(points, 10),
                           farthest_point_sampling(points, 10, backend='dgl'))
    finally:
        fps_kernel.LIBRARY.reset()  # later tests load the library of the default cache again

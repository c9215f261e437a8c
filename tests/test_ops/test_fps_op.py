"""The farthest point sampling custom op: DGL semantics, backends, kernels, tracing."""
import importlib
import subprocess
import sys

import pytest
import torch
from helpers import REPO, subprocess_env

from cast_analysis import cast_like_points
from cast_mm.ops import extension, farthest_point_sampling
from cast_mm.ops.farthest_point_sampling import SLICE_BYTES, fps_cpu, fps_torch, slices_per_item


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


@pytest.mark.parametrize('batch,num_tokens,k,num_padded', [
    (8, 196, 65, 20), pytest.param(2, 1024, 321, 100, marks=pytest.mark.slow), (3, 40, 30, 15)])
def test_torch_loop_matches_dgl_at_cast_sizes_with_padding(batch, num_tokens, k, num_padded):
    points = cast_like_points(batch, num_tokens, 384, num_padded)
    assert torch.equal(fps_torch(points, k, 0), farthest_point_sampling(points, k, backend='dgl'))


def test_torch_loop_runs_out_of_points_only_when_every_point_is_selected():
    # Distinct points far from the origin and very close to each other: a Gram-matrix
    # formulation (|p|^2 + |q|^2 - 2 p.q) rounds their distances to 0 and stops sampling;
    # DGL, and the loop, keep going until only copies of selected points remain.
    gen = torch.Generator().manual_seed(2)
    base = torch.randn(1, 1, 64, generator=gen, dtype=torch.float64) * 1e4
    points = base + torch.randn(2, 12, 64, generator=gen, dtype=torch.float64) * 1e-5
    points[:, 8:] = points[:, :1]  # four copies of the first point
    dgl = farthest_point_sampling(points, 12, backend='dgl')
    loop = fps_torch(points, 12, 0)
    assert torch.equal(loop, dgl)
    assert (loop[:, :8].sort(dim=1).values == torch.arange(8)).all()  # every distinct point
    assert (loop[:, 8:] == 0).all()  # then exhausted, index 0 as DGL


def test_native_backend_never_reads_tensor_values_on_the_host():
    """On the meta device no value can reach the host (``.item()``, ``int(t)``, data-dependent
    shapes all raise), so a run there shows the torch loop has no host round trip on a GPU."""
    from cast_mm.ops.farthest_point_sampling import _native_fps

    # The implementation itself: the registered op would dispatch meta tensors to its fake kernel.
    points = torch.empty(3, 197, 384, device='meta')
    picks = _native_fps(points, 65, 0)
    assert picks.device.type == 'meta' and picks.shape == (3, 65)
    assert picks.dtype == torch.long


def compiled_kernel():
    if not extension.available():
        pytest.skip(f'the compiled CPU operators are unavailable here: {extension.status()}')


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize('batch,num_tokens,k,num_padded', [(8, 196, 65, 20), (2, 1024, 321, 100),
                                                           (3, 40, 30, 15), (1, 5, 5, 0)])
def test_compiled_kernel_is_dgl_bitwise(dtype, batch, num_tokens, k, num_padded):
    compiled_kernel()
    points = cast_like_points(batch, num_tokens, 384, num_padded).to(dtype)
    out = fps_cpu(points, k, 0)
    assert out.dtype == torch.long and out.shape == (batch, k)
    assert torch.equal(out, farthest_point_sampling(points, k, backend='dgl'))


def test_compiled_kernel_keeps_dgl_ties_and_odd_shapes():
    # Integer lattice: exact ties everywhere; odd point counts and channel counts exercise the
    # vector tails; every start index. (DGL equals the transcription of its loop on such sets:
    # test_ties_and_duplicates_pick_lowest_index.)
    compiled_kernel()
    gen = torch.Generator().manual_seed(3)
    for num_points, channels in [(30, 2), (37, 3), (9, 1), (64, 7)]:
        points = torch.randint(0, 3, (3, num_points, channels), generator=gen).double()
        for start in range(0, num_points, 4):
            out = fps_cpu(points, num_points, start)
            assert torch.equal(out, farthest_point_sampling(points, num_points, start, 'dgl'))


@pytest.mark.parametrize('batch,num_tokens,k,num_padded', [(2, 1024, 321, 100), (1, 196, 65, 20),
                                                           (3, 40, 30, 15), (2, 5, 5, 0)])
def test_compiled_kernel_split_into_slices_is_dgl_bitwise(batch, num_tokens, k, num_padded):
    # Items split into slices sampled in parallel (the first slice wins ties) must give the
    # indices of whole items: every split, more slices than points and than threads included.
    compiled_kernel()
    points = cast_like_points(batch, num_tokens, 384, num_padded)
    expected = farthest_point_sampling(points, k, backend='dgl')
    threads = torch.get_num_threads()
    try:
        for num_threads in (1, 3):
            torch.set_num_threads(num_threads)
            for slices in (1, 2, 3, 4, 7):
                assert torch.equal(fps_cpu(points, k, 0, slices=slices), expected), slices
    finally:
        torch.set_num_threads(threads)


def test_compiled_kernel_split_keeps_ties_and_every_start():
    # Exact ties across slice boundaries: the first slice's (lowest) index wins, as in DGL.
    compiled_kernel()
    gen = torch.Generator().manual_seed(5)
    for num_points, channels in [(37, 3), (64, 2), (9, 1)]:
        points = torch.randint(0, 3, (2, num_points, channels), generator=gen).float()
        for start in range(0, num_points, 5):
            expected = farthest_point_sampling(points, num_points, start, 'dgl')
            for slices in (2, 3):
                out = fps_cpu(points, num_points, start, slices=slices)
                assert torch.equal(out, expected), (num_points, start, slices)


def test_compiled_kernel_checks_devices_dtypes_and_arguments():
    compiled_kernel()
    op = torch.ops.cast_mm.fps_cpu
    with pytest.raises(RuntimeError, match='expects float32 or float64'):
        op(torch.zeros(1, 4, 3, dtype=torch.int64), 2, 0, 1)
    with pytest.raises(RuntimeError, match='start_idx 9 is outside'):
        op(torch.zeros(1, 4, 3), 2, 9, 1)
    with pytest.raises(RuntimeError, match='slices must be >= 1'):
        op(torch.zeros(1, 4, 3), 2, 0, 0)


def test_compiled_kernel_is_traced_through_its_fake():
    compiled_kernel()
    points = torch.randn(2, 20, 8)

    def pick(p):
        return torch.ops.cast_mm.fps_cpu(p * 2, 5, 0, 2)

    compiled = torch.compile(pick, fullgraph=True, backend='eager')
    assert torch.equal(compiled(points), pick(points))
    from torch._subclasses.fake_tensor import FakeTensorMode
    with FakeTensorMode():
        fake = torch.ops.cast_mm.fps_cpu(torch.empty(2, 10, 4), 3, 0, 1)
    assert fake.shape == (2, 3) and fake.dtype == torch.long


def test_items_are_split_where_their_points_exceed_a_cache():
    assert SLICE_BYTES == 1 << 20
    assert slices_per_item(8, 197, 384, 2) == 1  # 600 KB items: one slice
    assert slices_per_item(2, 1025, 384, 2) == 2  # 3.1 MB items: two slices
    assert slices_per_item(2, 1025, 384, 16) == 8  # idle threads take slices
    assert slices_per_item(1, 197, 384, 2) == 2
    assert slices_per_item(4, 100, 16, 1) == 1


def test_native_backend_uses_the_kernel_on_cpu_and_dgl_without_it(monkeypatch):
    fps_module = importlib.import_module('cast_mm.ops.farthest_point_sampling')
    points = cast_like_points(2, 60, 16, 6)
    calls = []
    monkeypatch.setattr(fps_module, 'fps_cpu', lambda *a: calls.append('kernel') or
                        fps_module.fps_dgl(*a))
    monkeypatch.setattr(extension, 'available', lambda: True)
    farthest_point_sampling(points, 20)
    monkeypatch.setattr(extension, 'available', lambda: False)
    monkeypatch.setattr(fps_module, 'fps_dgl', lambda *a: calls.append('dgl') or
                        fps_torch(*a))
    farthest_point_sampling(points, 20)
    assert calls == ['kernel', 'dgl']
    assert 'DGL kernel' in fps_module.native_implementation('cpu')


# ------------------------------------------------------------------------------ Triton kernel
def run_interpreted(code: str) -> None:
    """Run ``code`` in a process whose Triton kernels run through the interpreter on CPU."""
    env = subprocess_env(TRITON_INTERPRET='1')
    result = subprocess.run([sys.executable, '-c', code], cwd=str(REPO), env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


TRITON_CHECK = """
import torch
from cast_mm.ops import farthest_point_sampling
from cast_mm.ops.fps_triton import fps_triton
"""
#: The points the FPS tests use, in a check script.
CAST_LIKE_POINTS = 'from cast_analysis.batches import cast_like_points\n'


@pytest.fixture(scope='module')
def triton_or_skip():
    pytest.importorskip('triton', reason='Triton is not installed (it comes with CUDA torch)')


@pytest.mark.slow
def test_triton_kernel_through_the_interpreter_is_dgl_on_cast_like_sets(triton_or_skip):
    # The FPS test sets at few channels (the interpreter runs every channel step in Python):
    # padded tokens, exhaustion, every dtype.
    run_interpreted(TRITON_CHECK + CAST_LIKE_POINTS + """
for batch, num_tokens, k, num_padded in [(8, 196, 65, 20), (3, 40, 30, 15), (1, 5, 5, 0)]:
    for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        points = cast_like_points(batch, num_tokens, 3, num_padded).to(dtype)
        out = fps_triton(points, k, 0)
        assert out.dtype == torch.long and out.shape == (batch, k)
        assert torch.equal(out, farthest_point_sampling(points, k, backend='dgl')), dtype
""")


@pytest.mark.slow  # a process importing the stack; every kernel step in Python
def test_triton_kernel_through_the_interpreter_keeps_ties_and_every_start(triton_or_skip):
    run_interpreted(TRITON_CHECK + """
gen = torch.Generator().manual_seed(3)
for num_points, channels in [(30, 2), (37, 3), (9, 1)]:
    points = torch.randint(0, 3, (3, num_points, channels), generator=gen).double()
    for start in range(0, num_points, 7):
        out = fps_triton(points, num_points, start)
        assert torch.equal(out, farthest_point_sampling(points, num_points, start, 'dgl'))
# Near-duplicates far from the origin: sampled until only copies of selected points remain.
base = torch.randn(1, 1, 16, generator=gen, dtype=torch.float64) * 1e4
points = base + torch.randn(2, 12, 16, generator=gen, dtype=torch.float64) * 1e-5
points[:, 8:] = points[:, :1]
assert torch.equal(fps_triton(points, 12, 0), farthest_point_sampling(points, 12, 0, 'dgl'))
""")


def test_triton_kernel_compiles_for_cuda_without_fused_multiply_adds(triton_or_skip):
    # Compiling needs no GPU. With Triton's default options the float64 products and sums
    # contract into fma.rn.f64, which rounds once where DGL rounds twice; the kernel's options
    # must leave separate multiplies and adds.
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from cast_mm.ops import fps_triton
    signature = dict(x_ptr='*fp32', out_ptr='*i64', num_points='i32', channels='i32',
                     num_samples='i32', start_idx='i32', stride_b='i32', stride_n='i32',
                     stride_c='i32', BLOCK_N='constexpr')
    source = ASTSource(fn=fps_triton._kernel(), signature=signature,
                       constexprs=dict(BLOCK_N=1024))
    try:
        ptx = [triton.compile(source, target=GPUTarget('cuda', 90, 32), options=options)
               .asm['ptx'] for options in (dict(enable_fp_fusion=True),
                                           fps_triton.COMPILE_OPTIONS)]
    except Exception as err:  # no CUDA toolchain in this Triton build
        pytest.skip(f'Triton cannot compile for CUDA here: {err}')
    assert 'fma.rn.f64' in ptx[0]  # the hazard is real
    assert 'fma.rn.f64' not in ptx[1] and 'mul.rn.f64' in ptx[1]


@pytest.mark.slow
def test_triton_kernel_through_the_interpreter_at_1025_points(triton_or_skip):
    run_interpreted(TRITON_CHECK + CAST_LIKE_POINTS + """
points = cast_like_points(2, 1024, 2, 100)
assert torch.equal(fps_triton(points, 321, 0), farthest_point_sampling(points, 321, 0, 'dgl'))
""")


@pytest.mark.gpu
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize('batch,num_tokens,k,num_padded', [(8, 196, 65, 20), (2, 1024, 321, 100),
                                                           (3, 40, 30, 15), (1, 5, 5, 0)])
def test_triton_kernel_on_cuda_is_dgl_bitwise(dtype, batch, num_tokens, k, num_padded):
    from cast_mm.ops.fps_triton import fps_triton
    points = cast_like_points(batch, num_tokens, 384, num_padded).to(dtype)
    expected = farthest_point_sampling(points, k, backend='dgl')
    on_gpu = points.cuda()
    assert torch.equal(fps_triton(on_gpu, k, 0).cpu(), expected)
    native = farthest_point_sampling(on_gpu, k)  # the native op resolves to the kernel
    assert native.is_cuda and torch.equal(native.cpu(), expected)


@pytest.mark.gpu
def test_compiled_cpu_kernel_refuses_cuda_tensors():
    compiled_kernel()
    with pytest.raises((RuntimeError, NotImplementedError), match='CUDA'):
        torch.ops.cast_mm.fps_cpu(torch.zeros(1, 4, 3, device='cuda'), 2, 0, 1)


@pytest.mark.gpu
def test_triton_kernel_on_cuda_keeps_ties_and_every_start():
    from cast_mm.ops.fps_triton import fps_triton
    gen = torch.Generator().manual_seed(3)
    for num_points, channels in [(30, 2), (37, 3), (9, 1), (64, 7)]:
        points = torch.randint(0, 3, (3, num_points, channels), generator=gen).double()
        for start in range(0, num_points, 4):
            out = fps_triton(points.cuda(), num_points, start).cpu()
            assert torch.equal(out, farthest_point_sampling(points, num_points, start, 'dgl'))

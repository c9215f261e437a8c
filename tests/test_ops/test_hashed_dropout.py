"""Hashed dropout: the kernels equal the tensor formulation, the masks are dropout's, and the
backward pass redraws the forward mask."""
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO

from cast_mm.ops import extension
from cast_mm.ops import hashed_dropout as hd


def kernel_or_skip():
    if not extension.available():
        pytest.skip(f'the compiled CPU operators are unavailable here: {extension.status()}')


def fallback(x, p, seed):
    return hd.dropout_with_seed_torch(x, p, seed)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('shape', [(7,), (3, 1000), (2, 6, 130, 131)])
def test_kernel_equals_the_tensor_formulation(dtype, shape):
    kernel_or_skip()
    x = torch.randn(shape, dtype=dtype)
    for p, seed in [(0.1, 1), (0.5, 2**62 + 12345), (0.9, 7)]:
        assert torch.equal(hd.dropout_with_seed(x, p, seed), fallback(x, p, seed))


def test_kernel_checks_dtype_and_threshold():
    kernel_or_skip()
    op = torch.ops.cast_mm.hashed_dropout_cpu
    with pytest.raises(RuntimeError, match='expects float32 or float64'):
        op(torch.ones(4, dtype=torch.float16), 1, 2**31, 2.)
    with pytest.raises(RuntimeError, match=r'threshold must be in \[0, 2\^32\]'):
        op(torch.ones(4), 1, 2**33, 2.)


def test_kernel_is_traced_through_its_fake():
    kernel_or_skip()
    x = torch.randn(3, 50)

    def drop(t):
        return torch.ops.cast_mm.hashed_dropout_cpu(t * 2, 5, 2**31, 2.)

    compiled = torch.compile(drop, fullgraph=True, backend='eager')
    assert torch.equal(compiled(x), drop(x))


def test_triton_kernel_through_the_interpreter_equals_the_tensor_formulation():
    pytest.importorskip('triton', reason='Triton is not installed (it comes with CUDA torch)')
    # Not bfloat16: the interpreter rounds float32 to bfloat16 toward zero (CUDA rounds to
    # nearest even, as torch does; test_cuda_masks_are_the_cpu_masks covers it).
    code = """
import torch
from cast_mm.ops import hashed_dropout as hd
from cast_mm.ops.hashed_dropout_triton import dropout_with_seed
for dtype in (torch.float32, torch.float64, torch.float16):
    x = torch.randn(3, 1000, dtype=dtype)
    for p, seed in [(0.1, 1), (0.5, 2**62 + 12345), (0.9, 7)]:
        out = dropout_with_seed(x, seed, hd.keep_threshold(p), 1 / (1 - p))
        assert torch.equal(out, hd.dropout_with_seed_torch(x, p, seed)), (dtype, p)
"""
    env = dict(os.environ, TRITON_INTERPRET='1', PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, '-c', code], cwd=str(REPO), env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.gpu
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64, torch.bfloat16])
def test_cuda_masks_are_the_cpu_masks(dtype):
    x = torch.randn(2, 6, 130, 131, dtype=dtype)
    for p, seed in [(0.1, 1), (0.5, 2**62 + 12345)]:
        expected = hd.dropout_with_seed_torch(x, p, seed)
        assert torch.equal(hd.dropout_with_seed(x.cuda(), p, seed).cpu(), expected)


def test_masks_follow_the_row_major_index_whatever_the_strides():
    x = torch.randn(300, 400)
    assert torch.equal(hd.dropout_with_seed(x.t(), 0.3, 5),
                       hd.dropout_with_seed(x.t().contiguous(), 0.3, 5))


@pytest.mark.parametrize('p', [0.1, 0.5])
def test_masks_have_dropouts_distribution(p):
    n = 2**21
    x = torch.ones(n)
    out = hd.dropout_with_seed(x, p, hd.draw_seed())
    kept = out != 0
    # Kept elements are scaled exactly as torch's dropout scales them.
    assert torch.equal(out[kept], torch.full((int(kept.sum()),), 1 / (1 - p)))
    sigma = (p * (1 - p) / n)**0.5
    assert abs(kept.double().mean().item() - (1 - p)) < 5 * sigma
    # Neighbouring elements, rows of a matrix and seeds are uncorrelated.
    k = kept.double() - kept.double().mean()
    for lag in (1, 2, 64, 1024):
        corr = (k[:-lag] * k[lag:]).mean() / k.var()
        assert abs(corr.item()) < 5 / n**0.5
    other = hd.dropout_with_seed(x, p, hd.draw_seed()) != 0
    assert abs(((kept == other).double().mean() - (p**2 + (1 - p)**2)).item()) < 5 / n**0.5


def test_seeds_come_from_torchs_generator():
    x = torch.randn(1000)
    torch.manual_seed(3)
    a = hd.hashed_dropout(x, 0.2)
    torch.manual_seed(3)
    b = hd.hashed_dropout(x, 0.2)
    c = hd.hashed_dropout(x, 0.2)
    assert torch.equal(a, b) and not torch.equal(b, c)
    assert hd.hashed_dropout(x, 0.2, training=False) is x and hd.hashed_dropout(x, 0.) is x


def test_bad_probability_is_refused():
    with pytest.raises(ValueError, match='dropout probability'):
        hd.dropout_with_seed(torch.ones(3), 1.0, 0)


def test_backward_uses_the_forward_mask():
    x = torch.randn(5, 300, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 300, dtype=torch.float64)
    out = hd.hashed_dropout(x, 0.3)
    (out * w).sum().backward()
    mask = (out != 0).double()
    torch.testing.assert_close(x.grad, w * mask / 0.7, rtol=0, atol=1e-15)
    fixed = lambda t: hd._HashedDropout.apply(t, 0.3, 1234)  # noqa: E731
    assert torch.autograd.gradcheck(fixed, (x.detach().requires_grad_(),))


def test_dropout_matmul_equals_explicit_dropout_then_product():
    a = torch.rand(2, 3, 40, 40, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, 3, 40, 8, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 3, 40, 8, dtype=torch.float64)
    torch.manual_seed(0)
    out = hd.hashed_dropout_matmul(a, b, 0.25)
    (out * g).sum().backward()
    grads = a.grad.clone(), b.grad.clone()
    a.grad = b.grad = None
    torch.manual_seed(0)
    ref = hd.hashed_dropout(a, 0.25) @ b
    (ref * g).sum().backward()
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-13)
    torch.testing.assert_close(grads[0], a.grad, rtol=0, atol=1e-13)
    torch.testing.assert_close(grads[1], b.grad, rtol=0, atol=1e-13)
    fixed = lambda x, y: hd._HashedDropoutMatmul.apply(x, y, 0.25, 77)  # noqa: E731
    assert torch.autograd.gradcheck(fixed, (a.detach()[:1, :1, :6, :6].requires_grad_(),
                                            b.detach()[:1, :1, :6, :3].requires_grad_()))


def test_seeds_stay_on_their_device():
    # On an accelerator the seed is a device tensor the kernels read: drawing it copies nothing
    # to the host. The meta device stands in (any host read of it would raise).
    seed = hd.draw_seed(torch.device('meta'))
    assert isinstance(seed, torch.Tensor) and seed.device.type == 'meta'
    out = hd.dropout_with_seed(torch.empty(3, 7, device='meta'), 0.2, seed)
    assert out.shape == (3, 7) and out.device.type == 'meta'
    assert isinstance(hd.draw_seed(torch.device('cpu')), int)
    x = torch.randn(4, 300)
    assert torch.equal(hd.dropout_with_seed_torch(x, 0.3, torch.tensor(99)),
                       hd.dropout_with_seed(x, 0.3, 99))


@pytest.mark.parametrize('dtype', ['fp32', 'fp64', 'fp16', 'bf16'])
def test_triton_kernel_compiles_for_cuda(dtype):
    # Compiling needs no GPU; it checks the uint64 hash and the dtypes lower to PTX.
    triton = pytest.importorskip('triton', reason='Triton is not installed')
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from cast_mm.ops import hashed_dropout_triton
    signature = dict(x_ptr=f'*{dtype}', out_ptr=f'*{dtype}', scale_ptr=f'*{dtype}',
                     seed_ptr='*i64', numel='i32', threshold='i64', BLOCK='constexpr')
    source = ASTSource(fn=hashed_dropout_triton._kernel(), signature=signature,
                       constexprs=dict(BLOCK=hashed_dropout_triton.BLOCK))
    try:
        ptx = triton.compile(source, target=GPUTarget('cuda', 90, 32)).asm['ptx']
    except Exception as err:  # no CUDA toolchain in this Triton build
        pytest.skip(f'Triton cannot compile for CUDA here: {err}')
    assert 'mul.lo.s64' in ptx or 'mul.lo.u64' in ptx  # the 64-bit hash products

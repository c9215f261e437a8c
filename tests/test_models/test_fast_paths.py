"""Fast paths of CAST against the literal official computation."""
import pytest
import torch
import torch.nn.functional as F
from helpers import TINY_ARCH, grid_superpixels
from helpers import tiny_cast as tiny

from cast_analysis.parity import check_case
from cast_mm.models import CAST
from cast_mm.models.execution_profile import LITERAL as PROFILE
from cast_mm.models.layers.segment_pooling import (interpolated_segment_mean, interpolation_matrix,
                                                   interpolation_taps)
from cast_mm.ops import segment_mean

LITERAL = PROFILE['backbone']


def literal_segment_mean(grid, labels, num_slots, full_size, mode):
    """The official computation: resize the grid to full size, crop, average per segment."""
    height, width = labels.shape[1:]
    up = F.interpolate(grid.permute(0, 3, 1, 2), size=full_size, mode=mode,
                       align_corners=False)[..., :height, :width]
    return segment_mean(up.permute(0, 2, 3, 1).expand(labels.shape[0], -1, -1, -1), labels,
                        num_slots)


def blob_labels(batch, height, width, num_ids, seed=0):
    """Blocky random maps with some ids unused and one non-compact (scattered) id."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.randint(0, num_ids - 2, (batch, height // 5 + 1, width // 5 + 1),
                           generator=gen)
    labels = F.interpolate(coarse[:, None].float(), size=(height, width), mode='nearest')
    labels = labels[:, 0].long()
    scattered = torch.rand(batch, height, width, generator=gen) < 0.02
    return labels.masked_fill(scattered, num_ids - 1)


@pytest.mark.parametrize('in_size,out_size,mode', [(8, 64, 'bilinear'), (7, 56, 'bicubic'),
                                                   (64, 40, 'bicubic'), (5, 5, 'bicubic'),
                                                   (1, 8, 'bilinear'), (3, 24, 'bicubic')])
def test_interpolation_taps_reproduce_f_interpolate(in_size, out_size, mode):
    matrix = interpolation_matrix(in_size, out_size, mode)
    signal = torch.randn(3, in_size, dtype=torch.float64)
    expected = F.interpolate(signal[None, :, :, None], size=(out_size, 1), mode=mode,
                             align_corners=False)[0, :, :, 0]
    torch.testing.assert_close(signal @ matrix.t(), expected, atol=1e-12, rtol=1e-12)
    start, weights = interpolation_taps(matrix, 4 if mode == 'bicubic' else 2)
    # The windows hold every non-zero weight of every row.
    torch.testing.assert_close(weights.sum(1), matrix.sum(1))
    assert int((matrix != 0).sum()) == int((weights != 0).sum())


@pytest.mark.parametrize('grid_batch,grid_size,full_size,crop,mode', [
    (2, (8, 6), (64, 48), (61, 45), 'bilinear'),
    (1, (8, 6), (64, 48), (61, 45), 'bicubic'),
    (1, (6, 6), (40, 40), (40, 40), 'bicubic'),
    (2, (5, 5), (40, 40), (40, 40), 'bilinear'),
    (1, (40, 40), (40, 40), (37, 40), 'bicubic'),
])
def test_interpolated_segment_mean_equals_literal_forward_and_backward(
        grid_batch, grid_size, full_size, crop, mode):
    labels = blob_labels(2, *crop, num_ids=12)
    grid = torch.randn(grid_batch, *grid_size, 5, dtype=torch.float64, requires_grad=True)
    fast = interpolated_segment_mean(grid, labels, 14, full_size, mode)
    literal = literal_segment_mean(grid, labels, 14, full_size, mode)
    torch.testing.assert_close(fast, literal, atol=1e-12, rtol=1e-12)
    assert (fast[:, 12:] == 0).all()  # empty slots stay zero vectors
    weights = torch.randn_like(literal)
    (grad_fast, ) = torch.autograd.grad((fast * weights).sum(), grid)
    (grad_literal, ) = torch.autograd.grad((literal * weights).sum(), grid)
    torch.testing.assert_close(grad_fast, grad_literal, atol=1e-12, rtol=1e-12)


def max_rel_diff(a, b):
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize('pos_embed,size', [('learned', (64, 64)), ('sincos', (60, 52))])
def test_segmentation_fast_path_equals_literal(pos_embed, size):
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(0))
    sp = blob_labels(2, *size, num_ids=40, seed=1)
    fast = tiny('segmentation', pos_embed=pos_embed)
    literal = tiny('segmentation', pos_embed=pos_embed, **LITERAL)
    literal.load_state_dict(fast.state_dict())
    feats_fast = fast.forward_features(x, sp)
    feats_literal = literal.forward_features(x, sp)
    for k in range(4):
        assert torch.equal(feats_fast.sampled_inds[k], feats_literal.sampled_inds[k])
    assert max_rel_diff(feats_fast.fused_tokens, feats_literal.fused_tokens) < 1e-5
    # Backward: same gradients for the stem and the position table. Both draw the dropout
    # masks of the poolings and the level fusion the same way, so one seed gives one mask.
    fast.train()
    literal.train()
    torch.manual_seed(1)
    fast(x, sp)[0].square().mean().backward()
    torch.manual_seed(1)
    literal(x, sp)[0].square().mean().backward()
    for name in ('stem.proj.0.weight', 'stem.proj.12.weight', 'cls_token'):
        grad_fast = dict(fast.named_parameters())[name].grad
        grad_literal = dict(literal.named_parameters())[name].grad
        assert max_rel_diff(grad_fast, grad_literal) < 1e-4, name
    if pos_embed == 'learned':
        assert max_rel_diff(fast.pos_embed.grad, literal.pos_embed.grad) < 1e-4


@pytest.mark.parametrize('mask_padding', [False, True])
def test_classification_fast_path_equals_literal(mask_padding):
    x = torch.randn(2, 3, 64, 64)
    sp = grid_superpixels(2, 64, 64)
    sp[1][sp[1] > 40] = 3  # the second image uses fewer ids: padded tokens
    fast = tiny('classification', mask_padding=mask_padding)
    literal = tiny('classification', mask_padding=mask_padding, **LITERAL)
    literal.load_state_dict(fast.state_dict())
    assert fast.blocks[0].attn.fused_attn
    with torch.no_grad():
        torch.testing.assert_close(fast(x, sp)[0], literal(x, sp)[0], atol=1e-5, rtol=1e-5)


def test_parity_fixture_holds_for_fast_and_literal_paths(public_fixture):
    case = public_fixture['cases']['moco_seg']
    for literal in (False, True):
        rows = check_case('moco_seg', case, public_fixture['image_mean'],
                          public_fixture['image_std'], literal=literal)
        assert rows and all(row.ok for row in rows), [r.format() for r in rows if not r.ok]


@pytest.mark.slow
def test_segmentation_compiles_and_exports_with_fast_pooling():
    model = tiny('segmentation')
    x = torch.randn(1, 3, 64, 64)
    sp = blob_labels(1, 64, 64, num_ids=30, seed=2)
    with torch.no_grad():
        expected = model(x, sp)[0]
        compiled = torch.compile(model, backend='aot_eager')(x, sp)[0]
        # Export traces the literal pooling (the sparse weights have data-dependent sizes).
        exported = torch.export.export(model, (x, sp), kwargs=dict(num_slots=30))
        out = exported.module()(x, sp, num_slots=30)[0]
    torch.testing.assert_close(compiled, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_token_pooling_is_validated():
    with pytest.raises(ValueError, match='token_pooling'):
        CAST(arch=TINY_ARCH, mode='segmentation', token_pooling='magic')


def test_reduced_precision_grids_keep_their_dtype():
    labels = blob_labels(2, 40, 40, num_ids=12)
    grid = torch.randn(1, 5, 5, 8)
    half = interpolated_segment_mean(grid.bfloat16(), labels, 12, (40, 40), 'bicubic')
    assert half.dtype == torch.bfloat16
    reference = interpolated_segment_mean(grid.bfloat16().float(), labels, 12, (40, 40),
                                          'bicubic')
    torch.testing.assert_close(half.float(), reference, atol=2e-2, rtol=2e-2)


def test_segment_to_pixels_is_a_per_image_lookup_with_gradients():
    """The batch-flattened row lookup equals indexing each image's token table."""
    from cast_mm.ops import segment_to_pixels
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randn(3, 7, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 7, (3, 6, 4), generator=gen)
    out = segment_to_pixels(tokens, labels)
    expected = torch.stack([tokens[b][labels[b]] for b in range(3)]).permute(0, 3, 1, 2)
    assert out.shape == (3, 5, 6, 4)
    assert torch.equal(out, expected)
    weights = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    grad, = torch.autograd.grad((out * weights).sum(), tokens)
    grad_expected, = torch.autograd.grad((expected * weights).sum(), tokens)
    assert torch.allclose(grad, grad_expected)


def test_mask_transformer_fused_attention_equals_literal():
    from cast_mm.models import SuperpixelMaskTransformer
    torch.manual_seed(0)
    literal = SuperpixelMaskTransformer(num_classes=5, in_channels=32, embed_dims=32,
                                        num_heads=2, fused_attn=False).eval()
    fused = SuperpixelMaskTransformer(num_classes=5, in_channels=32, embed_dims=32,
                                      num_heads=2, fused_attn=True).eval()
    fused.load_state_dict(literal.state_dict())
    tokens = torch.randn(2, 9, 32)
    labels = torch.randint(0, 9, (2, 8, 8))
    with torch.no_grad():
        out_literal, out_fused = literal(tokens, labels), fused(tokens, labels)
    assert torch.allclose(out_fused, out_literal, atol=1e-5, rtol=1e-5)


def test_fused_attention_dropout_is_the_explicit_computation_with_torchs_mask():
    """SDPA's ``dropout_p`` draws the mask ``nn.Dropout`` draws from the same seed on the CPU, so
    the fused and the literal attention train alike, gradients included."""
    from cast_mm.models.layers import Attention
    torch.manual_seed(0)
    fused = Attention(48, 6, attn_drop=0.2, proj_drop=0.1).double().train()
    literal = Attention(48, 6, attn_drop=0.2, proj_drop=0.1, fused_attn=False).double().train()
    literal.load_state_dict(fused.state_dict())
    x = torch.randn(2, 40, 48, dtype=torch.float64)
    g = torch.randn(2, 40, 48, dtype=torch.float64)
    outs, grads = [], []
    for attn in (fused, literal):
        torch.manual_seed(7)
        out = attn(x)
        (out * g).sum().backward()
        outs.append(out)
        grads.append([p.grad for p in attn.parameters()])
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-12, atol=1e-12)
    for got, want in zip(*grads):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    # The dropout is there: another seed, another output.
    torch.manual_seed(8)
    assert not torch.allclose(fused(x), outs[0])


def test_attention_dropout_is_inactive_in_eval_and_reproducible_in_training():
    from cast_mm.models.layers import Attention
    attn = Attention(48, 6, attn_drop=0.5, proj_drop=0.5).eval()
    x = torch.randn(2, 10, 48)
    torch.testing.assert_close(attn(x), attn(x), rtol=0, atol=0)
    attn.train()
    torch.manual_seed(1)
    a = attn(x)
    torch.manual_seed(1)
    assert torch.equal(a, attn(x)) and not torch.equal(a, attn(x))

"""Activation checkpointing of the CAST blocks (``with_cp=True``) changes no gradient."""
import pytest
import torch
from helpers import TINY_ARCH, TINY_CLUSTERS, grid_superpixels

from cast_mm.models import CAST


def _backbone(with_cp, mode, **kwargs):
    torch.manual_seed(0)
    model = CAST(arch=TINY_ARCH, mode=mode, num_clusters=TINY_CLUSTERS, img_size=64,
                 pool_num_heads=4, with_cp=with_cp, **kwargs)
    model.init_weights()
    return model.train()


def _step(model, inputs, superpixels):
    """One forward and backward with a fixed random state; counts block and pooling calls."""
    calls = dict(block=0, pool=0)

    def count(kind):
        def hook(*args):
            calls[kind] += 1
        return hook

    # pre-hooks: a recomputation stops as soon as the saved tensors are back, before the end
    handles = [b.register_forward_pre_hook(count('block')) for b in model.blocks]
    handles += [p.register_forward_pre_hook(count('pool')) for p in model.pools]
    torch.manual_seed(1)
    feats = model.forward_features(inputs, superpixels)
    out = feats.fused_tokens if feats.fused_tokens is not None else feats.cls_feature
    weights = torch.linspace(-1, 1, out.numel()).view_as(out)
    (out * weights).sum().backward()
    for handle in handles:
        handle.remove()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.detach(), grads, calls


@pytest.mark.parametrize('mode', ['segmentation', 'classification'])
@pytest.mark.parametrize('mask_padding', [False, True])
def test_gradients_equal_without_checkpointing(mode, mask_padding):
    """With dropout and stochastic depth on: the recomputation replays the same masks."""
    kwargs = dict(drop_rate=0.2, drop_path_rate=0.3, mask_padding=mask_padding)
    inputs = torch.randn(2, 3, 64, 64)
    superpixels = grid_superpixels(2, 64, 64, cell=8)
    superpixels[1] = superpixels[1] // 3  # fewer segments in the second image: padded slots
    ref_out, ref_grads, ref_calls = _step(_backbone(False, mode, **kwargs), inputs, superpixels)
    out, grads, calls = _step(_backbone(True, mode, **kwargs), inputs, superpixels)
    assert torch.equal(out, ref_out)
    assert set(grads) == set(ref_grads) and len(grads) > 10
    for name, grad in grads.items():
        assert torch.allclose(grad, ref_grads[name], rtol=1e-6, atol=1e-9), name
    num_blocks = sum(TINY_ARCH['depths'])
    # every block ran once more in the backward pass; graph pooling was not re-run
    assert ref_calls == dict(block=num_blocks, pool=4)
    assert calls == dict(block=2 * num_blocks, pool=4)


def test_no_checkpointing_in_eval_or_without_grad():
    model = _backbone(True, 'segmentation')
    inputs = torch.randn(1, 3, 64, 64)
    superpixels = grid_superpixels(1, 64, 64, cell=8)
    ref = _backbone(False, 'segmentation').eval()
    model.eval()
    with torch.no_grad():
        out = model.forward_features(inputs, superpixels).fused_tokens
        assert torch.equal(out, ref.forward_features(inputs, superpixels).fused_tokens)
    _, _, calls = _step(model, inputs, superpixels)
    assert calls['block'] == sum(TINY_ARCH['depths'])

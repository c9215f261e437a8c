"""The decode heads read CASTFeatures and give per-pixel scores constant on superpixels."""
import pytest
import torch
from helpers import grid_superpixels, tiny_cast
from mmengine.registry import DefaultScope
from mmseg.registry import MODELS

HEADS = [
    dict(type='cast_mm.SuperpixelMaskTransformerHead', channels=48, num_heads=4),
    dict(type='cast_mm.HierarchyMLPHead', channels=32),
    dict(type='cast_mm.SegmentMLPHead', channels=32),
]


@pytest.fixture(scope='module')
def features():
    backbone = tiny_cast('segmentation', pool_num_heads=4).train()
    superpixels = grid_superpixels(2, 64, 64, cell=8)
    with torch.no_grad():  # the heads' own graph is what the tests differentiate
        feats = backbone.forward_features(torch.randn(2, 3, 64, 64), superpixels)
    return feats, superpixels


@pytest.mark.parametrize('head_cfg', HEADS, ids=lambda cfg: cfg['type'])
def test_head_scores_are_constant_on_superpixels(head_cfg, features):
    feats, superpixels = features
    with DefaultScope.overwrite_default_scope('mmseg'):
        head = MODELS.build(dict(head_cfg, in_channels=48, num_classes=5))
    head.init_weights()
    scores = head(feats)
    assert scores.shape == (2, 5, 64, 64)
    cell = scores[0, :, :8, :8].flatten(1)
    assert torch.allclose(cell, cell[:, :1].expand_as(cell))
    assert not torch.allclose(scores[0, :, 0, 0], scores[0, :, 0, 8])
    loss = head.loss_by_feat(scores, [_sample(torch.randint(0, 5, (64, 64)))] * 2)
    loss['loss_ce'].backward()
    assert all(p.grad is not None for p in head.parameters() if p.requires_grad)


def test_heads_refuse_other_inputs():
    with DefaultScope.overwrite_default_scope('mmseg'):
        head = MODELS.build(dict(HEADS[0], in_channels=48, num_classes=5))
    with pytest.raises(TypeError, match='CASTFeatures'):
        head([torch.zeros(1, 48, 8, 8)])


def _sample(labels):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    sample = SegDataSample()
    sample.gt_sem_seg = PixelData(data=labels[None])
    return sample


def test_batch_norm_of_segment_tokens_ignores_padded_slots():
    """Padded token slots own no pixel; their values must not move BatchNorm statistics."""
    from cast_mm.models.utils import norm_segment_tokens
    torch.manual_seed(0)
    tokens = torch.randn(2, 5, 4)
    padding = torch.tensor([[False] * 5, [False, False, False, True, True]])
    noisy = tokens.clone()
    noisy[padding] = 1e3
    bn = torch.nn.BatchNorm1d(4).train()
    out = norm_segment_tokens(bn, noisy, padding)
    expected = torch.nn.BatchNorm1d(4).train()(tokens[~padding])
    assert torch.allclose(out[~padding], expected, atol=1e-6)
    assert torch.equal(out[padding], torch.zeros(2, 4))
    assert torch.allclose(bn.running_mean, 0.1 * tokens[~padding].mean(0), atol=1e-6)
    ln = torch.nn.LayerNorm(4)
    assert torch.equal(norm_segment_tokens(ln, noisy, padding), ln(noisy))


@pytest.mark.parametrize('batch', [1, 2])
def test_class_embedding_gradient_is_dense(batch):
    """DDP copies (and warns about) gradients whose strides differ from the parameter's."""
    from cast_mm.models import SuperpixelMaskTransformer
    decoder = SuperpixelMaskTransformer(num_classes=5, in_channels=16, embed_dims=16,
                                        num_heads=2)
    decoder.token_masks(torch.randn(batch, 7, 16)).sum().backward()
    assert decoder.cls_emb.grad.stride() == decoder.cls_emb.stride()

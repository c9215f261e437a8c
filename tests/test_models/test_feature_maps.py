"""CAST's feature maps for mmseg's stock heads: the painting rule, strides, gradients, errors."""
import pytest
import torch
from helpers import TINY_ARCH, TINY_CLUSTERS, grid_superpixels, tiny_cast

from cast_analysis.host_reads import HostReadCounter
from cast_mm.models.layers import level_assignments


def _maps_backbone(**kwargs):
    return tiny_cast('segmentation', pool_num_heads=4, out_type='feature_maps', **kwargs)


def _superpixels(batch, height, width):
    """Irregular ids: 6 x 10 cells with a few merged, so segments are not grid-aligned."""
    ids = grid_superpixels(batch, height, width, cell=6) * 7 % 97
    return torch.unique(ids, return_inverse=True)[1].reshape(ids.shape)


def test_maps_have_one_level_each_on_grids_of_their_stride():
    backbone = _maps_backbone()
    assert not backbone.fuse_levels and not hasattr(backbone, 'fusion')
    maps = backbone(torch.randn(2, 3, 64, 80), _superpixels(2, 64, 80))
    # ceil(H / stride) x ceil(W / stride) for the default strides 4, 8, 16, 32
    assert [tuple(m.shape) for m in maps] == [(2, 48, 16, 20), (2, 48, 8, 10), (2, 48, 4, 5),
                                              (2, 48, 2, 3)]
    assert all(m.is_contiguous() and m.dtype == torch.float32 for m in maps)
    chosen = _maps_backbone(out_indices=(3, 1), out_strides=(16, 16, 16, 16))
    assert [tuple(m.shape) for m in chosen(torch.randn(1, 3, 64, 80),
                                           _superpixels(1, 64, 80))] == [(1, 48, 4, 5)] * 2


def test_every_cell_carries_the_token_of_the_segment_at_its_centre():
    backbone = _maps_backbone(out_strides=(4, 8, 16, 12))
    inputs, superpixels = torch.randn(2, 3, 64, 80), _superpixels(2, 64, 80)
    with torch.no_grad():
        feats = backbone.forward_features(inputs, superpixels)
        maps = backbone.feature_maps(feats, (64, 80))
    chain = level_assignments(feats.pool_logits)
    for level, (stride, grid) in enumerate(zip(backbone.out_strides, maps)):
        for b in range(2):
            for i in range(grid.shape[2]):
                for j in range(grid.shape[3]):
                    y, x = min(i * stride + stride // 2, 63), min(j * stride + stride // 2, 79)
                    segment = superpixels[b, y, x]
                    if level > 0:
                        segment = chain[level - 1][b, segment]
                    assert torch.equal(grid[b, :, i, j], feats.stage_tokens[level][b, segment])
    # Level 0 is the superpixel tokens after stage 1, not the fused tokens.
    cell = superpixels[0, 2, 2]
    assert torch.equal(maps[0][0, :, 0, 0], feats.stage_tokens[0][0, cell])


def test_one_backward_reaches_every_trained_parameter():
    backbone = _maps_backbone().train()
    maps = backbone(torch.randn(2, 3, 64, 64), _superpixels(2, 64, 64))
    sum(m.square().mean() for m in maps).backward()
    trained = {name: p for name, p in backbone.named_parameters() if p.requires_grad}
    assert not [name for name, p in trained.items() if p.grad is None]
    # The last pooling makes no level of the maps: frozen, as without level fusion.
    assert not any(p.requires_grad for p in backbone.pools[-1].parameters())


def test_painting_reads_no_device_value_on_the_host():
    """The whole step's budget is tests/test_host_read_budget.py's; painting adds nothing."""
    backbone = _maps_backbone()
    inputs, superpixels = torch.randn(2, 3, 64, 64), _superpixels(2, 64, 64)
    feats = backbone.forward_features(inputs, superpixels)
    backbone.feature_maps(feats, (64, 64))  # warm-up
    with HostReadCounter() as painting:
        backbone.feature_maps(feats, (64, 64))
    assert painting.count == 0, painting.summary()


@pytest.mark.parametrize('kwargs,match', [
    (dict(out_indices=(0, 4)), 'out_indices'),
    (dict(out_indices=(1, 1)), 'out_indices'),
    (dict(out_indices=()), 'out_indices'),
    (dict(out_strides=(4, 8, 16)), 'out_strides'),
    (dict(out_strides=(4, 8, 0, 32)), 'out_strides'),
])
def test_bad_levels_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _maps_backbone(init=False, **kwargs)


def test_feature_maps_need_segmentation_mode():
    with pytest.raises(ValueError, match="needs mode='segmentation'"):
        tiny_cast('classification', init=False, out_type='feature_maps')


@pytest.mark.parametrize('mode,model', [('segmentation', 'cast_mm.SuperpixelEncoderDecoder'),
                                        ('classification', 'cast_mm.SuperpixelImageClassifier')])
def test_stock_models_without_superpixels_are_told_the_cast_mm_model(mode, model):
    """A stock mmseg EncoderDecoder / mmpretrain ImageClassifier calls backbone(inputs)."""
    backbone = tiny_cast(mode, pool_num_heads=4)
    with pytest.raises(TypeError, match=model):
        backbone(torch.randn(1, 3, 64, 64))


def test_stock_encoder_decoder_with_cast_is_told_the_cast_mm_model():
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS
    cfg = dict(type='EncoderDecoder',
               backbone=dict(type='cast_mm.CAST', arch=TINY_ARCH, mode='segmentation',
                             num_clusters=TINY_CLUSTERS, img_size=64, pool_num_heads=4,
                             out_type='feature_maps'),
               decode_head=dict(type='FCNHead', in_channels=48, channels=16, num_classes=3))
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg)
    with pytest.raises(TypeError, match='cast_mm.SuperpixelEncoderDecoder'):
        model(torch.randn(1, 3, 64, 64), mode='tensor')


def test_stock_image_classifier_with_cast_is_told_the_cast_mm_model():
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    cfg = dict(type='ImageClassifier',
               backbone=dict(type='cast_mm.CAST', arch=TINY_ARCH, num_clusters=TINY_CLUSTERS,
                             img_size=64, pool_num_heads=4),
               head=dict(type='LinearClsHead', num_classes=3, in_channels=48))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg)
    with pytest.raises(TypeError, match='cast_mm.SuperpixelImageClassifier'):
        model(torch.randn(1, 3, 64, 64), mode='tensor')

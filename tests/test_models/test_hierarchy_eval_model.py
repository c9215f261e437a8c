"""HierarchySegmentor: hierarchy maps and segment prototypes as data samples; the configs."""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from helpers import REPO, TINY_ARCH, TINY_CLUSTERS, grid_superpixels
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from cast_mm.apis import hierarchy_from_features
from cast_mm.models import HierarchySegmentor
from cast_mm.registry import MODELS

BACKBONE = dict(type='cast_mm.CAST', arch=TINY_ARCH, num_clusters=TINY_CLUSTERS,
                pos_embed='sincos', img_size=64)


def segmentor(**kwargs):
    torch.manual_seed(0)
    model = HierarchySegmentor(**dict(dict(backbone=dict(BACKBONE, mode='segmentation')),
                                      **kwargs))
    model.backbone.init_weights()
    return model.eval()


def samples(superpixels, img_shape, ori_shape):
    out = []
    for sp in superpixels:
        sample = SegDataSample(metainfo=dict(img_shape=img_shape, ori_shape=ori_shape))
        sample.superpixels = PixelData(data=sp[None])
        out.append(sample)
    return out


def test_maps_and_prototypes_match_the_hierarchy():
    model = segmentor(levels=(0, 2, 4), prototype_level=2, output_shape='img_shape')
    inputs = torch.randn(2, 3, 32, 40)
    superpixels = grid_superpixels(2, 32, 40, cell=4)
    with torch.no_grad():
        out = model(inputs, samples(superpixels, (32, 40), (64, 80)))
        feats = model.backbone.forward_features(inputs, superpixels)
    hierarchy = hierarchy_from_features(feats, superpixels)[1]
    maps = out[1].pred_hierarchy.data
    assert maps.shape == (3, 32, 40) and out[1].hierarchy_levels == (0, 2, 4)
    for map_, level in zip(maps, (0, 2, 4)):
        assert torch.equal(map_, hierarchy.label_maps[level])
    # Equal-area superpixels: a level-2 prototype is the plain mean of the normalised fused
    # tokens of its superpixels.
    tokens = F.normalize(feats.fused_tokens[1], dim=-1)
    level2_of_superpixel = maps[1][::4, ::4].reshape(-1)
    expected = torch.stack([tokens[level2_of_superpixel == s].mean(0)
                            for s in range(hierarchy.num_segments[2])])
    assert torch.allclose(out[1].segment_prototypes, expected, atol=1e-6)
    assert out[1].prototype_level == 2


def test_padding_is_cropped_and_maps_resized_to_ori_shape():
    model = segmentor(levels=(4, ))
    inputs = torch.randn(1, 3, 32, 32)
    superpixels = grid_superpixels(1, 32, 32, cell=4)
    with torch.no_grad():
        out = model(inputs, samples(superpixels, (24, 32), (48, 64)))
        full = hierarchy_from_features(model.backbone.forward_features(inputs, superpixels),
                                       superpixels)[0]
    # the 24 x 32 image inside the padded batch, each pixel doubled
    expected = full.label_maps[4][:24, :32].repeat_interleave(2, 0).repeat_interleave(2, 1)
    assert torch.equal(out[0].pred_hierarchy.data[0], expected)


def test_neck_projects_the_prototypes():
    neck = dict(type='mmpretrain.NonLinearNeck', in_channels=TINY_ARCH['embed_dims'],
                hid_channels=16, out_channels=8, num_layers=3, with_bias=False,
                with_last_bn=True, with_last_bn_affine=False, with_avg_pool=False,
                norm_cfg=dict(type='BN1d'))
    model = segmentor(levels=(4, ), prototype_level=4, neck=neck)
    superpixels = grid_superpixels(1, 32, 32, cell=4)
    out = model(torch.randn(1, 3, 32, 32), samples(superpixels, (32, 32), (32, 32)))
    assert out[0].segment_prototypes.shape[1] == 8


def test_errors():
    with pytest.raises(ValueError, match='levels must be in'):
        segmentor(levels=(5, ))
    with pytest.raises(ValueError, match='prototype_level 3'):
        segmentor(levels=(4, ), prototype_level=3)
    with pytest.raises(ValueError, match='output_shape'):
        segmentor(output_shape='pad_shape')
    model = segmentor()
    with pytest.raises(ValueError, match='test-time model'):
        model(torch.randn(1, 3, 32, 32), [], mode='loss')
    with pytest.raises(ValueError, match='superpixels'):
        model(torch.randn(1, 3, 32, 32), [SegDataSample()])


@pytest.mark.parametrize('name', ['cast-s_voc-retrieval', 'cast-s_partimagenet',
                                  'cast-b_partimagenet', 'cast-s_voc-finetune'])
def test_configs_build(name):
    cfg = Config.fromfile(osp.join(REPO, 'configs/cast', f'{name}.py'))
    cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
    assert model.backbone.mode == ('classification' if 'partimagenet' in name else
                                   'segmentation')

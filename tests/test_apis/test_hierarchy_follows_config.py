"""The hierarchy of a model built from a config sees images as the config's test pipeline makes
them: for every shipped config family, ``extract_hierarchy(init_model(cfg), image)`` runs on
the test pipeline's image and superpixels (its loading, resize, crop and SEEDS preset), and a
classifier's scores equal mmpretrain's ``ImageClassificationInferencer``."""
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from helpers import REPO, TINY_ARCH, TINY_CLUSTERS, photo
from mmengine.dataset import Compose
from mmengine.registry import TRANSFORMS, DefaultScope

from cast_mm.apis import HierarchyExtractor, extract_hierarchy, init_model

TINY_BACKBONE = {
    'model.backbone.arch': dict(_delete_=True, **TINY_ARCH),
    'model.backbone.num_clusters': TINY_CLUSTERS,
    'model.backbone.pool_num_heads': 4,
}
#: config family -> (config, what else shrinks with the backbone)
FAMILIES = {
    'deit': ('cast-s_8xb128_in1k.py', {'model.head.in_channels': 48}),
    'mocov3': ('cast-s_mocov3-100e_8xb32_in1k.py', {'model.neck.in_channels': 48}),
    'segmentation': ('cast-s_ade20k.py', {'model.decode_head.in_channels': 48,
                                          'model.decode_head.channels': 48,
                                          'model.decode_head.num_heads': 4}),
    'voc-retrieval': ('cast-s_voc-retrieval.py', {'model.neck.in_channels': 48}),
    'partimagenet': ('cast-s_partimagenet.py', {}),
}


def tiny_model(family: str):
    config, extra = FAMILIES[family]
    torch.manual_seed(0)
    return init_model(osp.join(REPO, 'configs', 'cast', config),
                      cfg_options=dict(TINY_BACKBONE, **extra))


def pipeline_output(model, path: str) -> dict:
    """The config's own test pipeline on ``path`` (annotation loaders left out), built here
    from the config, not by the extractor."""
    steps = [step for step in model.cfg.test_pipeline
             if step['type'].rpartition('.')[2] not in ('LoadAnnotations',
                                                        'LoadPartImageNetMasks')]
    with DefaultScope.overwrite_default_scope(model.cfg.get('default_scope', 'cast_mm')):
        return Compose([TRANSFORMS.build(step) for step in steps])(dict(img_path=path))


@pytest.fixture(scope='module')
def photo_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('photo') / 'photo.jpg')
    cv2.imwrite(path, photo(60, 84))
    return path


@pytest.mark.parametrize('family', [
    family if family == 'deit' else pytest.param(family, marks=pytest.mark.slow)  # 3-9 s each
    for family in FAMILIES])
def test_the_hierarchy_uses_the_test_pipelines_image_and_superpixels(family, photo_file):
    model = tiny_model(family)
    result = HierarchyExtractor(model).run(photo_file)[0]
    packed = pipeline_output(model, photo_file)
    superpixels = packed['data_samples'].superpixels
    superpixels = superpixels if isinstance(superpixels, torch.Tensor) else superpixels.data[0]
    np.testing.assert_array_equal(result.superpixels, superpixels.numpy())
    seen = packed['inputs'].permute(1, 2, 0).numpy()[..., ::-1]
    np.testing.assert_array_equal(result.image, seen)
    hierarchy = extract_hierarchy(model, photo_file)
    assert hierarchy.label_maps[0].shape == superpixels.shape
    assert torch.equal(hierarchy.label_maps[0], result.hierarchy.label_maps[0])
    # an RGB array of the same pixels is the same input
    rgb = cv2.imread(photo_file)[..., ::-1]
    np.testing.assert_array_equal(HierarchyExtractor(model).run(rgb)[0].superpixels,
                                  result.superpixels)


def test_classifier_scores_equal_the_inferencer(photo_file):
    from mmpretrain import ImageClassificationInferencer
    model = tiny_model('deit')
    # built with the config's data preprocessor (ImageNet mean / std, BGR to RGB), as
    # mmpretrain.get_model and MMEngine's runner build it
    assert model.data_preprocessor.mean.flatten().tolist() == pytest.approx(
        [123.675, 116.28, 103.53])
    assert model.data_preprocessor.to_rgb
    result = HierarchyExtractor(model).run(photo_file)[0]
    expected = ImageClassificationInferencer(model)(photo_file, return_datasamples=True)[0]
    assert torch.equal(result.scores, expected.pred_score.cpu())
    np.testing.assert_array_equal(result.superpixels, expected.superpixels.numpy())
    # the DeiT preset, not the MoCo one, made the map: 196 superpixels on the 224 crop
    assert result.superpixels.shape == (224, 224)


def test_superpixel_cfg_replaces_the_pipelines_step(photo_file):
    model = tiny_model('deit')
    more = HierarchyExtractor(model, superpixel_cfg=dict(num_superpixels=400,
                                                         pixels_per_superpixel=None))
    slic = HierarchyExtractor(model, superpixel_cfg=dict(type='cast_mm.SLICSuperpixels'))
    default = HierarchyExtractor(model).run(photo_file)[0].superpixels
    assert more.run(photo_file)[0].superpixels.max() > default.max()
    assert not np.array_equal(slic.run(photo_file)[0].superpixels, default)
    with pytest.raises(ValueError, match='test pipeline and data preprocessor'):
        HierarchyExtractor(model, mean=(0, 0, 0))
    with pytest.raises(ValueError, match='superpixel_cfg'):
        HierarchyExtractor(model).run(photo_file, np.zeros((60, 84), np.int64))


def test_init_model_refuses_unknown_names_and_configs_clearly():
    with pytest.raises(ValueError, match='cast-s_deit_in1k'):
        init_model('cast-s_nonexistent')
    with pytest.raises(FileNotFoundError, match='pip install -e'):
        init_model('cast_mm::cast/nonexistent.py')


def test_cast_mm_configs_are_found_after_import(tmp_path):
    """``_base_ = 'cast_mm::...'`` works after ``import cast_mm`` in any install."""
    from mmengine.config import Config
    config = tmp_path / 'mine.py'
    config.write_text("_base_ = ['cast_mm::cast/cast-s_ade20k.py']\n")
    assert Config.fromfile(str(config)).model.type == 'cast_mm.SuperpixelEncoderDecoder'


def test_import_cast_mm_makes_the_model_names_known_to_mmpretrain():
    from mmpretrain import get_model
    torch.manual_seed(0)
    model = get_model('cast-s_deit_in1k', backbone=dict(arch=dict(_delete_=True, **TINY_ARCH),
                                                        num_clusters=TINY_CLUSTERS,
                                                        pool_num_heads=4),
                      head=dict(in_channels=48))
    assert type(model.backbone).__name__ == 'CAST'

"""Superpixels in the mmpretrain pipelines of configs/cast/: where they are computed, with which
SEEDS parameters, per view for MoCo-v3, untouched by Mixup / CutMix, and clear errors."""
import os.path as osp

import numpy as np
import pytest
import torch
from helpers import REPO, TINY_CLUSTERS, grid_superpixels
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmpretrain.registry import TRANSFORMS as MMPRETRAIN_TRANSFORMS
from mmpretrain.structures import DataSample

import cast_mm  # noqa: F401
from cast_mm.datasets.transforms import PackSuperpixelClsInputs, SEEDSSuperpixels
from cast_mm.models import (SuperpixelClsDataPreprocessor, SuperpixelImageClassifier,
                            SuperpixelSelfSupDataPreprocessor)

pytestmark = pytest.mark.usefixtures('mmpretrain_scope')


def config_pipeline(config: str, key: str = 'train_dataloader'):
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'cast', config))
    return cfg[key].dataset.pipeline


def build_pipeline(steps) -> Compose:
    return Compose([MMPRETRAIN_TRANSFORMS.build(s) for s in steps])


def photo(height: int = 240, width: int = 300) -> np.ndarray:
    """A BGR uint8 image with smooth structure (SEEDS needs something to segment)."""
    rows, cols = np.mgrid[:height, :width]
    img = np.stack([rows * 255 // height, cols * 255 // width, (rows + cols) % 256], -1)
    return img.astype(np.uint8)


def as_bgr_image(tensor: torch.Tensor) -> np.ndarray:
    return tensor.permute(1, 2, 0).numpy()


def test_mmpretrain_scope_builds_the_one_seeds_transform():
    transform = MMPRETRAIN_TRANSFORMS.build(dict(type='cast_mm.SEEDSSuperpixels', preset='moco'))
    assert type(transform) is SEEDSSuperpixels
    assert (transform.num_superpixels, transform.histogram_bins,
            transform.num_iterations) == (196, 15, 20)


def test_deit_superpixels_follow_every_augmentation():
    steps = config_pipeline('cast-s_8xb128_in1k.py')
    names = [step['type'] for step in steps]
    assert names[-2:] == ['cast_mm.SEEDSSuperpixels', 'cast_mm.PackSuperpixelClsInputs']
    assert names.index('RandomErasing') < names.index('cast_mm.SEEDSSuperpixels')
    seeds = MMPRETRAIN_TRANSFORMS.build(steps[-2])
    assert (seeds.num_superpixels, seeds.histogram_bins, seeds.num_iterations) == (196, 5, 15)

    pipeline = build_pipeline(steps[1:])
    np.random.seed(0)
    out = pipeline(dict(img=photo(), gt_label=3))
    image = as_bgr_image(out['inputs'])
    assert image.shape == (224, 224, 3)
    # the packed map is SEEDS of the final (cropped, flipped, augmented, erased) image
    assert torch.equal(out['data_samples'].superpixels, torch.from_numpy(seeds.compute(image)))
    assert int(out['data_samples'].superpixels.max()) + 1 <= 196


def test_mocov3_views_get_their_own_superpixels():
    steps = config_pipeline('cast-s_mocov3-100e_8xb32_in1k.py')
    pipeline = build_pipeline(steps[1:])
    np.random.seed(0)
    out = pipeline(dict(img=photo()))
    views = out['inputs']
    maps = out['data_samples'].superpixels
    assert len(views) == 2 and tuple(maps.shape) == (2, 224, 224)
    seeds = SEEDSSuperpixels(preset='moco')
    for view, superpixels in zip(views, maps):
        assert torch.equal(superpixels, torch.from_numpy(seeds.compute(as_bgr_image(view))))
    assert not torch.equal(maps[0], maps[1])


def test_mixup_cutmix_leave_superpixels_untouched():
    preprocessor = SuperpixelClsDataPreprocessor(
        num_classes=4, batch_augments=dict(augments=[dict(type='Mixup', alpha=0.8),
                                                     dict(type='CutMix', alpha=1.0)]))
    maps = grid_superpixels(4, 32, 32, cell=4) + torch.arange(4).view(4, 1, 1)
    samples = [DataSample(superpixels=m.clone()).set_gt_label(i) for i, m in enumerate(maps)]
    torch.manual_seed(0)
    out = preprocessor(dict(inputs=list(torch.randint(0, 255, (4, 3, 32, 32),
                                                      dtype=torch.uint8)),
                            data_samples=samples), training=True)
    scores = torch.stack([s.gt_score for s in out['data_samples']])
    assert not torch.equal(scores, torch.eye(4))  # labels were mixed ...
    for sample, expected in zip(out['data_samples'], maps):
        assert torch.equal(sample.superpixels, expected)  # ... superpixels were not


def test_maps_are_padded_with_the_images():
    preprocessor = SuperpixelClsDataPreprocessor(pad_size_divisor=8)
    samples = [DataSample(superpixels=grid_superpixels(1, 30, 27, cell=3)[0]),
               DataSample(superpixels=grid_superpixels(1, 20, 32, cell=4)[0])]
    inputs = [torch.zeros(3, 30, 27, dtype=torch.uint8), torch.zeros(3, 20, 32, dtype=torch.uint8)]
    out = preprocessor(dict(inputs=inputs, data_samples=samples))
    assert tuple(out['inputs'].shape) == (2, 3, 32, 32)
    first = out['data_samples'][0].superpixels
    assert tuple(first.shape) == (32, 32)
    assert torch.equal(first[:30, :27], grid_superpixels(1, 30, 27, cell=3)[0])
    assert torch.equal(first[30:, :27], first[29:30, :27].expand(2, -1))  # border ids repeat


def test_selfsup_preprocessor_checks_one_map_per_view():
    preprocessor = SuperpixelSelfSupDataPreprocessor()
    views = [torch.zeros(2, 3, 16, 16, dtype=torch.uint8)] * 2
    good = [DataSample(superpixels=grid_superpixels(2, 16, 16)) for _ in range(2)]
    out = preprocessor(dict(inputs=views, data_samples=good))
    assert tuple(out['data_samples'][0].superpixels.shape) == (2, 16, 16)
    bad = [DataSample(superpixels=grid_superpixels(1, 16, 16)[0]) for _ in range(2)]
    with pytest.raises(ValueError, match=r'does not match its image\(s\) \(2, 16, 16\)'):
        preprocessor(dict(inputs=views, data_samples=bad))


def test_missing_superpixels_name_the_transform():
    with pytest.raises(KeyError, match='cast_mm.SEEDSSuperpixels'):
        PackSuperpixelClsInputs()(dict(img=photo(32, 32)))
    preprocessor = SuperpixelClsDataPreprocessor()
    with pytest.raises(ValueError, match='sample 0 carries no superpixels.*SEEDSSuperpixels'):
        preprocessor(dict(inputs=[torch.zeros(3, 8, 8)], data_samples=[DataSample()]))
    model = SuperpixelImageClassifier(
        backbone=dict(type='cast_mm.CAST', arch=dict(embed_dims=48, depths=(1, 1, 1, 1),
                                                     num_heads=3),
                      num_clusters=TINY_CLUSTERS, img_size=32, pool_num_heads=3),
        head=dict(type='LinearClsHead', num_classes=2, in_channels=48))
    with pytest.raises(ValueError, match='SuperpixelClsDataPreprocessor'):
        model(torch.zeros(1, 3, 32, 32))
    # with superpixels in the data samples, tensor mode gives logits
    data = model.data_preprocessor(pseudo_collate([PackSuperpixelClsInputs()(
        dict(img=photo(32, 32), superpixels=grid_superpixels(1, 32, 32, cell=4)[0].numpy()))]))
    assert tuple(model(**data).shape) == (1, 2)

"""One superpixel-source component: pipeline transforms, slide windows, in-model superpixels."""
import numpy as np
import pytest
import torch
from helpers import photo
from mmcv.transforms import BaseTransform
from mmengine.registry import DefaultScope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from cast_mm.datasets import PackSuperpixelSegInputs, SEEDSSuperpixels
from cast_mm.models import SuperpixelSegDataPreProcessor
from cast_mm.registry import SUPERPIXEL_SOURCES, TRANSFORMS
from cast_mm.superpixels import SuperpixelSource, build_superpixel_source, sample_superpixels


@pytest.fixture(scope='module')
def tiny_model_cfg(tiny_seg_model_cfg):
    model = tiny_seg_model_cfg.copy()
    model.test_cfg = dict(mode='slide', crop_size=(64, 64), stride=(48, 48))
    return model


def _build(model_cfg, **kwargs):
    cfg = model_cfg.copy()
    for key, value in kwargs.items():  # replaced, not merged into the config's value
        cfg[key] = value
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg)
    model.init_weights()
    return model.eval()


def _batch(image: np.ndarray, superpixels: bool = False):
    results = dict(img=image, img_shape=image.shape[:2], ori_shape=image.shape[:2])
    if superpixels:
        results = SEEDSSuperpixels().transform(results)
    packed = PackSuperpixelSegInputs(meta_keys=('img_shape', 'ori_shape')).transform(results)
    return dict(inputs=[packed['inputs']], data_samples=[packed['data_samples']])


@pytest.mark.parametrize('source', [
    dict(type='cast_mm.SLICSuperpixels', pixels_per_superpixel=64, num_iterations=3),
    dict(type='cast_mm.SEEDSSuperpixels', preset='seg'),
])
def test_any_source_serves_slide_windows(tiny_model_cfg, source):
    model = _build(tiny_model_cfg, window_superpixels=source)
    # The segmentor builds a superpixel source, not a data transform.
    assert type(model.superpixel_source) is SUPERPIXEL_SOURCES.get(source['type'])
    assert not isinstance(model.superpixel_source, BaseTransform)
    data = model.data_preprocessor(_batch(photo(64, 100)), False)
    with torch.no_grad():
        out = model.predict(**data)
    assert out[0].pred_sem_seg.data.shape == (1, 64, 100)
    assert torch.isfinite(out[0].seg_logits.data).all()


@pytest.mark.parametrize('source', [
    dict(pixels_per_superpixel=64, num_iterations=3),  # no type: torch SLIC on the device
    dict(type='cast_mm.SEEDSSuperpixels', pixels_per_superpixel=64),
])
def test_any_source_computes_superpixels_in_the_model(tiny_model_cfg, source):
    model = _build(tiny_model_cfg, device_superpixels=source, test_cfg=dict(mode='whole'))
    data = model.data_preprocessor(_batch(photo(64, 64)), False)
    superpixels = model.batch_superpixels(data['inputs'], data['data_samples'])
    image = data['data_samples'][0].superpixel_image
    expected = model.superpixel_source.compute_batch(image[None])
    assert torch.equal(superpixels, expected) and superpixels.max() >= 16
    assert model.predict(**data)[0].pred_sem_seg.data.shape == (1, 64, 64)


def test_sources_are_built_with_their_own_arguments_only(tiny_model_cfg):
    with pytest.raises(ValueError, match=r"SLICSuperpixels got unknown keys \['budget'\]"):
        _build(tiny_model_cfg, device_superpixels=dict(budget=3))
    with pytest.raises(ValueError, match='is not a superpixel source'):
        _build(tiny_model_cfg, window_superpixels=dict(type='mmseg.PackSegInputs'))
    with pytest.raises(ValueError, match="'cast_mm.CheckImage' is not a superpixel source"):
        build_superpixel_source(dict(type='cast_mm.CheckImage'))  # a transform, not a source
    with pytest.raises(ValueError, match='pixels_per_superpixel must be a positive integer'):
        build_superpixel_source(dict(type='cast_mm.SLICSuperpixels', pixels_per_superpixel=0))


def test_windows_use_the_kept_uint8_image_not_the_normalised_batch(tiny_model_cfg, monkeypatch):
    model = _build(tiny_model_cfg)
    image = photo(64, 100)
    data = model.data_preprocessor(_batch(image), False)
    kept = data['data_samples'][0].superpixel_image
    assert kept.dtype == torch.uint8
    assert torch.equal(kept, torch.from_numpy(image[..., ::-1].copy()).permute(2, 0, 1))
    seen = []
    compute = model.superpixel_source.compute
    monkeypatch.setattr(model.superpixel_source, 'compute',
                        lambda image: seen.append(image.copy()) or compute(image))
    # Noise in the normalised batch changes the scores but not what the superpixels see.
    data['inputs'] = data['inputs'] + 0.5 * torch.randn_like(data['inputs'])
    with torch.no_grad():
        model.predict(**data)
    rgb = image[..., ::-1]
    assert [s.shape for s in seen] == [(64, 64, 3), (64, 64, 3)]
    np.testing.assert_array_equal(seen[0], rgb[:, :64])
    np.testing.assert_array_equal(seen[1], rgb[:, 36:])


def test_kept_images_are_padded_with_the_colour_of_the_padding():
    preprocessor = SuperpixelSegDataPreProcessor(
        mean=[100., 110., 120.], std=[50., 50., 50.], bgr_to_rgb=True, size=(8, 12), pad_val=0)
    image = torch.full((3, 6, 10), 7, dtype=torch.uint8)
    image[0] = 200  # blue in BGR
    sample = SegDataSample()
    sample.gt_sem_seg = PixelData(data=torch.zeros(1, 6, 10, dtype=torch.long))
    out = preprocessor(dict(inputs=[image], data_samples=[sample]), True)
    kept = out['data_samples'][0].superpixel_image
    assert kept.shape == (3, 8, 12) and out['inputs'].shape[-2:] == (8, 12)
    assert kept[:, :6, :10].flatten(1).unique(dim=1).tolist() == [[7], [7], [200]]  # now RGB
    assert kept[:, 6:].flatten(1).unique(dim=1).tolist() == [[100], [110], [120]]


def test_sample_superpixels_reads_seg_and_cls_samples():
    seg = SegDataSample()
    seg.superpixels = PixelData(data=torch.ones(1, 4, 5, dtype=torch.long))
    assert sample_superpixels([seg])[0].shape == (4, 5)
    cls = SegDataSample()
    cls.set_field(torch.zeros(2, 4, 5, dtype=torch.long), 'superpixels')
    assert sample_superpixels([cls])[0].shape == (2, 4, 5)
    assert sample_superpixels([SegDataSample()]) is None
    with pytest.raises(ValueError, match=r'sample 1 carries no superpixels \(1 of 2'):
        sample_superpixels([seg, SegDataSample()])
    with pytest.raises(ValueError, match='SEEDSSuperpixels'):
        sample_superpixels([SegDataSample()], required=True)


def test_slic_batch_equals_per_image_and_both_transforms_are_sources():
    slic = TRANSFORMS.build(dict(type='cast_mm.SLICSuperpixels', num_superpixels=24))
    assert isinstance(slic, SuperpixelSource) and isinstance(SEEDSSuperpixels(), SuperpixelSource)
    photos = np.stack([photo(48, 64), photo(48, 64)[::-1]])
    batch = torch.from_numpy(photos).permute(0, 3, 1, 2).contiguous()
    together = slic.compute_batch(batch)
    assert torch.equal(together[1], torch.from_numpy(slic.compute(photos[1])))
    with pytest.raises(ValueError, match='uint8'):
        slic.compute_batch(batch.float())

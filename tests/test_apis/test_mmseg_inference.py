"""Segmentor inference: whole vs slide, TTA, mmseg APIs, the converted Segmenter, bad inputs."""
import copy
import os.path as osp

import numpy as np
import pytest
import torch
from helpers import photo
from helpers.hub import segmenter_model_cfg
from helpers.seg import CONFIGS, make_ade20k, shrink_seg_config
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmengine.structures import PixelData
from mmseg.apis import MMSegInferencer, inference_model, init_model
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from cast_analysis.parity import compare_outputs
from cast_mm.checkpoints import convert_official_checkpoint
from cast_mm.datasets import PackSuperpixelSegInputs, SEEDSSuperpixels
from cast_mm.models.segmentors import window_starts


@pytest.fixture(scope='module')
def tiny_cfg(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('seg')
    cfg = Config.fromfile(osp.join(CONFIGS, 'cast-s_ade20k.py'))
    return shrink_seg_config(cfg, str(tmp / 'work'), make_ade20k(str(tmp / 'ade')))


@pytest.fixture(scope='module')
def tiny_model(tiny_cfg):
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(tiny_cfg.model)
    model.init_weights()
    return model.eval()


def _batch(image_bgr: np.ndarray, superpixels: bool = True):
    results = dict(img=image_bgr, img_shape=image_bgr.shape[:2], ori_shape=image_bgr.shape[:2])
    if superpixels:
        results = SEEDSSuperpixels(preset='seg').transform(results)
    packed = PackSuperpixelSegInputs(meta_keys=('img_shape', 'ori_shape')).transform(results)
    return dict(inputs=[packed['inputs']], data_samples=[packed['data_samples']])


def test_window_starts_cover_the_image():
    assert window_starts(64, 64, 48) == [0]
    assert window_starts(100, 64, 48) == [0, 36]
    assert window_starts(512, 512, 512) == [0]
    assert window_starts(683, 512, 341) == [0, 171]
    with pytest.raises(ValueError, match='positive'):
        window_starts(10, 0, 1)


def test_slide_with_one_window_equals_whole(tiny_model):
    data = tiny_model.data_preprocessor(_batch(photo()), False)
    tiny_model.test_cfg.mode = 'whole'
    whole = tiny_model.predict(**data)[0].seg_logits.data
    tiny_model.test_cfg.mode = 'slide'  # crop 64 covers the 64 x 64 image: one window
    slide = tiny_model.predict(**data)[0].seg_logits.data
    torch.testing.assert_close(slide, whole)


def test_slide_gives_each_window_its_own_superpixels(tiny_model, monkeypatch):
    seen = []
    compute = tiny_model.superpixel_source.compute
    monkeypatch.setattr(tiny_model.superpixel_source, 'compute',
                        lambda image: seen.append(image.shape) or compute(image))
    data = tiny_model.data_preprocessor(_batch(photo(64, 100), superpixels=False), False)
    tiny_model.test_cfg.mode = 'slide'
    out = tiny_model.predict(**data)
    assert seen == [(64, 64, 3), (64, 64, 3)]  # windows at x = 0 and x = 36
    assert out[0].pred_sem_seg.data.shape == (1, 64, 100)


def test_batch_of_two_is_batch_invariant(tiny_model):
    first, second = _batch(photo()), _batch(photo()[::-1].copy())
    batch = dict(inputs=first['inputs'] + second['inputs'],
                 data_samples=first['data_samples'] + second['data_samples'])
    tiny_model.test_cfg.mode = 'whole'
    together = tiny_model.predict(**tiny_model.data_preprocessor(batch, False))
    alone = tiny_model.predict(**tiny_model.data_preprocessor(first, False))
    torch.testing.assert_close(together[0].seg_logits.data, alone[0].seg_logits.data,
                               rtol=1e-4, atol=1e-4)


def test_missing_superpixels_name_the_transform(tiny_model):
    data = tiny_model.data_preprocessor(_batch(photo(), superpixels=False), False)
    tiny_model.test_cfg.mode = 'whole'
    with pytest.raises(ValueError, match=r"cast_mm\.SEEDSSuperpixels"):
        tiny_model.predict(**data)
    with pytest.raises(ValueError, match=r"cast_mm\.SEEDSSuperpixels"):
        tiny_model.loss(data['inputs'], data['data_samples'])


def test_mis_sized_superpixels_are_refused(tiny_model):
    results = dict(img=photo(), superpixels=np.zeros((32, 32), np.int64))
    with pytest.raises(ValueError, match='SEEDSSuperpixels must come after'):
        PackSuperpixelSegInputs().transform(results)
    batch = _batch(photo())
    batch['data_samples'][0].superpixels = PixelData(data=torch.zeros(1, 60, 64).long())
    with pytest.raises(ValueError, match='does not match its image'):
        tiny_model.data_preprocessor(batch, False)


def test_no_cast_backbone_is_refused(tiny_cfg):
    cfg = tiny_cfg.model.copy()
    cfg.backbone = dict(cfg.backbone, mode='classification')
    with DefaultScope.overwrite_default_scope('mmseg'), \
            pytest.raises(ValueError, match="mode='segmentation'"):
        MODELS.build(cfg)


@pytest.mark.slow
def test_mmseg_apis_and_inferencer(tiny_cfg, tmp_path):
    cfg = tiny_cfg.copy()
    cfg.train_cfg.max_iters = 1
    runner = Runner.from_cfg(cfg)
    runner.train()
    checkpoint = osp.join(cfg.work_dir, 'iter_1.pth')
    model = init_model(cfg, checkpoint, device='cpu')
    image_path = runner.val_dataloader.dataset.get_data_info(0)['img_path']
    result = inference_model(model, image_path)
    assert result.pred_sem_seg.data.shape == (1, 64, 80)
    odd = np.random.default_rng(0).integers(0, 255, (57, 91, 3), dtype=np.uint8)
    assert inference_model(model, odd).pred_sem_seg.data.shape == (1, 57, 91)
    results = inference_model(model, [odd, odd])
    assert len(results) == 2
    inferencer = MMSegInferencer(model=cfg, weights=checkpoint, device='cpu')
    out = inferencer([image_path, odd], out_dir=str(tmp_path / 'vis'))
    assert len(out['predictions']) == 2
    assert len(list((tmp_path / 'vis' / 'vis').iterdir())) >= 1


def _tta_config(cfg, ratios, flips):
    cfg = copy.deepcopy(cfg)
    cfg.model.test_cfg.mode = 'whole'
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    tta = cfg.test_dataloader.dataset.pipeline[1].transforms
    tta[0] = [dict(type='Resize', scale_factor=r, keep_ratio=True) for r in ratios]
    tta[1] = [dict(type='RandomFlip', prob=p, direction='horizontal') for p in flips]
    cfg.tta_model.module = cfg.model
    cfg.model = cfg.tta_model
    return cfg


def _runner(cfg):
    cfg.randomness = dict(seed=0)  # the same random tiny model in every runner
    return Runner.from_cfg(cfg)


def _first_prediction(runner):
    with torch.no_grad():
        return runner.model.test_step(next(iter(runner.test_dataloader)))[0]


def test_test_time_augmentation(tiny_cfg):
    """One TTA branch (scale 1, no flip) is the plain prediction (the same scores, the same
    labels); scales and flips also run through a whole test."""
    plain_cfg = copy.deepcopy(tiny_cfg)
    plain_cfg.model.test_cfg.mode = 'whole'
    plain = _first_prediction(_runner(plain_cfg))
    single = _first_prediction(_runner(_tta_config(tiny_cfg, ratios=(1.0, ), flips=(0., ))))
    torch.testing.assert_close(single.seg_logits.data, plain.seg_logits.data, rtol=1e-5,
                               atol=1e-6)
    assert torch.equal(single.pred_sem_seg.data, plain.pred_sem_seg.data)
    several = _tta_config(tiny_cfg, ratios=(0.75, 1.0), flips=(0., 1.))
    metrics = _runner(several).test()
    assert set(metrics) == {'aAcc', 'mIoU', 'mAcc'}
    flipped = _first_prediction(_runner(_tta_config(tiny_cfg, ratios=(1.0, ), flips=(1., ))))
    assert not torch.allclose(flipped.seg_logits.data, single.seg_logits.data)  # flip is used


def _segmenter_model_cfg(public_fixture):
    case = public_fixture['cases']['segmenter_seg']
    return segmenter_model_cfg(public_fixture), convert_official_checkpoint(case['checkpoint'])


def test_converted_segmenter_checkpoint_matches_the_official_outputs(public_fixture):
    """uint8 images -> data preprocessor -> segmentor, against the official Segmenter."""
    case = public_fixture['cases']['segmenter_seg']
    model_cfg, converted = _segmenter_model_cfg(public_fixture)
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(model_cfg)
    model.load_state_dict(converted.state_dict(), strict=True)
    model.eval()
    samples = []
    for sp in case['superpixels']:
        sample = SegDataSample()
        sample.superpixels = PixelData(data=sp[None])
        samples.append(sample)
    data = model.data_preprocessor(dict(inputs=list(case['images_uint8']),
                                        data_samples=samples), False)
    with torch.no_grad():
        logits = model._forward(**data)
    rows = compare_outputs('segmenter_seg', dict(seg_logits=logits),
                           dict(seg_logits=case['outputs']['seg_logits']))
    assert rows and all(row.ok for row in rows), [row.format() for row in rows]


def test_init_model_loads_a_converted_segmenter_checkpoint(public_fixture, tmp_path):
    model_cfg, converted = _segmenter_model_cfg(public_fixture)
    checkpoint = tmp_path / 'segmenter.pth'
    torch.save(converted.to_mmengine(), checkpoint)
    cfg = Config(dict(model=model_cfg, default_scope='mmseg', test_pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='cast_mm.SEEDSSuperpixels', preset='seg'),
        dict(type='cast_mm.PackSuperpixelSegInputs')]))
    model = init_model(cfg, str(checkpoint), device='cpu')
    torch.testing.assert_close(model.decode_head.decoder.cls_emb,
                               converted.decoder['cls_emb'])
    image = public_fixture['cases']['segmenter_seg']['images_uint8'][0]
    result = inference_model(model, image.permute(1, 2, 0).flip(-1).numpy().copy())
    assert result.pred_sem_seg.data.shape == (1, 96, 96)


def test_device_superpixels_need_no_pipeline_transform(tiny_cfg):
    cfg = tiny_cfg.model.copy()
    cfg.device_superpixels = dict(pixels_per_superpixel=64, num_iterations=3)
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg)
    model.init_weights()
    batch = _batch(photo(), superpixels=False)
    sample = batch['data_samples'][0]
    sample.gt_sem_seg = PixelData(data=torch.randint(0, 150, (1, 64, 64)))
    data = model.data_preprocessor(batch, True)
    losses = model.loss(data['inputs'], data['data_samples'])
    losses['decode.loss_ce'].backward()
    superpixels = model.batch_superpixels(data['inputs'], data['data_samples'])
    assert superpixels.shape == (1, 64, 64) and superpixels.max() >= 16
    model.eval()
    model.test_cfg.mode = 'whole'
    out = model.predict(**model.data_preprocessor(_batch(photo(), superpixels=False), False))
    assert out[0].pred_sem_seg.data.shape == (1, 64, 64)
    with pytest.raises(ValueError, match='unknown keys'):
        with DefaultScope.overwrite_default_scope('mmseg'):
            MODELS.build(dict(cfg, device_superpixels=dict(budget=3)))

"""The segmentor's test_cfg is checked when the model is built, and inference honours it."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmseg.registry import MODELS
from seg_helpers import CONFIGS, shrink_seg_config

from cast_mm.datasets import PackSuperpixelSegInputs
from cast_mm.models.segmentors import check_test_cfg


@pytest.fixture(scope='module')
def tiny_model_cfg(tmp_path_factory):
    cfg = Config.fromfile(osp.join(CONFIGS, 'cast-s_ade20k.py'))
    return shrink_seg_config(cfg, str(tmp_path_factory.mktemp('work'))).model


def _build(model_cfg, **test_cfg):
    cfg = model_cfg.copy()
    cfg.test_cfg = test_cfg
    with DefaultScope.overwrite_default_scope('mmseg'):
        return MODELS.build(cfg)


@pytest.mark.parametrize('test_cfg, message', [
    (dict(mode='slid'), r"mode must be one of \('whole', 'slide'\), got 'slid'"),
    (dict(mode='slide', crop_size=(64, 64), stride=(80, 48)),
     r'stride \(80, 48\) is larger than the window \(64, 64\) in height'),
    (dict(mode='slide', crop_size=(64, 64), stride=(48, 0)), 'two positive integers'),
    (dict(mode='slide', crop_size=(64, ), stride=(48, 48)), 'two positive integers'),
    (dict(mode='slide', stride=(48, 48)), r"mode='slide' needs test_cfg\.crop_size"),
    (dict(mode='whole', strides=(48, 48)), r"unknown keys \['strides'\]"),
])
def test_bad_test_cfg_is_refused_at_build(tiny_model_cfg, test_cfg, message):
    with pytest.raises(ValueError, match=message):
        _build(tiny_model_cfg, **test_cfg)


def test_good_test_cfgs_build(tiny_model_cfg):
    assert _build(tiny_model_cfg).test_cfg.mode == 'whole'
    assert _build(tiny_model_cfg, mode='whole', crop_size=(64, 64), stride=(48, 48))
    model = _build(tiny_model_cfg, mode='slide', crop_size=(64, 64), stride=(64, 64))
    assert model.test_cfg.stride == (64, 64)
    assert check_test_cfg(None) == dict(mode='whole')


def _packed(height: int, width: int):
    image = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    packed = PackSuperpixelSegInputs(meta_keys=('img_shape', 'ori_shape')).transform(
        dict(img=image, img_shape=(height, width), ori_shape=(height, width)))
    return dict(inputs=[packed['inputs']], data_samples=[packed['data_samples']])


def test_slide_with_stride_equal_to_the_crop_scores_every_pixel(tiny_model_cfg):
    torch.manual_seed(0)
    model = _build(tiny_model_cfg, mode='slide', crop_size=(64, 64), stride=(64, 64)).eval()
    data = model.data_preprocessor(_packed(64, 150), False)
    with torch.no_grad():
        logits = model.predict(**data)[0].seg_logits.data
    assert logits.shape[-2:] == (64, 150) and torch.isfinite(logits).all()


def test_a_mode_changed_after_build_is_refused_at_inference(tiny_model_cfg):
    model = _build(tiny_model_cfg, mode='whole').eval()
    model.test_cfg.mode = 'slid'
    data = model.data_preprocessor(_packed(32, 32), False)
    with pytest.raises(ValueError, match="'whole', 'slide'"):
        model.predict(**data)

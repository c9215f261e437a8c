"""The segmentor's test_cfg is checked when the model is built, and inference honours it."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import DefaultScope
from mmseg.registry import MODELS

from cast_mm.datasets import PackSuperpixelSegInputs
from cast_mm.models.segmentors import SuperpixelInputs, check_test_cfg, window_fit_size


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
    (dict(mode='slide', crop_size=(64, 64), stride=(48, 48), resize_to_window='yes'),
     "resize_to_window must be True or False, got 'yes'"),
])
def test_bad_test_cfg_is_refused_at_build(tiny_seg_model_cfg, test_cfg, message):
    with pytest.raises(ValueError, match=message):
        _build(tiny_seg_model_cfg, **test_cfg)


def test_good_test_cfgs_build(tiny_seg_model_cfg):
    assert _build(tiny_seg_model_cfg).test_cfg.mode == 'whole'
    assert _build(tiny_seg_model_cfg, mode='whole', crop_size=(64, 64), stride=(48, 48))
    model = _build(tiny_seg_model_cfg, mode='slide', crop_size=(64, 64), stride=(64, 64))
    assert model.test_cfg.stride == (64, 64)
    assert check_test_cfg(None) == dict(mode='whole')


def _packed(height: int, width: int):
    image = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    packed = PackSuperpixelSegInputs(meta_keys=('img_shape', 'ori_shape')).transform(
        dict(img=image, img_shape=(height, width), ori_shape=(height, width)))
    return dict(inputs=[packed['inputs']], data_samples=[packed['data_samples']])


def test_slide_with_stride_equal_to_the_crop_scores_every_pixel(tiny_seg_model_cfg):
    torch.manual_seed(0)
    model = _build(tiny_seg_model_cfg, mode='slide', crop_size=(64, 64), stride=(64, 64)).eval()
    data = model.data_preprocessor(_packed(64, 150), False)
    with torch.no_grad():
        logits = model.predict(**data)[0].seg_logits.data
    assert logits.shape[-2:] == (64, 150) and torch.isfinite(logits).all()


def test_a_mode_changed_after_build_is_refused_at_inference(tiny_seg_model_cfg):
    model = _build(tiny_seg_model_cfg, mode='whole').eval()
    model.test_cfg.mode = 'slid'
    data = model.data_preprocessor(_packed(32, 32), False)
    with pytest.raises(ValueError, match="'whole', 'slide'"):
        model.predict(**data)


@pytest.mark.parametrize('size, crop, fit', [
    ((600, 700), (512, 512), None),          # fits: not resized
    ((512, 512), (512, 512), None),
    ((300, 1200), (512, 512), (512, 2048)),  # the shorter side becomes the window's
    ((1200, 300), (512, 512), (2048, 512)),
    ((100, 100), (512, 512), (512, 512)),
    ((333, 500), (480, 480), (480, 720)),    # int(500 / 333 * 480) = 720
    ((600, 100), (64, 128), (768, 128)),     # the width needs the larger scale
])
def test_window_fit_size_is_the_official_resize(size, crop, fit):
    assert window_fit_size(size, crop) == fit


def test_resize_to_window_slides_the_resized_image_and_scores_the_input_size(tiny_seg_model_cfg):
    """An image smaller than the window is resized up (bilinear, aspect kept), slid over, and
    its scores resized back; without the option it gets one window of its own size."""
    torch.manual_seed(0)
    slide = dict(mode='slide', crop_size=(64, 64), stride=(48, 48))
    model = _build(tiny_seg_model_cfg, **slide, resize_to_window=True).eval()
    plain = _build(tiny_seg_model_cfg, **slide).eval()
    plain.load_state_dict(model.state_dict())
    data = model.data_preprocessor(_packed(40, 150), False)
    inputs, samples = data['inputs'], data['data_samples']
    metas = [sample.metainfo for sample in samples]
    with torch.no_grad():
        scores = model.inference(inputs, metas, model.superpixel_inputs(inputs, samples))
        fit = window_fit_size((40, 150), (64, 64))
        assert fit == (64, 240)
        resized = plain.slide_inference(
            F.interpolate(inputs, size=fit, mode='bilinear', align_corners=False), metas,
            plain.superpixel_inputs(inputs, samples).resized(fit))
        expected = F.interpolate(resized, size=(40, 150), mode='bilinear', align_corners=False)
        unresized = plain.inference(inputs, metas, plain.superpixel_inputs(inputs, samples))
    assert scores.shape[-2:] == (40, 150) and torch.isfinite(scores).all()
    torch.testing.assert_close(scores, expected, rtol=0, atol=0)
    assert not torch.allclose(scores, unresized, atol=1e-3)  # the option changes the protocol


def test_superpixel_inputs_resize_like_the_normalised_batch():
    images = torch.randint(0, 256, (1, 3, 10, 20), dtype=torch.uint8)
    resized = SuperpixelInputs(images=images).resized((20, 40)).images
    exact = F.interpolate(images.float(), size=(20, 40), mode='bilinear', align_corners=False)
    assert resized.dtype == torch.uint8 and resized.shape == (1, 3, 20, 40)
    assert torch.equal(resized, exact.to(torch.uint8))  # truncated, as the official astype
    assert SuperpixelInputs(maps=torch.zeros(1, 10, 20)).resized((20, 40)).maps is None


def test_whole_prediction_by_superpixel_equals_mmseg_post_processing(tiny_seg_model_cfg):
    """Whole-image predictions take each superpixel's argmax once; the data samples are those
    of mmseg's per-pixel argmax, and images it would crop or resize keep mmseg's path."""
    from mmseg.models.segmentors import EncoderDecoder
    model = _build(tiny_seg_model_cfg, mode='whole').eval()
    head_scores = model.decode_head.segment_scores

    def varied_scores(feats):  # an untrained head scores every superpixel alike
        scores = head_scores(feats)
        gen = torch.Generator().manual_seed(0)
        return scores + torch.randn(scores.shape, generator=gen)

    model.decode_head.segment_scores = varied_scores
    from cast_mm.datasets import SEEDSSuperpixels
    rng = np.random.default_rng(0)
    batch = dict(inputs=[], data_samples=[])
    for _ in range(2):
        image = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        results = SEEDSSuperpixels().transform(dict(img=image, img_shape=(48, 64),
                                                    ori_shape=(48, 64)))
        packed = PackSuperpixelSegInputs(meta_keys=('img_shape', 'ori_shape')).transform(results)
        batch['inputs'].append(packed['inputs'])
        batch['data_samples'].append(packed['data_samples'])
    data = model.data_preprocessor(batch, False)
    metas = [s.metainfo for s in data['data_samples']]
    assert model.predicts_by_segments(data['inputs'], metas)
    with torch.no_grad():
        got = model.predict(data['inputs'], [s.clone() for s in data['data_samples']])
        superpixels = model.superpixel_inputs(data['inputs'], data['data_samples'])
        logits = model.inference(data['inputs'], metas, superpixels)
        want = EncoderDecoder.postprocess_result(model, logits,
                                                 [s.clone() for s in data['data_samples']])
    for g, w in zip(got, want):
        assert torch.equal(g.seg_logits.data, w.seg_logits.data)
        assert torch.equal(g.pred_sem_seg.data, w.pred_sem_seg.data)
        assert g.pred_sem_seg.data.dtype == w.pred_sem_seg.data.dtype
    assert len(torch.unique(got[0].pred_sem_seg.data)) > 1
    # Scores that mmseg resizes to another original shape, or flips, are not shortcut.
    for meta in (dict(ori_shape=(40, 60)), dict(flip=True, flip_direction='horizontal')):
        samples = [s.clone() for s in data['data_samples']]
        for s in samples:
            s.set_metainfo(meta)
        assert not model.predicts_by_segments(data['inputs'], [s.metainfo for s in samples])
    slide = _build(tiny_seg_model_cfg, mode='slide', crop_size=(48, 48), stride=(32, 32))
    assert not slide.predicts_by_segments(data['inputs'], metas)
    off = tiny_seg_model_cfg.copy()
    off.predict_by_segments = False
    assert not _build(off, mode='whole').predicts_by_segments(data['inputs'], metas)
    off.predict_by_segments = 'no'
    with pytest.raises(TypeError, match="predict_by_segments must be True or False, got 'no'"):
        _build(off, mode='whole')

"""Odd inputs through every entry point a user meets: mmseg ``inference_model`` (whole and slide),
mmpretrain's ``ImageClassificationInferencer`` and ``tools/visualize_hierarchy.py``.

Each input gives a prediction of its own size (a class score vector for classification, level
pictures for the hierarchy tool) or a clear error that names the problem.
"""
import copy
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from helpers import TINY_ARCH, TINY_CLUSTERS, blurred_noise, load_tool, write_tiny_backbone
from helpers.seg import CONFIGS, shrink_seg_config
from mmengine.config import Config

from cast_mm.datasets.transforms import CheckImage, SEEDSSuperpixels
from cast_mm.utils.images import three_channel_image, uint8_image


def _bgra(height, width):
    image = cv2.cvtColor(blurred_noise(height, width), cv2.COLOR_BGR2BGRA)
    image[::2, :, 3] = 0  # transparent rows: the alpha channel is dropped, not blended
    return image


def _two_colour(height=40, width=60):
    image = np.zeros((height, width, 3), np.uint8)
    image[:, width // 2:] = (200, 30, 90)
    return image


def _write(path, image):
    assert cv2.imwrite(str(path), image)
    return str(path)


#: name -> (make(tmp_path) -> path or array, (height, width) of the expected prediction).
GOOD = {
    'grey file': (lambda t: _write(t / 'grey.png', blurred_noise(37, 53)[..., 0]), (37, 53)),
    'RGBA file': (lambda t: _write(t / 'rgba.png', _bgra(37, 53)), (37, 53)),
    '16-bit file': (lambda t: _write(t / 'deep.png', blurred_noise(37, 53).astype(np.uint16) * 257),
                    (37, 53)),
    'grey H x W array': (lambda t: blurred_noise(37, 53)[..., 0], (37, 53)),
    'grey H x W x 1 array': (lambda t: blurred_noise(37, 53)[..., :1], (37, 53)),
    'RGBA array': (lambda t: _bgra(37, 53), (37, 53)),
    'float array 0..1': (lambda t: blurred_noise(37, 53).astype(np.float32) / 255, (37, 53)),
    'float array 0..255': (lambda t: blurred_noise(37, 53).astype(np.float64), (37, 53)),
    'uint16 array': (lambda t: blurred_noise(37, 53).astype(np.uint16) * 257, (37, 53)),
    '1 x 1': (lambda t: blurred_noise(1, 1), (1, 1)),
    '7 x 9': (lambda t: blurred_noise(7, 9), (7, 9)),
    '20 x 900': (lambda t: blurred_noise(20, 900), (20, 900)),
    'uniform': (lambda t: np.full((40, 60, 3), 128, np.uint8), (40, 60)),
    'two-colour': (lambda t: _two_colour(), (40, 60)),
}
FILE_CASES = ['grey file', 'RGBA file', '16-bit file']


def _garbage_file(tmp_path):
    path = tmp_path / 'broken.png'
    path.write_bytes(b'\x89PNG this is not an image')
    return str(path)


#: name -> (make(tmp_path), exception type, message pattern).
BAD = {
    'missing file': (lambda t: str(t / 'no_such_image.png'), Exception, 'no_such_image.png'),
    'unreadable file': (_garbage_file, Exception, 'broken.png'),
    '0 x 0 array': (lambda t: np.zeros((0, 0, 3), np.uint8), ValueError,
                    r'empty image \(0 x 0 pixels\)'),
    'normalised float array': (lambda t: (blurred_noise(37, 53) - 120.0) / 58.0, ValueError,
                               'before mean / std normalisation'),
    'complex array': (lambda t: blurred_noise(37, 53).astype(np.complex64), ValueError,
                      'dtype complex64'),
}


# ---------------------------------------------------------------- the transforms themselves
@pytest.mark.parametrize('name', [n for n in GOOD if n not in FILE_CASES])
def test_superpixel_transform_takes_every_array(name, tmp_path):
    make, (height, width) = GOOD[name]
    results = SEEDSSuperpixels(preset='seg').transform(dict(img=make(tmp_path)))
    assert results['superpixels'].shape == (height, width)
    assert results['img'].shape == (height, width, 3)  # packed as three channels


def test_check_image_converts_arrays_as_files_load(tmp_path):
    photo = blurred_noise(37, 53)
    check = CheckImage()
    for name in ('grey file', 'RGBA file', '16-bit file'):
        loaded = cv2.imread(GOOD[name][0](tmp_path), cv2.IMREAD_COLOR)  # LoadImageFromFile's
        array = {'grey file': photo[..., 0], 'RGBA file': _bgra(37, 53),
                 '16-bit file': photo.astype(np.uint16) * 257}[name]
        np.testing.assert_array_equal(check.transform(dict(img=array))['img'], loaded)
    for image in (photo.astype(np.float32) / 255, photo.astype(np.float64)):
        np.testing.assert_array_equal(check.transform(dict(img=image))['img'], photo)
    assert check.transform(dict(img=photo))['img'] is photo  # nothing to do: no copy
    dark = np.full((4, 4, 3), 1.0)  # read as 0..1 by default, as 0..255 when told
    assert check.transform(dict(img=dark))['img'].max() == 255
    assert CheckImage(float_range='0-255').transform(dict(img=dark))['img'].max() == 1
    assert uint8_image(np.array([[True, False]])).tolist() == [[255, 0]]
    assert uint8_image(np.array([[0, 255]], np.int64)).dtype == np.uint8


def test_check_image_errors_name_the_problem():
    with pytest.raises(ValueError, match=r'empty image \(0 x 5 pixels\)'):
        CheckImage().transform(dict(img=np.zeros((0, 5, 3), np.uint8)))
    with pytest.raises(ValueError, match='could not be read'):
        CheckImage().transform(dict(img=None))
    with pytest.raises(ValueError, match=r'1, 3 or 4 channels, got shape \(4, 4, 2\)'):
        three_channel_image(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match='empty image'):
        SEEDSSuperpixels().transform(dict(img=np.zeros((0, 0), np.uint8)))
    with pytest.raises(ValueError, match=r'dtype int32 with values -1\.\.300'):
        uint8_image(np.array([[-1, 300]], np.int32))
    with pytest.raises(ValueError, match='NaN or infinite'):
        uint8_image(np.array([[0.5, np.nan]]))
    with pytest.raises(ValueError, match=r'values 0\.5\.\.2, outside 0\.\.1'):
        CheckImage(float_range='0-1').transform(dict(img=np.array([[0.5, 2.0]])))
    with pytest.raises(ValueError, match='float_range must be one of'):
        CheckImage(float_range='0-65535')


# ------------------------------------------------------------------ mmseg inference_model
def _seg_model(work_dir, num_classes=None):
    from mmseg.apis import init_model
    cfg = Config.fromfile(osp.join(CONFIGS, 'cast-s_ade20k.py'))
    shrink_seg_config(cfg, str(work_dir))
    if num_classes is not None:
        cfg.model.decode_head.num_classes = num_classes
    torch.manual_seed(0)
    return init_model(cfg, None, device='cpu')


@pytest.fixture(scope='module')
def seg_model(tmp_path_factory):
    return _seg_model(tmp_path_factory.mktemp('work'))


@pytest.fixture(params=['whole', 'slide'])
def seg_mode(request, seg_model):
    saved = seg_model.test_cfg.mode
    seg_model.test_cfg.mode = request.param
    yield seg_model
    seg_model.test_cfg.mode = saved


def _infer(model, image):
    from mmseg.apis import inference_model

    # mmseg 1.2.2's inference_model rewrites the first step of cfg.test_pipeline in place to
    # LoadImageFromNDArray when given an array, so a later call with a file path fails with
    # KeyError 'img'; each call here starts from the config's own pipeline.
    saved = copy.deepcopy(model.cfg.test_pipeline)
    try:
        with torch.no_grad():
            return inference_model(model, image)
    finally:
        model.cfg.test_pipeline = saved


@pytest.mark.parametrize('name', list(GOOD))
def test_segmentation_predicts_the_input_size(name, seg_mode, tmp_path):
    make, size = GOOD[name]
    result = _infer(seg_mode, make(tmp_path))
    assert tuple(result.pred_sem_seg.data.shape) == (1, *size)


@pytest.mark.parametrize('name', list(BAD))
def test_segmentation_refuses_bad_inputs_clearly(name, seg_mode, tmp_path):
    make, error, pattern = BAD[name]
    with pytest.raises(error, match=pattern):
        _infer(seg_mode, make(tmp_path))


@pytest.mark.slow
def test_segmentation_of_a_4000_x_6000_image_in_slide_mode(tmp_path):
    """The test pipeline resizes the image into its scale; windows cover the resized image and
    the prediction is scaled back to 4000 x 6000. mmseg keeps per-class scores at the input's
    size (classes x 4000 x 6000 float32: 14.4 GB for ADE20K's 150 classes), so the model here
    has 4 classes (384 MB of scores)."""
    model = _seg_model(tmp_path, num_classes=4)
    model.test_cfg.mode = 'slide'
    image = cv2.resize(blurred_noise(400, 600), (6000, 4000), interpolation=cv2.INTER_NEAREST)
    result = _infer(model, image)
    assert tuple(result.pred_sem_seg.data.shape) == (1, 4000, 6000)
    assert tuple(result.seg_logits.data.shape) == (4, 4000, 6000)


# ------------------------------------------------------- mmpretrain ImageClassificationInferencer
@pytest.fixture(scope='module')
def classifier(tmp_path_factory):
    from mmengine.registry import DefaultScope
    from mmpretrain.apis import ImageClassificationInferencer
    shipped = Config.fromfile(osp.join(CONFIGS, 'cast-s_8xb128_in1k.py'))
    pipeline = shipped.test_dataloader.dataset.pipeline
    for step in pipeline:  # the shipped steps, at 32 pixels
        if step['type'] == 'ResizeEdge':
            step['scale'] = 36
        elif step['type'] == 'CenterCrop':
            step['crop_size'] = 32
    text = (f"_base_ = [{osp.join(CONFIGS, 'cast-s_8xb128_in1k.py')!r}]\n"
            f"model = dict(backbone=dict(arch=dict(_delete_=True, **{TINY_ARCH!r}), "
            f"num_clusters={TINY_CLUSTERS!r}, img_size=32), "
            f"head=dict(num_classes=5, in_channels={TINY_ARCH['embed_dims']}))\n"
            f"test_dataloader = dict(dataset=dict(pipeline={list(pipeline)!r}))\n")
    path = tmp_path_factory.mktemp('cls') / 'tiny_cls.py'
    path.write_text(text)
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return ImageClassificationInferencer(model=str(path), device='cpu')


@pytest.mark.parametrize('name', list(GOOD))
def test_classification_inferencer_scores_every_input(name, classifier, tmp_path):
    make, _ = GOOD[name]
    result = classifier(make(tmp_path))[0]
    assert len(result['pred_scores']) == 5
    assert np.isfinite(result['pred_scores']).all()


@pytest.mark.parametrize('name', list(BAD))
def test_classification_inferencer_refuses_bad_inputs_clearly(name, classifier, tmp_path):
    make, error, pattern = BAD[name]
    with pytest.raises(error, match=pattern):
        classifier(make(tmp_path))


# ------------------------------------------------------------ tools/visualize_hierarchy.py
def _tool():
    return load_tool('visualize_hierarchy')


@pytest.fixture(scope='module')
def tiny_backbone(tmp_path_factory):
    config, checkpoint, _ = write_tiny_backbone(tmp_path_factory.mktemp('hier'))
    return str(config), str(checkpoint)


def _as_file(name, tmp_path):
    made = GOOD[name][0](tmp_path)
    if isinstance(made, str):
        return made
    if made.dtype != np.uint8:
        pytest.skip('the tool reads image files; a float or 16-bit array is drawn from its file '
                    "form, covered by the '16-bit file' case")
    return _write(tmp_path / 'image.png', made)


@pytest.mark.parametrize('name', list(GOOD))
def test_hierarchy_tool_draws_every_input(name, tiny_backbone, tmp_path):
    path = _as_file(name, tmp_path)
    out = tmp_path / 'out'
    _tool().main([path, *tiny_backbone, '--out', str(out), '--short-side', '32'])
    stem = osp.splitext(osp.basename(path))[0]
    levels = [cv2.imread(str(out / f'{stem}_level{level}.png')) for level in range(5)]
    assert all(level is not None for level in levels)
    assert len({level.shape for level in levels}) == 1


@pytest.mark.parametrize('name', ['missing file', 'unreadable file'])
def test_hierarchy_tool_refuses_bad_files_clearly(name, tiny_backbone, tmp_path):
    make, _, pattern = BAD[name]
    with pytest.raises((SystemExit, Exception), match=pattern):
        _tool().main([make(tmp_path), *tiny_backbone, '--out', str(tmp_path / 'out')])

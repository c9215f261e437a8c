"""mmpretrain's inference APIs with a cast_mm config and a converted official DeiT checkpoint."""
import os.path as osp
from typing import Union

import cv2
import numpy as np
import pytest
import torch
from helpers import REPO, load_tool
from mmengine.config import Config
from mmengine.dataset import Compose, default_collate
from mmpretrain.apis import ImageClassificationInferencer, get_model, inference_model
from mmpretrain.registry import TRANSFORMS

import cast_mm  # noqa: F401

CLASSES = [f'class_{i}' for i in range(7)]

pytestmark = pytest.mark.usefixtures('mmpretrain_scope')


@pytest.fixture(scope='module')
def converted_deit(public_fixture, tmp_path_factory):
    """The fixture's official DeiT checkpoint, converted with the command-line tool."""
    root = tmp_path_factory.mktemp('deit')
    src, dst = root / 'best_checkpoint.pth', root / 'cast_deit.pth'
    case = public_fixture['cases']['deit_cls']
    torch.save(case['checkpoint'], src)
    tool = load_tool('model_converters/cast_official_to_mm')
    assert tool.main([str(src), str(dst), '--classes', *CLASSES]) == 0  # no --trust-pickle
    return case['config'], str(dst)


@pytest.fixture(scope='module')
def deit_config(converted_deit, tmp_path_factory) -> str:
    """configs/cast/cast-s_8xb128_in1k.py shrunk to the fixture's architecture, as a file."""
    official, _ = converted_deit
    size = official['img_size']
    text = f"""
_base_ = [{osp.join(REPO, 'configs', 'cast', 'cast-s_8xb128_in1k.py')!r}]
model = dict(
    backbone=dict(arch=dict(_delete_=True, embed_dims={official['embed_dim']},
                            depths={official['depth']},
                            num_heads={official['num_heads']}),
                  num_clusters={official['num_clusters']}, img_size={size}),
    head=dict(num_classes={official['num_classes']}, in_channels={official['embed_dim']}))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale={size * 8 // 7}, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size={size}),
    dict(type='cast_mm.SEEDSSuperpixels', preset='deit'),
    dict(type='cast_mm.PackSuperpixelClsInputs'),
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
"""
    path = tmp_path_factory.mktemp('configs') / 'cast-fixture_in1k.py'
    path.write_text(text)
    return str(path)


def image_of_any_size(tmp_path) -> str:
    rng = np.random.default_rng(1)
    img = cv2.GaussianBlur(rng.integers(0, 255, (131, 173, 3), dtype=np.uint8), (9, 9), 3)
    path = str(tmp_path / 'photo.jpg')
    cv2.imwrite(path, img)
    return path


def reference_scores(model, config: Union[str, Config], image: np.ndarray) -> torch.Tensor:
    """Softmax scores computed step by step: test pipeline, preprocessor, classifier."""
    cfg = config if isinstance(config, Config) else Config.fromfile(config)
    steps = [s for s in cfg.test_dataloader.dataset.pipeline if s['type'] != 'LoadImageFromFile']
    pipeline = Compose([TRANSFORMS.build(s) for s in steps])
    packed = pipeline(dict(img=image, img_shape=image.shape[:2], ori_shape=image.shape[:2]))
    crop = [s['crop_size'] for s in steps if s['type'] == 'CenterCrop'][0]
    assert tuple(packed['data_samples'].superpixels.shape) == (crop, crop)
    with torch.no_grad():
        data = model.data_preprocessor(default_collate([packed]), False)
        return model(**data, mode='tensor').softmax(-1)[0]


def test_get_model(converted_deit, deit_config):
    _, checkpoint = converted_deit
    model = get_model(deit_config, pretrained=checkpoint)
    assert tuple(model._dataset_meta['classes']) == tuple(CLASSES)  # from the checkpoint meta
    with torch.no_grad():
        assert torch.equal(model.head.fc.weight,
                           torch.load(checkpoint)['state_dict']['head.fc.weight'])


def test_image_classification_inferencer(converted_deit, deit_config, tmp_path):
    _, checkpoint = converted_deit
    inferencer = ImageClassificationInferencer(model=deit_config, pretrained=checkpoint)
    path = image_of_any_size(tmp_path)
    image = cv2.imread(path)
    by_path, by_array = inferencer([path, image], batch_size=1)
    expected = reference_scores(inferencer.model, deit_config, image)
    for result in (by_path, by_array):
        assert np.allclose(result['pred_scores'], expected.numpy(), atol=1e-6)
        assert result['pred_class'] == CLASSES[int(expected.argmax())]


def test_inference_model_by_name(converted_deit, tmp_path):
    """``inference_model`` finds its inferencer through the model index (``cast_mm.setup_env()``
    registers ``model-index.yml`` with MMPretrain's ModelHub)."""
    official, checkpoint = converted_deit
    model = get_model(
        'cast-s_8xb128_in1k', pretrained=checkpoint,
        backbone=dict(arch=dict(_delete_=True, embed_dims=official['embed_dim'],
                                depths=official['depth'], num_heads=official['num_heads']),
                      num_clusters=official['num_clusters'], img_size=official['img_size']),
        head=dict(num_classes=official['num_classes'], in_channels=official['embed_dim']))
    path = image_of_any_size(tmp_path)
    result = inference_model(model, path)  # the config's own 256 / 224 test pipeline
    expected = reference_scores(model, model._config, cv2.imread(path))
    assert np.allclose(result['pred_scores'], expected.numpy(), atol=1e-6)
    assert result['pred_class'] == CLASSES[result['pred_label']]
    assert result['pred_label'] == int(expected.argmax())

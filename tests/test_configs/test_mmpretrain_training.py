"""The mmpretrain configs of configs/cast/ train, evaluate and resume on a tiny ImageNet layout.

Each test loads a real config and only shrinks it: tiny CAST, 64 px crops, two classes of
synthetic JPEGs in class folders under ``tmp_path``.
"""
import copy
import os.path as osp

import numpy as np
import pytest
import torch
from helpers import grid_superpixels
from helpers.cls import CLS_SIZE, make_image_folder, tiny_cls_config
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmpretrain.structures import DataSample

import cast_mm  # noqa: F401
from cast_mm.registry import MODELS

pytestmark = pytest.mark.usefixtures('mmpretrain_scope')


@pytest.fixture(scope='module')
def image_folder(tmp_path_factory):
    """``train/`` and ``val/`` with two class folders of three 80 x 96 JPEGs each."""
    return make_image_folder(tmp_path_factory.mktemp('tiny_imagenet'))


class CountIters(Hook):
    """Counts training iterations actually run; keeps the weights training started from."""

    def __init__(self):
        self.iters = 0

    def before_train(self, runner):
        self.initial = {k: v.clone() for k, v in runner.model.state_dict().items()}

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.iters += 1
        self.loss = float(outputs['loss'])


def run(cfg: Config, resume: bool = False):
    cfg.resume = resume
    runner = Runner.from_cfg(cfg)
    counter = CountIters()
    runner.register_hook(counter)
    runner.train()
    return runner, counter


def deit_config(image_folder, work_dir) -> Config:
    cfg = tiny_cls_config('cast-s_8xb128_in1k.py', image_folder, work_dir,
                          head=dict(num_classes=2, in_channels=48))
    cfg.model.data_preprocessor = dict(cfg.data_preprocessor, num_classes=2)
    cfg.train_dataloader.batch_size = 3  # 6 images: 2 iterations
    return cfg


def test_supervised_training_mixup_eval_and_resume(image_folder, tmp_path):
    cfg = deit_config(image_folder, tmp_path)
    assert [a['type'] for a in cfg.model.train_cfg.augments] == ['Mixup', 'CutMix']
    runner, counter = run(cfg)
    assert counter.iters == 2 and np.isfinite(counter.loss)
    assert osp.exists(tmp_path / 'epoch_1.pth')
    # validation at the end of the epoch reported top-1 over the 6 val images
    metrics = runner.val_loop.run()
    assert set(metrics) == {'accuracy/top1'}
    correct = metrics['accuracy/top1'] * 6 / 100  # a whole number of the 6 images
    assert correct == pytest.approx(round(correct), abs=1e-4)

    # resume: the second epoch only, from the saved optimizer and weights
    cfg = deit_config(image_folder, tmp_path)
    cfg.train_cfg.max_epochs = 2
    resumed, counter = run(cfg, resume=True)
    assert counter.iters == 2 and resumed.iter == 4 and resumed.epoch == 2
    ckpt = torch.load(tmp_path / 'epoch_2.pth', map_location='cpu', weights_only=False)
    assert ckpt['meta']['epoch'] == 2 and ckpt['meta']['iter'] == 4


def test_mocov3_two_iterations(image_folder, tmp_path):
    cfg = tiny_cls_config('cast-s_mocov3-100e_8xb32_in1k.py', image_folder, tmp_path,
                          neck=dict(in_channels=48, hid_channels=64, out_channels=32),
                          head=dict(predictor=dict(in_channels=32, hid_channels=64,
                                                   out_channels=32)))
    cfg.train_dataloader.batch_size = 3
    runner, counter = run(cfg)
    assert counter.iters == 2 and np.isfinite(counter.loss)
    model = runner.model
    # the momentum encoder moved towards the trained query encoder but is not equal to it
    query = model.backbone.stem.proj[0].weight
    key = model.momentum_encoder.module[0].stem.proj[0].weight
    assert not torch.equal(query, key)


def test_mocov3_coco_config_two_iterations(image_folder, tmp_path):
    cfg = tiny_cls_config('cast-s_mocov3-400e_8xb32_coco.py', image_folder, tmp_path / 'coco',
                          neck=dict(in_channels=48, hid_channels=64, out_channels=32),
                          head=dict(predictor=dict(in_channels=32, hid_channels=64,
                                                   out_channels=32)))
    cfg.train_dataloader.batch_size = 3
    assert cfg.model.backbone.out_type == 'fused_mean'
    assert cfg.train_dataloader.dataset.with_label is False
    _, counter = run(cfg)
    assert counter.iters == 2 and np.isfinite(counter.loss)


def test_linear_probe_keeps_backbone_frozen(image_folder, tmp_path):
    # a MoCo-v3 pre-training checkpoint of this repository initialises the probe's encoder
    pre_cfg = tiny_cls_config('cast-s_mocov3-100e_8xb32_in1k.py', image_folder, tmp_path / 'pre',
                              neck=dict(in_channels=48, hid_channels=64, out_channels=32),
                              head=dict(predictor=dict(in_channels=32, hid_channels=64,
                                                       out_channels=32)))
    pretrained = MODELS.build(pre_cfg.model)
    pretrained.init_weights()
    torch.save(dict(state_dict=pretrained.state_dict()), tmp_path / 'pre.pth')

    cfg = tiny_cls_config('cast-s_mocov3-100e-pre_8xb128-linear-probe-90e_in1k.py', image_folder,
                          tmp_path / 'probe', head=dict(num_classes=2, in_channels=48))
    cfg.model.data_preprocessor = dict(cfg.data_preprocessor, num_classes=2)
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=str(tmp_path / 'pre.pth'),
                                       prefix='backbone.')
    cfg.train_dataloader.batch_size = 3
    runner, counter = run(cfg)
    assert counter.iters == 2
    model = runner.model
    assert not model.backbone.training  # official: the encoder stays in eval mode
    # the encoder was loaded from the pre-training checkpoint and did not change, BN running
    # statistics of the stem included; the head was trained
    expected = pretrained.backbone.state_dict()
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, expected[key]), key
    assert not torch.equal(model.head.fc.weight, counter.initial['head.fc.weight'])


def test_mocov3_pairs_each_view_with_its_superpixels(image_folder, tmp_path):
    """The loss is symmetric in the two views, so swapping views together with their maps
    gives the same loss, while swapping the views alone does not."""
    cfg = tiny_cls_config('cast-s_mocov3-100e_8xb32_in1k.py', image_folder, tmp_path,
                          neck=dict(in_channels=48, hid_channels=64, out_channels=32),
                          head=dict(predictor=dict(in_channels=32, hid_channels=64,
                                                   out_channels=32)))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()  # eval: no dropout, BN with running statistics
    views = [torch.randn(2, 3, CLS_SIZE, CLS_SIZE), torch.randn(2, 3, CLS_SIZE, CLS_SIZE)]
    cells = [grid_superpixels(2, CLS_SIZE, CLS_SIZE, cell=8),
             grid_superpixels(2, CLS_SIZE, CLS_SIZE, cell=4)]

    def loss(order, map_order):
        samples = [DataSample(superpixels=torch.stack([cells[v][i] for v in map_order]))
                   for i in range(2)]
        with torch.no_grad():
            return float(copy.deepcopy(model).loss([views[v] for v in order], samples)['loss'])

    aligned = loss([0, 1], [0, 1])
    assert abs(aligned - loss([1, 0], [1, 0])) < 1e-6
    assert abs(aligned - loss([1, 0], [0, 1])) > 1e-4


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('kind', ['deit', 'mocov3'])
def test_loss_step_under_autocast(kind, dtype, image_folder, tmp_path):
    """What ``--amp`` runs (GPU only in MMEngine), here with CPU float16 / bfloat16 autocast."""
    if kind == 'deit':
        cfg = deit_config(image_folder, tmp_path)
    else:
        cfg = tiny_cls_config('cast-s_mocov3-100e_8xb32_in1k.py', image_folder, tmp_path,
                              neck=dict(in_channels=48, hid_channels=64, out_channels=32),
                              head=dict(predictor=dict(in_channels=32, hid_channels=64,
                                                       out_channels=32)))
        cfg.train_dataloader.batch_size = 3
    model = MODELS.build(cfg.model)
    data = model.data_preprocessor(next(iter(Runner.build_dataloader(cfg.train_dataloader))),
                                   True)
    with torch.autocast('cpu', dtype=dtype):
        losses = model(**data, mode='loss')
    loss, _ = model.parse_losses(losses)
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.backbone.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)

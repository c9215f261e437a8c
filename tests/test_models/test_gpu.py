"""What only a CUDA device can show: run with ``pytest -m gpu`` on a machine with one.

Skipped without CUDA (conftest). Each test is the CUDA counterpart of a CPU test: the
training steps fast vs literal, mixed precision, SLIC under autocast, MaskedSyncBN on NCCL,
CUDA random state in checkpoints, deterministic mode, and host syncs per step counted by
CUDA itself (``torch.cuda.set_sync_debug_mode``).
"""
import os.path as osp
import warnings

import numpy as np
import pytest
import torch
import torch.distributed as dist
from helpers import TINY_ARCH, TINY_CLUSTERS, grid_superpixels
from helpers.seg import CONFIGS, dataset_root_for, shrink_seg_config
from mmengine.config import Config
from mmengine.runner import Runner

from cast_mm.models import CAST
from cast_mm.models.utils import MaskedSyncBatchNorm

pytestmark = pytest.mark.gpu
DEVICE = 'cuda'


def _backbone(mode, token_pooling, fused_attn=True, **kwargs):
    torch.manual_seed(0)
    return CAST(arch=TINY_ARCH, mode=mode, num_clusters=TINY_CLUSTERS, img_size=64,
                token_pooling=token_pooling, fused_attn=fused_attn, **kwargs).to(DEVICE)


def _step(model, images, superpixels, mode):
    model.zero_grad()
    feats = model.forward_features(images, superpixels)
    out = feats.fused_tokens if mode == 'segmentation' else feats.cls_feature
    # A fixed random projection: a loss whose gradient is not close to zero everywhere.
    weight = torch.randn(out.shape, generator=torch.Generator().manual_seed(0)).to(out.device)
    loss = (out.float() * weight).sum()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()
                           if p.grad is not None}


@pytest.mark.parametrize('mode', ['segmentation', 'classification'])
def test_fast_and_literal_train_steps_agree_on_cuda(mode):
    images = torch.randn(2, 3, 64, 64, device=DEVICE)
    superpixels = grid_superpixels(2, 64, 64, 8).to(DEVICE)
    fast = _backbone(mode, 'fast', True)
    literal = _backbone(mode, 'literal', False)
    literal.load_state_dict(fast.state_dict())
    for module in [*fast.modules(), *literal.modules()]:
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.  # dropout off: the two models draw their masks differently
    loss_f, grads_f = _step(fast, images, superpixels, mode)
    loss_l, grads_l = _step(literal, images, superpixels, mode)
    assert torch.allclose(loss_f, loss_l, rtol=1e-4, atol=1e-6)
    assert grads_f.keys() == grads_l.keys()
    largest = max(float(g.abs().max()) for g in grads_l.values())
    for name in grads_f:
        scale = max(float(grads_l[name].abs().max()), 1e-4 * largest)  # some are ~0
        assert float((grads_f[name] - grads_l[name]).abs().max()) <= 1e-3 * scale, name


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('mode', ['segmentation', 'classification'])
def test_mixed_precision_train_steps_are_finite_on_cuda(mode, dtype):
    model = _backbone(mode, 'fast')
    images = torch.randn(2, 3, 64, 64, device=DEVICE)
    superpixels = grid_superpixels(2, 64, 64, 8).to(DEVICE)
    with torch.autocast(DEVICE, dtype=dtype):
        feats = model.forward_features(images, superpixels)
        out = feats.fused_tokens if mode == 'segmentation' else feats.cls_feature
        loss = out.float().square().mean()
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_slic_under_cuda_autocast_gives_the_float32_superpixels(dtype):
    from skimage import data

    from cast_mm.superpixels import slic_superpixels
    image = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].repeat(2, 1, 1, 1)
    image = image.to(DEVICE)
    expected = slic_superpixels(image, 1024)
    with torch.autocast(DEVICE, dtype=dtype):
        got = slic_superpixels(image, 1024)
    assert torch.equal(got, expected)


def test_masked_sync_bn_on_nccl_equals_batch_norm(monkeypatch, tmp_path):
    dist.init_process_group('nccl', init_method=f'file://{tmp_path}/rendezvous', rank=0,
                            world_size=1)
    try:
        monkeypatch.setattr(MaskedSyncBatchNorm, 'synchronises', lambda self: True)
        torch.manual_seed(0)
        x = (torch.randn(6, 4, 5, 5, device=DEVICE) * 3 + 1).requires_grad_()
        synced, plain = MaskedSyncBatchNorm(4).to(DEVICE), torch.nn.BatchNorm2d(4).to(DEVICE)
        weight = torch.randn_like(x)
        (synced(x) * weight).sum().backward()
        grad_synced = x.grad.clone()
        x.grad = None
        (plain(x) * weight).sum().backward()
        assert torch.allclose(grad_synced, x.grad, atol=1e-5)
        assert torch.allclose(synced.running_mean, plain.running_mean, atol=1e-6)
        assert torch.allclose(synced.running_var, plain.running_var, atol=1e-5)
    finally:
        dist.destroy_process_group()


def test_cuda_random_state_is_saved_and_restored_by_checkpoints(tmp_path):
    """Dropout on CUDA draws from the CUDA generator: a resumed run equals an uninterrupted
    one only if checkpoints carry that generator's state."""
    from helpers.training import make_runner

    def train(work_dir, max_iters, resume=False):
        runner = make_runner(work_dir, max_iters=max_iters, resume=resume, drop=0.2)
        runner.train()
        return runner

    full = train(tmp_path / 'full', 4)
    assert next(full.model.parameters()).is_cuda
    train(tmp_path / 'split', 2)
    checkpoint = torch.load(tmp_path / 'split' / 'iter_2.pth', weights_only=True)
    assert 'cuda' in checkpoint['resume_state']['rng'][0]
    resumed = train(tmp_path / 'split', 4, resume=True)
    expected = full.model.state_dict()
    for key, value in resumed.model.state_dict().items():
        assert torch.equal(value, expected[key]), key


def _seg_runner(tmp_path, **backbone):
    name = 'cast-s_ade20k.py'
    cfg = Config.fromfile(osp.join(CONFIGS, name))
    shrink_seg_config(cfg, str(tmp_path / 'work'), dataset_root_for(name, tmp_path))
    cfg.model.backbone.update(backbone)
    runner = Runner.from_cfg(cfg)
    runner.model.to(DEVICE).train()
    return runner, cfg


def test_host_syncs_per_segmentation_step_counted_by_cuda(tmp_path):
    runner, cfg = _seg_runner(tmp_path, drop_rate=0.1)
    optim_wrapper = runner.build_optim_wrapper(cfg.optim_wrapper)
    batch = next(iter(runner.build_dataloader(cfg.train_dataloader)))
    runner.model.train_step(batch, optim_wrapper)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('warn')
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            runner.model.train_step(batch, optim_wrapper)
    finally:
        torch.cuda.set_sync_debug_mode('default')
    syncs = [w for w in caught if 'synchroniz' in str(w.message)]
    assert len(syncs) <= 2, [f'{w.filename}:{w.lineno}' for w in syncs]


@pytest.mark.parametrize('token_pooling', ['fast', 'literal'])
def test_deterministic_mode_trains_on_cuda(token_pooling, tmp_path, monkeypatch):
    from cast_mm.utils import prepare_deterministic_environment
    monkeypatch.delenv('CUBLAS_WORKSPACE_CONFIG', raising=False)
    assert prepare_deterministic_environment(dict(randomness=dict(deterministic=True)))
    torch.use_deterministic_algorithms(True)
    try:
        losses = []
        for _ in range(2):
            model = _backbone('segmentation', token_pooling)
            images = torch.randn(2, 3, 64, 64, device=DEVICE,
                                 generator=torch.Generator(DEVICE).manual_seed(1))
            superpixels = grid_superpixels(2, 64, 64, 8).to(DEVICE)
            loss, grads = _step(model, images, superpixels, 'segmentation')
            losses.append((loss, grads))
        (loss_a, grads_a), (loss_b, grads_b) = losses
        assert torch.equal(loss_a, loss_b)
        assert all(torch.equal(grads_a[k], grads_b[k]) for k in grads_a)
    finally:
        torch.use_deterministic_algorithms(False)


def test_whole_image_inference_on_cuda(tmp_path):
    from mmseg.apis import inference_model, init_model
    name = 'cast-s_ade20k.py'
    cfg = Config.fromfile(osp.join(CONFIGS, name))
    shrink_seg_config(cfg, str(tmp_path / 'work'), dataset_root_for(name, tmp_path))
    cfg.model.test_cfg = dict(mode='whole')
    model = init_model(cfg, device=DEVICE)
    image = np.random.default_rng(0).integers(0, 255, (64, 80, 3), dtype=np.uint8)
    result = inference_model(model, image)
    assert result.pred_sem_seg.data.shape[-2:] == (64, 80)

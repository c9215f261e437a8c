"""Mixed precision: what ``--amp`` runs (the loss under autocast, then backward) works with CAST.

MMEngine's ``AmpOptimWrapper`` needs a GPU, so these tests use CPU autocast in bfloat16, which
exercises the same code: every op of the forward either runs in half precision or is kept in
float32 on purpose (sparse segment pooling, float64 farthest point sampling).
"""
import os.path as osp

import pytest
import torch
from conftest import TINY_ARCH, TINY_CLUSTERS, grid_superpixels
from mmengine.config import Config
from mmengine.runner import Runner
from seg_helpers import CONFIGS, dataset_root_for, shrink_seg_config

from cast_mm.models import CAST


def _finite_grads(module: torch.nn.Module) -> bool:
    grads = [p.grad for p in module.parameters() if p.requires_grad and p.grad is not None]
    return bool(grads) and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize('token_pooling,fused_attn', [('fast', True), ('literal', False)])
@pytest.mark.parametrize('mode', ['classification', 'segmentation'])
def test_backbone_forward_and_backward_under_autocast(mode, token_pooling, fused_attn):
    torch.manual_seed(0)
    model = CAST(arch=TINY_ARCH, mode=mode, num_clusters=TINY_CLUSTERS, img_size=64,
                 token_pooling=token_pooling, fused_attn=fused_attn)
    images, superpixels = torch.randn(2, 3, 64, 64), grid_superpixels(2, 64, 64, 8)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        feats = model.forward_features(images, superpixels)
        out = feats.fused_tokens if mode == 'segmentation' else model(images, superpixels)[0]
        loss = out.float().square().mean()
    loss.backward()
    assert torch.isfinite(loss)
    assert _finite_grads(model)


@pytest.mark.parametrize('name', ['cast-s_ade20k.py', 'cast-s_segformer-head_ade20k.py',
                                  'cast-s_voc-finetune.py'])
def test_segmentor_loss_step_under_autocast(name, tmp_path):
    cfg = Config.fromfile(osp.join(CONFIGS, name))
    shrink_seg_config(cfg, str(tmp_path / 'work'), dataset_root_for(name, tmp_path))
    runner = Runner.from_cfg(cfg)
    model = runner.model
    batch = next(iter(runner.build_dataloader(cfg.train_dataloader)))
    data = model.data_preprocessor(batch, True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = model(**data, mode='loss')
    loss, _ = model.parse_losses(losses)
    loss.backward()
    assert torch.isfinite(loss)
    assert _finite_grads(model.backbone) and _finite_grads(model.decode_head)

"""The training configs' optimisers are torch's fused ones: the same updates as the loop.

``fused=True`` runs one kernel per parameter instead of a dozen element-wise operations
(AdamW on the 27M parameters of CAST-S: about 21 ms instead of 75 ms per step on 2 CPU threads,
``tools/analysis/benchmark.py --sections train``), with the same arithmetic up to float rounding.
"""
import copy
import glob
import os.path as osp

import pytest
import torch
import torch.nn as nn
from helpers import REPO, load_config
from mmengine.optim import build_optim_wrapper

CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', 'cast', '*.py')))


class TinyModel(nn.Module):
    """Parameters of every kind the param-wise rules name (norms, biases, tokens)."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Module()
        self.backbone.cls_token = nn.Parameter(torch.randn(1, 1, 8))
        self.backbone.pos_embed = nn.Parameter(torch.randn(1, 5, 8))
        self.backbone.proj = nn.Linear(8, 8)
        self.backbone.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 3)


def training_optimizers():
    for path in CONFIGS:
        cfg = load_config(path)
        if cfg.get('optim_wrapper') is not None and cfg.get('train_cfg') is not None:
            yield pytest.param(cfg.optim_wrapper, id=osp.basename(path))


@pytest.mark.parametrize('optim_cfg', list(training_optimizers()))
def test_fused_optimizer_steps_as_the_loop_does(optim_cfg):
    assert optim_cfg.optimizer.get('fused') is True
    looped_cfg = copy.deepcopy(optim_cfg)
    looped_cfg.optimizer.fused = False
    torch.manual_seed(0)
    fused_model = TinyModel()
    looped_model = copy.deepcopy(fused_model)
    fused = build_optim_wrapper(fused_model, copy.deepcopy(optim_cfg))
    looped = build_optim_wrapper(looped_model, looped_cfg)
    assert fused.optimizer.defaults['fused'] and not looped.optimizer.defaults['fused']
    lr = fused.optimizer.param_groups[0]['lr']
    for step in range(3):
        grads = [torch.randn_like(p) for p in fused_model.parameters()]
        for model, wrapper in ((fused_model, fused), (looped_model, looped)):
            for p, g in zip(model.parameters(), grads):
                p.grad = g.clone()
            wrapper.step()
            wrapper.zero_grad()
    for (name, a), b in zip(fused_model.named_parameters(), looped_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6 * max(lr, 1.), msg=name)
    torch.manual_seed(0)
    start = TinyModel()  # the steps did move the parameters
    assert any(not torch.equal(a, b) for a, b in zip(start.parameters(),
                                                     fused_model.parameters()))

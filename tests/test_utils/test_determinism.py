"""Deterministic mode (``randomness=dict(deterministic=True)``): what CAST does for it.

The CUDA run itself is in tests/test_models/test_gpu.py; here, on CPU: the environment torch
needs is set from the config before the runner is built, and the position/feature resize that
CUDA cannot differentiate deterministically takes the matrix route with the same result.
"""
import os

import pytest
import torch
import torch.nn.functional as F
from helpers import REPO

from cast_mm.models.layers import resize_pos_grid
from cast_mm.utils import load_tool_config, prepare_deterministic_environment


@pytest.fixture
def no_cublas_config(monkeypatch):
    monkeypatch.delenv('CUBLAS_WORKSPACE_CONFIG', raising=False)


def test_cublas_workspace_is_set_only_when_determinism_is_asked(no_cublas_config):
    assert not prepare_deterministic_environment(dict(randomness=dict(seed=0)))
    assert 'CUBLAS_WORKSPACE_CONFIG' not in os.environ
    assert prepare_deterministic_environment(dict(randomness=dict(deterministic=True)))
    assert os.environ['CUBLAS_WORKSPACE_CONFIG'] == ':4096:8'


def test_a_valid_user_setting_is_kept_and_an_invalid_one_replaced(monkeypatch):
    monkeypatch.setenv('CUBLAS_WORKSPACE_CONFIG', ':16:8')
    prepare_deterministic_environment(dict(randomness=dict(deterministic=True)))
    assert os.environ['CUBLAS_WORKSPACE_CONFIG'] == ':16:8'
    monkeypatch.setenv('CUBLAS_WORKSPACE_CONFIG', ':0:0')
    prepare_deterministic_environment(dict(randomness=dict(deterministic=True)))
    assert os.environ['CUBLAS_WORKSPACE_CONFIG'] == ':4096:8'


def test_train_and_test_tools_prepare_the_environment_from_the_config(no_cublas_config):
    config = os.path.join(REPO, 'configs', 'cast', 'cast-s_ade20k.py')
    load_tool_config(config)
    assert 'CUBLAS_WORKSPACE_CONFIG' not in os.environ
    load_tool_config(config, cfg_options={'randomness.deterministic': True})
    assert os.environ['CUBLAS_WORKSPACE_CONFIG'] == ':4096:8'


@pytest.mark.parametrize('mode', ['bilinear', 'bicubic'])
def test_resize_in_deterministic_mode_equals_interpolate(mode, monkeypatch):
    """CPU interpolation is deterministic; CUDA's refusal is played by a patched
    ``F.interpolate`` that raises when asked for a differentiable resize."""
    torch.manual_seed(0)
    grid = torch.randn(2, 7, 9, 5, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(2, 24, 20, 5, dtype=torch.float64)
    expected = F.interpolate(grid.permute(0, 3, 1, 2), size=(24, 20), mode=mode,
                             align_corners=False).permute(0, 2, 3, 1)
    (expected_grad, ) = torch.autograd.grad((expected * weight).sum(), grid)
    interpolate = F.interpolate

    def refusing(input, *args, **kwargs):
        if input.requires_grad and torch.are_deterministic_algorithms_enabled():
            raise RuntimeError('upsample backward does not have a deterministic implementation')
        return interpolate(input, *args, **kwargs)

    monkeypatch.setattr(F, 'interpolate', refusing)
    torch.use_deterministic_algorithms(True)
    try:
        got = resize_pos_grid(grid, (24, 20), mode)
        (got_grad, ) = torch.autograd.grad((got * weight).sum(), grid)
    finally:
        torch.use_deterministic_algorithms(False)
    assert torch.allclose(got, expected, atol=1e-12)
    assert torch.allclose(got_grad, expected_grad, atol=1e-12)

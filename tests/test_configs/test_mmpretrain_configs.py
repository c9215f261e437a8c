"""The full-size models of configs/cast/ have the official architectures (official counts)."""

import pytest
from helpers import load_config
from mmengine.config import Config

import cast_mm  # noqa: F401
from cast_mm.registry import MODELS

#: Official (cast_deit / cast) parameter counts with a 1000-class head, and embed dims.
OFFICIAL = {'s': (28_339_864, 384), 'sd': (35_437_720, 384), 'b': (111_799_624, 768),
            'bd': (140_151_112, 768)}

pytestmark = pytest.mark.usefixtures('mmpretrain_scope')


def config(name: str) -> Config:
    return load_config(name)


def count(module, trainable: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable)


@pytest.mark.parametrize('arch', sorted(OFFICIAL))
def test_deit_configs_match_the_official_models(arch):
    model = MODELS.build(config(f'cast-{arch}_8xb128_in1k.py').model)
    params, dims = OFFICIAL[arch]
    assert count(model) == params
    assert model.backbone.pos_embed_type == 'learned'
    # the last pooling is frozen, as officially (cast_deit.cast_small: 26,561,944 trainable)
    if arch == 's':
        assert count(model, trainable=True) == 26_561_944


@pytest.mark.parametrize('arch', ['s', 'sd', 'b'])
def test_mocov3_and_linear_probe_configs_match_the_official_encoders(arch):
    params, dims = OFFICIAL[arch]
    # cast.py encoders: the sin-cos table (784 x C) and the zero pe_token (C) are buffers here
    encoder = params - (1000 * dims + 1000) - 785 * dims
    probe_cfg = config(f'cast-{arch}_mocov3-100e-pre_8xb128-linear-probe-90e_in1k.py').model
    probe = MODELS.build(probe_cfg)
    assert probe.backbone.pos_embed_type == 'sincos'
    assert count(probe.backbone) == encoder
    assert count(probe, trainable=True) == 1000 * dims + 1000  # the linear head only
    moco_cfg = config(f'cast-{arch}_mocov3-100e_8xb32_in1k.py').model
    # Same encoder; only the training-time settings differ (MoCo initialisation and synchronised
    # BN in pre-training; the probe loads weights and keeps the encoder in eval mode).
    training_only = ('init_cfg', 'norm_cfg')
    assert {k: v for k, v in moco_cfg.backbone.items() if k not in training_only} == \
        {k: v for k, v in probe_cfg.backbone.items() if k not in training_only}
    assert moco_cfg.neck.in_channels == dims
    if arch == 's':  # building the 4096-wide projectors of every arch would only cost time
        moco = MODELS.build(moco_cfg)
        assert count(moco.backbone) == count(moco.momentum_encoder.module[0]) == encoder

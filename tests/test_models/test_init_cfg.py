"""CAST and its heads initialise through MMEngine's init_cfg: each accepted form works or raises."""
import functools
import math

import pytest
import torch
import torch.nn as nn
from helpers import tiny_cast

from cast_mm.models import SuperpixelMaskTransformer
from cast_mm.registry import MODELS

#: A tiny segmentation CAST whose weights are not initialised yet.
bare_cast = functools.partial(tiny_cast, mode='segmentation', init=False)


def saved_backbone(tmp_path, prefix='backbone.'):
    torch.manual_seed(123)
    source = bare_cast()
    for param in source.parameters():
        nn.init.uniform_(param, -3, 3)
    path = tmp_path / 'ckpt.pth'
    torch.save(dict(state_dict={prefix + k: v for k, v in source.state_dict().items()}), path)
    return source, str(path)


def assert_same_weights(model, source):
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


@pytest.mark.parametrize('form', ['dict', 'list'])
def test_pretrained_loads_in_dict_and_list_form(tmp_path, form):
    source, path = saved_backbone(tmp_path)
    entry = dict(type='Pretrained', checkpoint=path, prefix='backbone.')
    model = bare_cast(init_cfg=entry if form == 'dict' else [entry])
    model.init_weights()
    assert_same_weights(model, source)


@pytest.mark.parametrize('form', ['dict', 'list'])
def test_missing_local_checkpoint_names_the_official_weights(tmp_path, form):
    entry = dict(type='Pretrained', checkpoint=str(tmp_path / 'missing.pth'), prefix='backbone.')
    constant = dict(type='Constant', val=1, layer='Linear')
    model = bare_cast(init_cfg=entry if form == 'dict' else [constant, entry])
    with pytest.raises(FileNotFoundError, match='https://huggingface.co/twke/CAST/resolve/main/'):
        model.init_weights()


def test_constant_and_kaiming_entries_apply():
    model = bare_cast(init_cfg=dict(type='Constant', layer='Linear', val=0.5, bias=0.25))
    model.init_weights()
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert linears and all(bool((m.weight == 0.5).all()) for m in linears)
    assert all(bool((m.bias == 0.25).all()) for m in linears if m.bias is not None)

    torch.manual_seed(0)
    model = bare_cast(init_cfg=[dict(type='Kaiming', layer='Conv2d', a=0., mode='fan_in',
                                     nonlinearity='relu', distribution='uniform')])
    model.init_weights()
    conv = model.stem.proj[0]
    bound = math.sqrt(6. / (conv.weight[0].numel()))
    assert conv.weight.abs().max() <= bound and conv.weight.abs().max() > 0.8 * bound


def test_override_initialises_the_named_part_only():
    model = bare_cast(init_cfg=dict(type='Constant', val=0., layer='Linear',
                                    override=dict(type='Constant', name='stem', val=0.75)))
    model.init_weights()
    assert bool((model.stem.proj[0].weight == 0.75).all())
    assert bool((model.stem.proj[1].weight == 0.75).all())  # the stem's BatchNorm too
    assert bool((model.blocks[0].attn.qkv.weight == 0.).all())


def test_pretrained_is_applied_after_the_other_entries(tmp_path):
    source, path = saved_backbone(tmp_path)
    model = bare_cast(init_cfg=[dict(type='Pretrained', checkpoint=path, prefix='backbone.'),
                                dict(type='Constant', layer='Linear', val=0.)])
    model.init_weights()
    assert_same_weights(model, source)


def test_unknown_and_malformed_entries_raise():
    with pytest.raises(KeyError, match='NoSuchInit'):
        bare_cast(init_cfg=dict(type='NoSuchInit')).init_weights()
    with pytest.raises(ValueError, match="dict with a 'type'"):
        bare_cast(init_cfg=[dict(layer='Linear')]).init_weights()
    with pytest.raises(ValueError, match="dict with a 'type'"):
        bare_cast(init_cfg=['Pretrained']).init_weights()


def test_default_init_is_the_official_deit_one():
    torch.manual_seed(0)
    model = bare_cast(mode='classification', pos_embed='learned')
    model.init_weights()
    qkv = model.blocks[0].attn.qkv
    assert 0.015 < float(qkv.weight.std()) < 0.025 and bool((qkv.bias == 0).all())
    assert 0.015 < float(model.pos_embed.std()) < 0.025
    # The graph poolings keep PyTorch's default (uniform, bound 1 / sqrt(fan_in)).
    pool_linear = model.pools[0].fc1[1]
    bound = 1 / math.sqrt(pool_linear.in_features)
    assert float(pool_linear.weight.abs().max()) > 0.9 * bound > 0.1


def test_mocov3_initialiser():
    torch.manual_seed(0)
    model = bare_cast(mode='classification', pos_embed='sincos',
                      init_cfg=dict(type='CASTMoCoV3'))
    model.init_weights()
    checked_qkv = 0
    for name, layer in model.named_modules():
        if not isinstance(layer, nn.Linear):
            continue
        if 'qkv' in name:  # q, k and v as three separate layers
            checked_qkv += 1
            bound = math.sqrt(6. / (layer.out_features // 3 + layer.in_features))
        else:
            bound = math.sqrt(6. / (layer.in_features + layer.out_features))
        peak = float(layer.weight.abs().max())
        assert 0.8 * bound < peak <= bound, name
        if layer.bias is not None:
            assert bool((layer.bias == 0).all()), name
    assert checked_qkv >= len(model.blocks)
    assert float(model.cls_token.abs().max()) < 1e-5 and float(model.cls_token.abs().max()) > 0


def test_mocov3_initialiser_then_pretrained(tmp_path):
    source, path = saved_backbone(tmp_path)
    model = bare_cast(init_cfg=[dict(type='CASTMoCoV3'),
                                dict(type='Pretrained', checkpoint=path, prefix='backbone.')])
    model.init_weights()
    assert_same_weights(model, source)


def test_mask_transformer_decoder_is_initialised_once(monkeypatch):
    calls = []
    original = SuperpixelMaskTransformer.init_weights

    def counting(self):
        calls.append(self)
        original(self)

    monkeypatch.setattr(SuperpixelMaskTransformer, 'init_weights', counting)
    head = MODELS.build(dict(type='cast_mm.SuperpixelMaskTransformerHead', in_channels=48,
                             channels=48, num_classes=5, num_heads=4))
    head.init_weights()
    assert len(calls) == 1


def test_head_init_cfg_reaches_the_decoder():
    head = MODELS.build(dict(type='cast_mm.SuperpixelMaskTransformerHead', in_channels=48,
                             channels=48, num_classes=5, num_heads=4,
                             init_cfg=dict(type='Constant', layer='Linear', val=0.5, bias=0.)))
    head.init_weights()
    assert bool((head.decoder.proj_dec.weight == 0.5).all())

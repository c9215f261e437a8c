"""Official checkpoint layouts -> cast_mm, from Python and from the command line."""
import argparse
import os
import pickle
import subprocess
import sys

import pytest
import torch
from helpers import REPO, load_tool, subprocess_env

from cast_mm.checkpoints import (UnknownCheckpointLayout, convert_official_checkpoint,
                                 detect_layout, read_checkpoint)
from cast_mm.models import CAST

CONVERTER = f'{REPO}/tools/model_converters/cast_official_to_mm.py'


@pytest.mark.parametrize('case,layout,family', [('moco_cls', 'moco', 'cast'),
                                                ('deit_cls', 'deit', 'cast_deit'),
                                                ('moco_seg', 'moco', 'cast_seg'),
                                                ('segmenter_seg', 'segmenter', 'cast_seg_deit')])
def test_layouts_are_detected_and_load_strictly(public_fixture, case, layout, family):
    entry = public_fixture['cases'][case]
    converted = convert_official_checkpoint(entry['checkpoint'])
    assert (converted.layout, converted.family) == (layout, family)
    cfg = entry['config']
    model = CAST(arch=dict(embed_dims=cfg['embed_dim'], depths=cfg['depth'], num_heads=12),
                 mode=converted.arch['mode'], num_clusters=cfg['num_clusters'],
                 img_size=cfg['img_size'], pos_embed=converted.arch['pos_embed'])
    model.load_state_dict(converted.backbone, strict=True)
    assert converted.arch['depths'] == list(cfg['depth'])
    keys = converted.state_dict().keys()
    assert all(k.startswith(('backbone.', 'head.fc.', 'decode_head.decoder.')) for k in keys)
    assert (converted.decoder is not None) == (layout == 'segmenter')


def test_moco_drops_the_momentum_encoder(public_fixture):
    ckpt = public_fixture['cases']['moco_cls']['checkpoint']
    state = dict(ckpt['state_dict'])
    state['module.momentum_encoder.cls_token'] = torch.zeros(1, 1, 96)
    state['module.base_encoder.head.0.weight'] = torch.zeros(16, 96)  # MoCo projector MLP
    del state['module.base_encoder.head.weight'], state['module.base_encoder.head.bias']
    converted = convert_official_checkpoint(dict(ckpt, state_dict=state))
    assert converted.head is None and converted.predictor is None
    assert not any('momentum' in k for k in converted.state_dict())
    assert not any(k.startswith('backbone.head') for k in converted.state_dict())


def test_pe_token_is_folded_into_cls_token(public_fixture):
    ckpt = public_fixture['cases']['moco_cls']['checkpoint']
    state = dict(ckpt['state_dict'])
    state['module.base_encoder.pe_token'] = torch.full((1, 1, 96), 0.5)
    converted = convert_official_checkpoint(dict(ckpt, state_dict=state))
    torch.testing.assert_close(converted.backbone['cls_token'],
                               state['module.base_encoder.cls_token'] + 0.5)


def test_unknown_layout_lists_top_level_keys():
    with pytest.raises(UnknownCheckpointLayout, match=r"\['epoch', 'weights'\]"):
        detect_layout({'weights': {}, 'epoch': 3})
    with pytest.raises(UnknownCheckpointLayout, match='already a cast_mm'):
        detect_layout({'state_dict': {'backbone.cls_token': torch.zeros(1)}})


class _RunsCode:
    """Unpickling this touches a file: a stand-in for a checkpoint that runs code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


def test_official_namespace_loads_safely_and_code_needs_explicit_trust(public_fixture, tmp_path):
    path = tmp_path / 'best_checkpoint.pth'
    torch.save(dict(public_fixture['cases']['deit_cls']['checkpoint'],
                    args=argparse.Namespace(model='cast_small')), path)
    assert read_checkpoint(str(path))['args'].model == 'cast_small'
    marker = tmp_path / 'ran'
    evil = tmp_path / 'evil.pth'
    torch.save({'model': {}, 'args': _RunsCode(marker)}, evil)
    with pytest.raises(pickle.UnpicklingError, match='--trust-pickle') as info:
        read_checkpoint(str(evil))
    assert str(evil) in str(info.value) and 'posix.system' in str(info.value)
    assert not marker.exists()
    read_checkpoint(str(evil), trust_pickle=True)  # the explicit opt-in unpickles
    assert marker.exists()


@pytest.mark.slow  # the tool's subprocess smoke test: a process importing the whole stack
def test_command_line_converter(public_fixture, tmp_path):
    src = tmp_path / 'deit.pth'
    torch.save(dict(public_fixture['cases']['deit_cls']['checkpoint'],
                    args=argparse.Namespace(model='cast_small')), src)
    dst = tmp_path / 'out' / 'cast.pth'
    done = subprocess.run([sys.executable, CONVERTER, str(src), str(dst),
                           '--classes', *[f'c{i}' for i in range(7)]],
                          capture_output=True, text=True, env=subprocess_env())
    assert done.returncode == 0, done.stderr
    assert "layout 'deit'" in done.stdout
    out = torch.load(dst, weights_only=True)
    assert out['meta']['dataset_meta']['classes'][0] == 'c0'
    assert out['meta']['cast_mm']['source_layout'] == 'deit'
    assert out['state_dict']['head.fc.weight'].shape == (7, 96)


def test_converter_refuses_what_it_cannot_convert_safely(public_fixture, tmp_path, capsys):
    convert = load_tool('model_converters/cast_official_to_mm').main
    dst = tmp_path / 'out' / 'cast.pth'
    junk = tmp_path / 'junk.pth'
    torch.save({'foo': torch.zeros(1)}, junk)
    assert convert([str(junk), str(dst)]) == 1
    assert "top-level keys are ['foo']" in capsys.readouterr().err

    marker = tmp_path / 'ran'
    evil = tmp_path / 'evil.pth'
    torch.save({'model': {}, 'args': _RunsCode(marker)}, evil)
    src = tmp_path / 'deit.pth'
    torch.save(public_fixture['cases']['deit_cls']['checkpoint'], src)
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(src.read_bytes()[:1000])
    for path, message in ((evil, '--trust-pickle'), (truncated, 'truncated or corrupt')):
        assert convert([str(path), str(dst)]) == 1
        err = capsys.readouterr().err
        assert message in err and str(path) in err, err
    assert not marker.exists() and not dst.exists()


def test_moco_projector_and_predictor_become_nonlinear_neck_weights(public_fixture):
    checkpoint = dict(public_fixture['cases']['moco_cls']['checkpoint'])
    state = {k: v for k, v in checkpoint['state_dict'].items()
             if not k.startswith('module.base_encoder.head')}
    dims, hidden, out = 96, 32, 16
    mlp = {
        'module.base_encoder.head.0.weight': torch.randn(hidden, dims),
        'module.base_encoder.head.1.weight': torch.ones(hidden),
        'module.base_encoder.head.1.bias': torch.zeros(hidden),
        'module.base_encoder.head.1.running_mean': torch.zeros(hidden),
        'module.base_encoder.head.1.running_var': torch.ones(hidden),
        'module.base_encoder.head.1.num_batches_tracked': torch.tensor(0),
        'module.base_encoder.head.3.weight': torch.randn(out, hidden),
        'module.base_encoder.head.4.running_mean': torch.zeros(out),
        'module.base_encoder.head.4.running_var': torch.ones(out),
        'module.base_encoder.head.4.num_batches_tracked': torch.tensor(0),
        'module.predictor.0.weight': torch.randn(hidden, out),
        'module.predictor.1.running_mean': torch.zeros(hidden),
        'module.predictor.1.running_var': torch.ones(hidden),
        'module.predictor.3.weight': torch.randn(out, hidden),
    }
    checkpoint['state_dict'] = {**state, **mlp}
    converted = convert_official_checkpoint(checkpoint)
    assert converted.head is None
    assert list(converted.neck) == [
        'fc0.weight', 'bn0.weight', 'bn0.bias', 'bn0.running_mean', 'bn0.running_var',
        'bn0.num_batches_tracked', 'fc1.weight', 'bn1.running_mean', 'bn1.running_var',
        'bn1.num_batches_tracked']
    assert torch.equal(converted.neck['fc1.weight'], mlp['module.base_encoder.head.3.weight'])
    assert set(converted.predictor) == {'fc0.weight', 'bn0.running_mean', 'bn0.running_var',
                                        'fc1.weight'}
    keys = converted.state_dict()
    assert 'neck.fc0.weight' in keys and 'head.predictor.fc1.weight' in keys

"""Official checkpoint layouts -> cast_mm, from Python and from the command line."""
import argparse
import pickle
import subprocess
import sys

import pytest
import torch

from cast_mm.converters import (UnknownCheckpointLayout, convert_official_checkpoint,
                                detect_layout, load_official_checkpoint)
from cast_mm.models import CAST
from conftest import REPO

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


def test_moco_drops_momentum_encoder_predictor_and_projector(public_fixture):
    ckpt = public_fixture['cases']['moco_cls']['checkpoint']
    state = dict(ckpt['state_dict'])
    state['module.predictor.0.weight'] = torch.zeros(8, 4)
    state['module.base_encoder.head.0.weight'] = torch.zeros(16, 96)  # MoCo projector MLP
    del state['module.base_encoder.head.weight'], state['module.base_encoder.head.bias']
    converted = convert_official_checkpoint(dict(ckpt, state_dict=state))
    assert converted.head is None
    assert not any('momentum' in k or 'predictor' in k for k in converted.state_dict())


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


def test_deit_namespace_needs_explicit_trust(public_fixture, tmp_path):
    path = tmp_path / 'best_checkpoint.pth'
    torch.save(dict(public_fixture['cases']['deit_cls']['checkpoint'],
                    args=argparse.Namespace(model='cast_small')), path)
    with pytest.raises(pickle.UnpicklingError, match='--trust-pickle'):
        load_official_checkpoint(str(path))
    assert 'args' in load_official_checkpoint(str(path), trust_pickle=True)


def test_command_line_converter(public_fixture, tmp_path):
    src = tmp_path / 'deit.pth'
    torch.save(dict(public_fixture['cases']['deit_cls']['checkpoint'],
                    args=argparse.Namespace(model='cast_small')), src)
    dst = tmp_path / 'out' / 'cast.pth'
    refused = subprocess.run([sys.executable, CONVERTER, str(src), str(dst)],
                             capture_output=True, text=True)
    assert refused.returncode == 1 and '--trust-pickle' in refused.stderr
    done = subprocess.run([sys.executable, CONVERTER, str(src), str(dst), '--trust-pickle',
                           '--classes', *[f'c{i}' for i in range(7)]],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "layout 'deit'" in done.stdout
    out = torch.load(dst, weights_only=True)
    assert out['meta']['dataset_meta']['classes'][0] == 'c0'
    assert out['meta']['cast_mm']['source_layout'] == 'deit'
    assert out['state_dict']['head.fc.weight'].shape == (7, 96)

    junk = tmp_path / 'junk.pth'
    torch.save({'foo': torch.zeros(1)}, junk)
    bad = subprocess.run([sys.executable, CONVERTER, str(junk), str(dst)], capture_output=True,
                         text=True)
    assert bad.returncode == 1 and "top-level keys are ['foo']" in bad.stderr

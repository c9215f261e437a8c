"""Official weights by URL: download once, then the cache; verify; convert in memory.

A loopback HTTP server stands in for the Hugging Face hub (``CAST_MM_WEIGHTS_BASE`` points at
it) and serves checkpoints in the official layouts, built from the parity fixtures.
"""
import argparse
import hashlib
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.runner.checkpoint import _load_checkpoint
from weights_helpers import COCO, DEIT, MOCO, file_bytes, loopback_hub, to_official_deit

import cast_mm  # noqa: F401
from cast_mm.converters import (DEFAULT_WEIGHTS_BASE, OFFICIAL_FILES, CheckpointError,
                                WeightsDownloadError, load_official_weights)
from cast_mm.converters.parity import _run, build_official_model, compare_outputs, normalise_images
from cast_mm.converters.weights import cache_path
from cast_mm.models import CAST


@pytest.fixture
def hub(tmp_path, monkeypatch):
    yield from loopback_hub(tmp_path, monkeypatch)


def official_outputs_match(case, state_dict, mean, std):
    """Run a model holding ``state_dict`` (cast_mm names) and compare with the fixture."""
    model = build_official_model(case['config'], case['checkpoint'])
    for p in model.backbone.parameters():  # forget the directly converted weights
        torch.nn.init.normal_(p)
    backbone = {k[len('backbone.'):]: v for k, v in state_dict.items()
                if k.startswith('backbone.')}
    model.backbone.load_state_dict(backbone, strict=True)
    if model.converted.head is not None:
        model.converted.head = dict(weight=state_dict['head.fc.weight'],
                                    bias=state_dict['head.fc.bias'])
    with torch.no_grad():
        ours = _run(model, normalise_images(case['images_uint8'], mean, std),
                    case['superpixels'], case['outputs'])
    rows = compare_outputs('download', ours, case['outputs'])
    return rows and all(row.ok for row in rows), rows


def test_first_load_downloads_then_the_cache_serves_without_the_server(
        hub, public_fixture, tmp_path):
    case = public_fixture['cases']['deit_cls']
    # the official DeiT files pickle an argparse.Namespace: it loads with no --trust-pickle
    official = dict(case['checkpoint'], args=argparse.Namespace(model='cast_small'))
    hub.serve(DEIT, file_bytes(official, tmp_path))
    url = f'{DEFAULT_WEIGHTS_BASE}/{DEIT}'  # the published URL, fetched from the mirror
    first = _load_checkpoint(url, map_location='cpu')
    assert hub.hits == ['/twke/CAST/resolve/main/' + DEIT]
    cached = cache_path(url)
    assert cached == osp.join(str(tmp_path / 'torch_home'), 'hub', 'checkpoints', 'cast_mm',
                              DEIT)
    assert osp.isfile(cached)
    assert first['meta']['cast_mm']['source_layout'] == 'deit'
    ok, rows = official_outputs_match(case, first['state_dict'], public_fixture['image_mean'],
                                      public_fixture['image_std'])
    assert ok, rows

    hub.stop()
    second = _load_checkpoint(url, map_location='cpu')
    assert len(hub.hits) == 1
    assert second['state_dict'].keys() == first['state_dict'].keys()
    for key, value in first['state_dict'].items():
        assert torch.equal(second['state_dict'][key], value), key


def test_init_cfg_pretrained_url_loads_the_official_segmentation_encoder(
        hub, public_fixture, tmp_path):
    case = public_fixture['cases']['moco_seg']
    hub.serve(COCO, file_bytes(case['checkpoint'], tmp_path))
    reference = build_official_model(case['config'], case['checkpoint'])
    cfg = case['config']
    model = CAST(arch=dict(embed_dims=cfg['embed_dim'], depths=cfg['depth'],
                           num_heads=cfg['num_heads']),
                 mode='segmentation', num_clusters=cfg['num_clusters'], img_size=cfg['img_size'],
                 pos_embed='sincos',
                 init_cfg=dict(type='Pretrained', checkpoint=f'{DEFAULT_WEIGHTS_BASE}/{COCO}',
                               prefix='backbone.'))
    model.init_weights()
    for key, value in reference.backbone.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_a_given_hash_is_checked_and_a_corrupt_file_leaves_no_cache(hub, public_fixture,
                                                                    tmp_path):
    body = file_bytes(public_fixture['cases']['moco_cls']['checkpoint'], tmp_path)
    digest = hashlib.sha256(body).hexdigest()
    corrupt = bytearray(body)
    corrupt[len(corrupt) // 2] ^= 0xFF
    hub.serve(MOCO, bytes(corrupt))
    url = f'{DEFAULT_WEIGHTS_BASE}/{MOCO}#sha256={digest}'
    with pytest.raises(WeightsDownloadError, match='SHA-256 mismatch') as info:
        load_official_weights(url)
    assert hub.url + '/' + MOCO in str(info.value)
    assert not osp.exists(cache_path(url))
    assert not [n for n in os.listdir(osp.dirname(cache_path(url))) if 'partial' in n]

    hub.serve(MOCO, body)
    out = load_official_weights(url)
    assert out['meta']['cast_mm']['official_family'] == 'cast'
    assert hashlib.sha256(open(cache_path(url), 'rb').read()).hexdigest() == digest


@pytest.mark.parametrize('kind', ['truncated', 'html', 'html-as-binary', '404', 'unrecognised',
                                  'wrong file'])
def test_bad_downloads_name_the_url_and_leave_no_cache(hub, public_fixture, tmp_path, kind):
    body = file_bytes(public_fixture['cases']['moco_cls']['checkpoint'], tmp_path)
    page = b'<!DOCTYPE html><html><body>Repository not found</body></html>'
    expected = {
        'truncated': 'truncated',
        'html': 'HTML page',
        'html-as-binary': 'HTML page',
        '404': 'HTTP 404',
        'unrecognised': 'not an official CAST checkpoint',
        'wrong file': 'official file snapshots/moco/imagenet1k/cast_small',
    }[kind]
    if kind == 'truncated':
        hub.serve(MOCO, body[:len(body) // 2], length=len(body))
    elif kind == 'html':
        hub.serve(MOCO, page, kind='text/html; charset=utf-8')
    elif kind == 'html-as-binary':
        hub.serve(MOCO, page)
    elif kind == 'unrecognised':
        hub.serve(MOCO, file_bytes({'weights': torch.zeros(3)}, tmp_path))
    elif kind == 'wrong file':  # a segmentation encoder where the ImageNet one belongs
        hub.serve(MOCO, file_bytes(public_fixture['cases']['moco_seg']['checkpoint'], tmp_path))
    url = f'{DEFAULT_WEIGHTS_BASE}/{MOCO}'
    with pytest.raises(CheckpointError, match=expected) as info:
        _load_checkpoint(url, map_location='cpu')
    assert f'{hub.url}/{MOCO}' in str(info.value)
    assert not osp.exists(cache_path(url))


def test_evil_pickle_is_refused_and_runs_nothing(hub, tmp_path):
    marker = tmp_path / 'ran'

    class Evil:

        def __reduce__(self):
            return (os.system, (f'touch {marker}', ))

    hub.serve(DEIT, file_bytes({'model': {'cls_token': torch.zeros(1)}, 'args': Evil()},
                               tmp_path))
    url = f'{DEFAULT_WEIGHTS_BASE}/{DEIT}'
    with pytest.raises(CheckpointError, match='posix.system') as info:
        _load_checkpoint(url, map_location='cpu')
    assert 'was not loaded' in str(info.value) and f'{hub.url}/{DEIT}' in str(info.value)
    assert not marker.exists()
    assert not osp.exists(cache_path(url))


def test_published_files_are_the_official_ones():
    assert DEFAULT_WEIGHTS_BASE == 'https://huggingface.co/twke/CAST/resolve/main'
    for path, (layout, family) in OFFICIAL_FILES.items():
        assert path.startswith('snapshots/') and path.endswith(('.pth', '.pth.tar')), path
        assert (layout == 'deit') == path.startswith('snapshots/deit/'), path
        assert (family == 'cast_seg') == ('/coco/' in path), path


@pytest.mark.slow
def test_get_model_and_inferencer_by_name_with_official_weights(hub, tmp_path,
                                                                mmpretrain_scope):
    from mmpretrain import ImageClassificationInferencer, get_model
    torch.manual_seed(0)
    source = get_model('cast-s_deit_in1k')  # the architecture, random weights
    official = to_official_deit(source.state_dict(), source.backbone.depths)
    hub.serve(DEIT, file_bytes(official, tmp_path))
    model = get_model('cast-s_deit_in1k', pretrained=True)
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert model.dataset_meta['classes'][0].startswith('tench')
    inferencer = ImageClassificationInferencer('cast-s_deit_in1k', pretrained=True)
    image = (np.random.RandomState(0).rand(96, 128, 3) * 255).astype(np.uint8)
    result = inferencer(image)[0]
    assert result['pred_class'] in model.dataset_meta['classes']
    assert len(hub.hits) == 1  # the second use came from the cache

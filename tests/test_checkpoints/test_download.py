"""Official weights by URL: download once, then the cache; verify; convert in memory.

A loopback HTTP server stands in for the Hugging Face hub (``CAST_MM_WEIGHTS_BASE`` points at
it) and serves checkpoints in the official layouts, built from the parity fixtures.
"""
import argparse
import copy
import hashlib
import os
import os.path as osp

import numpy as np
import pytest
import torch
from helpers.hub import (COCO, DEIT, MOCO, file_bytes, load_in_process_group, loopback_hub,
                         segmenter_model_cfg, to_official_deit)
from mmengine.config import Config
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint

import cast_mm  # noqa: F401
from cast_analysis.parity import _run, build_official_model, compare_outputs, normalise_images
from cast_mm.checkpoints import (DEFAULT_WEIGHTS_BASE, OFFICIAL_FILES, CheckpointError,
                                 WeightsDownloadError, convert_official_checkpoint,
                                 load_official_weights)
from cast_mm.checkpoints.download import cache_path, download
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


def test_init_model_and_load_from_take_an_official_file_by_url_or_path(
        hub, public_fixture, tmp_path):
    """``mmseg.apis.init_model`` and a runner's ``load_from`` (which ``tools/test.py`` and
    ``tools/train.py`` set from their arguments) convert an official file in memory."""
    from mmseg.apis import init_model
    case = public_fixture['cases']['segmenter_seg']
    expected = convert_official_checkpoint(case['checkpoint']).state_dict()
    # No Segmenter weights are released: a file a mirror adds, in the official layout.
    path = 'snapshots/segmenter/ade20k/cast_small/checkpoint.pth'
    local = tmp_path / 'checkpoint.pth'
    torch.save(case['checkpoint'], local)
    hub.serve(path, local.read_bytes())
    url = f'{DEFAULT_WEIGHTS_BASE}/{path}'
    model_cfg = segmenter_model_cfg(public_fixture)

    def assert_loaded(model):
        state = model.state_dict()
        assert any(k.startswith('decode_head.decoder.') for k in expected)
        for key, value in expected.items():
            assert torch.equal(state[key], value), key

    for source in (url, str(local)):
        cfg = Config(dict(model=copy.deepcopy(model_cfg), default_scope='mmseg'))
        assert_loaded(init_model(cfg, source, device='cpu'))
        runner = Runner(model=copy.deepcopy(model_cfg), work_dir=str(tmp_path / 'work'),
                        load_from=source, default_scope='mmseg')
        runner.load_or_resume()
        assert_loaded(runner.model)
    assert hub.hits == ['/twke/CAST/resolve/main/' + path]  # downloaded once, then the cache


def test_a_download_names_its_source_and_destination_and_shows_progress(hub, tmp_path, capsys):
    body = bytes(range(256)) * 8192  # 2 MiB: more than one chunk
    hub.serve('snapshots/test/file.bin', body)
    url, dst = f'{hub.url}/snapshots/test/file.bin', tmp_path / 'out' / 'file.bin'
    assert download(url, str(dst), progress=True) == str(dst)
    err = capsys.readouterr().err
    assert f'Downloading {url} to {dst}' in err
    assert '100%' in err and '2.00M' in err  # the progress bar's last state
    assert dst.read_bytes() == body and os.listdir(dst.parent) == ['file.bin']


@pytest.mark.parametrize('kind', ['truncated', 'html'])
def test_a_download_is_checked_against_what_the_server_announced(hub, tmp_path, kind):
    """Before the file is read as a checkpoint: fewer bytes than the Content-Length, or a
    Content-Type of text/html, and nothing is left behind."""
    body = bytes(range(256)) * 64
    if kind == 'truncated':
        hub.serve('snapshots/test/file.bin', body[:1000], length=len(body))
    else:
        hub.serve('snapshots/test/file.bin', b'<p>Sign in</p>', kind='text/html')
    url, dst = f'{hub.url}/snapshots/test/file.bin', tmp_path / 'out' / 'file.bin'
    expected = f'1000 of the {len(body)} bytes' if kind == 'truncated' else 'HTML page'
    with pytest.raises(WeightsDownloadError, match=expected):
        download(url, str(dst), progress=False)
    assert os.listdir(dst.parent) == []


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

    # A cache entry damaged later is fetched again: caught by the hash, or without one by
    # reading it.
    for checked_url in (url, url.partition('#')[0]):
        hits = len(hub.hits)
        with open(cache_path(url), 'r+b') as f:
            f.truncate(len(body) // 2)
        again = load_official_weights(checked_url)
        assert len(hub.hits) == hits + 1
        assert open(cache_path(url), 'rb').read() == body
        for key, value in out['state_dict'].items():
            assert torch.equal(again['state_dict'][key], value), key


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


@pytest.mark.slow
def test_in_a_process_group_rank_0_downloads_and_a_failure_reaches_every_rank(
        hub, public_fixture, tmp_path):
    import torch.multiprocessing as mp
    hub.serve(MOCO, file_bytes(public_fixture['cases']['moco_cls']['checkpoint'], tmp_path))
    env = {k: os.environ[k] for k in ('CAST_MM_WEIGHTS_BASE', 'TORCH_HOME')}
    env['OMP_NUM_THREADS'] = '1'
    for name, path in (('ok', MOCO), ('missing', 'snapshots/moco/none/checkpoint.pth.tar')):
        results = tmp_path / name
        results.mkdir()
        context = mp.start_processes(
            load_in_process_group, nprocs=2, join=False, start_method='spawn',
            args=(2, str(tmp_path / f'{name}.init'), env, f'{DEFAULT_WEIGHTS_BASE}/{path}',
                  str(results)))
        for process in context.processes:
            process.join(timeout=120)  # a rank left waiting at the barrier would hang here
        hung = [p.pid for p in context.processes if p.is_alive()]
        for process in context.processes:
            if process.is_alive():
                process.kill()
        assert not hung, f'ranks still running: {hung}'
        outcome = [(results / f'rank{r}.txt').read_text() for r in range(2)]
        if name == 'ok':
            assert outcome[0] == outcome[1] and outcome[0].startswith('ok ')
            assert hub.hits == ['/twke/CAST/resolve/main/' + MOCO]  # one download for both
        else:
            assert all(o.startswith('error WeightsDownloadError') and 'HTTP 404' in o
                       and f'{hub.url}/{path}' in o for o in outcome), outcome


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
    for path, entry in OFFICIAL_FILES.items():
        assert path.startswith('snapshots/') and path.endswith(('.pth', '.pth.tar')), path
        assert (entry.layout == 'deit') == path.startswith('snapshots/deit/'), path
        assert (entry.family == 'cast_seg') == ('/coco/' in path), path


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
    # The converted checkpoint carries the ImageNet class names of its 1000-way head, which
    # get_model keeps where mmpretrain's Inferencers read them (model._dataset_meta).
    converted = load_official_weights(f'{DEFAULT_WEIGHTS_BASE}/{DEIT}')
    classes = converted['meta']['dataset_meta']['classes']
    assert len(classes) == 1000 and classes[0].startswith('tench')
    assert tuple(model._dataset_meta['classes']) == tuple(classes)
    inferencer = ImageClassificationInferencer('cast-s_deit_in1k', pretrained=True)
    assert tuple(inferencer.classes) == tuple(classes)
    image = (np.random.RandomState(0).rand(96, 128, 3) * 255).astype(np.uint8)
    result = inferencer(image)[0]
    assert result['pred_class'] == classes[result['pred_label']]
    assert len(hub.hits) == 1  # every later use came from the cache

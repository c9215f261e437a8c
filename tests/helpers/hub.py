"""A loopback stand-in for the Hugging Face hub, and official-layout checkpoints."""
import argparse
import http.server
import re
import threading
from collections import OrderedDict

import torch

from cast_mm.checkpoints import register_official_url_loader

DEIT = 'snapshots/deit/imagenet1k/cast_small/best_checkpoint.pth'
MOCO = 'snapshots/moco/imagenet1k/cast_small/checkpoint_0099.pth.tar'
COCO = 'snapshots/moco/coco/cast_small/checkpoint_0149.pth.tar'


class Routes(http.server.BaseHTTPRequestHandler):
    """``routes[path] = (body, content_type, announced_length)``; anything else is a 404."""
    routes: dict = {}
    hits: list = []

    def do_HEAD(self):  # noqa: N802 (http.server's name); not a hit: no body is sent
        self.send_head()

    def do_GET(self):  # noqa: N802
        self.hits.append(self.path)
        body = self.send_head()
        if body is not None:
            self.wfile.write(body)
            self.wfile.flush()
        self.close_connection = True

    def send_head(self):
        """The status and headers of the route; its body, or None for a 404."""
        route = self.routes.get(self.path)
        if route is None:
            self.send_error(404, 'Not Found')
            return None
        body, kind, length = route
        self.send_response(200)
        self.send_header('Content-Type', kind)
        self.send_header('Content-Length', str(length))
        self.end_headers()
        return body

    def log_message(self, *args):
        pass


def loopback_hub(tmp_path, monkeypatch):
    """A loopback server as ``CAST_MM_WEIGHTS_BASE``, and a fresh ``TORCH_HOME`` (a generator
    for a fixture: ``yield from loopback_hub(tmp_path, monkeypatch)``)."""
    handler = type('Handler', (Routes, ), dict(routes={}, hits=[]))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f'http://127.0.0.1:{server.server_address[1]}/twke/CAST/resolve/main'
    monkeypatch.setenv('CAST_MM_WEIGHTS_BASE', base)
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    register_official_url_loader()

    class Hub:
        url = base
        routes = handler.routes
        hits = handler.hits

        @staticmethod
        def serve(path, body, kind='application/octet-stream', length=None):
            handler.routes['/twke/CAST/resolve/main/' + path] = (
                body, kind, len(body) if length is None else length)

        stopped = False

        @classmethod
        def stop(cls):
            if not cls.stopped:
                server.shutdown()
                server.server_close()
                cls.stopped = True

    yield Hub
    Hub.stop()
    monkeypatch.delenv('CAST_MM_WEIGHTS_BASE')
    register_official_url_loader()


def file_bytes(obj, tmp_path, name='ckpt.pth') -> bytes:
    path = tmp_path / name
    torch.save(obj, path)
    return path.read_bytes()


def to_official_deit(state_dict, depths) -> dict:
    """A cast_mm classifier's weights in the official DeiT layout (``cast_deit`` names)."""
    starts = [sum(depths[:i]) for i in range(len(depths))]
    model = OrderedDict()
    for key, value in state_dict.items():
        if key.startswith('head.fc.'):
            model['head.' + key[len('head.fc.'):]] = value
            continue
        if not key.startswith('backbone.'):
            continue
        key = key[len('backbone.'):]
        if key.startswith('stem.'):
            model['patch_embed.' + key[len('stem.'):]] = value
        elif key.startswith('pools.'):
            stage, rest = re.match(r'^pools\.(\d+)\.(.*)$', key).groups()
            model[f'pool{int(stage) + 1}.pool_block.{rest}'] = value
        elif key.startswith('blocks.'):
            index, rest = re.match(r'^blocks\.(\d+)\.(.*)$', key).groups()
            model[key] = value
            stage = max(s for s in range(len(depths)) if starts[s] <= int(index))
            model[f'blocks{stage + 1}.{int(index) - starts[stage]}.{rest}'] = value
        else:
            model[key] = value
    return dict(model=model, epoch=299, args=argparse.Namespace(model='cast_small'))


def segmenter_model_cfg(public_fixture) -> dict:
    """An mmseg model config of the fixture's official Segmenter (``segmenter_seg``) size."""
    config = public_fixture['cases']['segmenter_seg']['config']
    return dict(
        type='cast_mm.SuperpixelEncoderDecoder',
        data_preprocessor=dict(type='cast_mm.SuperpixelSegDataPreProcessor',
                               mean=[255 * m for m in public_fixture['image_mean']],
                               std=[255 * s for s in public_fixture['image_std']],
                               bgr_to_rgb=False),
        backbone=dict(type='cast_mm.CAST', mode='segmentation', pos_embed='learned',
                      arch=dict(embed_dims=config['embed_dim'], depths=config['depth'],
                                num_heads=config['num_heads']),
                      num_clusters=config['num_clusters'], img_size=config['img_size']),
        decode_head=dict(type='cast_mm.SuperpixelMaskTransformerHead',
                         in_channels=config['embed_dim'],
                         channels=config['decoder']['d_model'],
                         num_classes=config['num_classes'],
                         num_layers=config['decoder']['n_layers'],
                         num_heads=config['decoder']['n_heads'],
                         ffn_dims=config['decoder']['d_ff']),
        test_cfg=dict(mode='whole'))


def load_in_process_group(rank: int, world_size: int, init_file: str, env: dict, url: str,
                          results: str) -> None:
    """One rank of a gloo group on CPU: load ``url`` and write what happened to
    ``results/rank<rank>.txt`` (``ok <number of tensors>`` or ``error <message>``)."""
    import os
    import os.path as osp

    import torch.distributed as dist
    os.environ.update(env)
    import cast_mm  # noqa: F401  (registers the loaders, reading CAST_MM_WEIGHTS_BASE)
    from cast_mm.checkpoints import load_official_weights
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank,
                            world_size=world_size)
    try:
        out = f"ok {len(load_official_weights(url)['state_dict'])}"
    except Exception as err:  # reported to the test, which checks the message
        out = f'error {type(err).__name__}: {err}'
    with open(osp.join(results, f'rank{rank}.txt'), 'w') as f:
        f.write(out)
    dist.destroy_process_group()


def _sequential_mlp(state_dict, prefix, official_prefix) -> dict:
    """``NonLinearNeck`` weights (``fc{i}``, ``bn{i}``) as the official ``nn.Sequential``
    (Linear ``3i``, BatchNorm ``3i + 1``, ReLU)."""
    out = {}
    for key, value in state_dict.items():
        match = re.match(rf'^{re.escape(prefix)}(fc|bn)(\d+)\.(.*)$', key)
        if match:
            kind, index, rest = match.groups()
            out[f'{official_prefix}{3 * int(index) + (kind == "bn")}.{rest}'] = value
    return out


def to_official_moco(state_dict, depths) -> dict:
    """A cast_mm MoCo-v3 model's weights in the official pre-training layout
    (``{'state_dict': module.base_encoder.* / module.predictor.*}``): the ``cast`` names of a
    classification-mode encoder (``blocks.*`` and their ``blocksN.*`` aliases, a zero
    ``pe_token``, the final norm) or the ``cast_seg`` names of a segmentation-mode one
    (``blocksN.*`` only, ``block_fusion``); the projector as the encoder's ``head.N``. The
    momentum encoder is left out (the converter drops it)."""
    starts = [sum(depths[:i]) for i in range(len(depths))]
    segmentation = any(k.startswith('backbone.fusion.') for k in state_dict)
    encoder = OrderedDict()
    for key, value in state_dict.items():
        if not key.startswith('backbone.'):
            continue
        key = key[len('backbone.'):]
        if key.startswith('stem.'):
            encoder['patch_embed.' + key[len('stem.'):]] = value
        elif key.startswith('pools.'):
            stage, rest = re.match(r'^pools\.(\d+)\.(.*)$', key).groups()
            encoder[f'pool{int(stage) + 1}.pool_block.{rest}'] = value
        elif key.startswith('blocks.'):
            index, rest = re.match(r'^blocks\.(\d+)\.(.*)$', key).groups()
            stage = max(s for s in range(len(depths)) if starts[s] <= int(index))
            encoder[f'blocks{stage + 1}.{int(index) - starts[stage]}.{rest}'] = value
            if not segmentation:
                encoder[key] = value
        elif key.startswith('fusion.norm.'):
            encoder['block_fusion.proj_blocks.0.norm.' + key[len('fusion.norm.'):]] = value
        elif key.startswith('fusion.proj.'):
            encoder['block_fusion.proj_blocks.2.' + key[len('fusion.proj.'):]] = value
        else:
            encoder[key] = value
    encoder['pe_token'] = torch.zeros_like(encoder['cls_token'])
    encoder.update(_sequential_mlp(state_dict, 'neck.', 'head.'))
    state = OrderedDict(('module.base_encoder.' + k, v) for k, v in encoder.items())
    state.update(_sequential_mlp(state_dict, 'head.predictor.', 'module.predictor.'))
    return dict(state_dict=state, epoch=100, arch='cast_small')

"""A loopback stand-in for the Hugging Face hub, and official-layout checkpoints."""
import argparse
import http.server
import re
import threading
from collections import OrderedDict

import torch

from cast_mm.converters import register_checkpoint_loaders

DEIT = 'snapshots/deit/imagenet1k/cast_small/best_checkpoint.pth'
MOCO = 'snapshots/moco/imagenet1k/cast_small/checkpoint_0099.pth.tar'
COCO = 'snapshots/moco/coco/cast_small/checkpoint_0149.pth.tar'


class Routes(http.server.BaseHTTPRequestHandler):
    """``routes[path] = (body, content_type, announced_length)``; anything else is a 404."""
    routes: dict = {}
    hits: list = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.hits.append(self.path)
        route = self.routes.get(self.path)
        if route is None:
            self.send_error(404, 'Not Found')
            return
        body, kind, length = route
        self.send_response(200)
        self.send_header('Content-Type', kind)
        self.send_header('Content-Length', str(length))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True

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
    register_checkpoint_loaders()

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
    register_checkpoint_loaders()


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

"""One INFO log line per model saying which implementation each computation resolved to, and why.

Rule: when a CAST model (segmentor, classifier, MoCo, hierarchy model) is built,
:func:`log_model_execution` logs the choices the configuration fixes on every device (token
pooling, attention, dropout, farthest point sampling backend, loss, prediction, superpixels),
each with the constructor argument that chose it and whether that is the fast or the literal
profile (:mod:`cast_mm.models.execution_profile`). What depends on the device is resolved at
the model's first forward on each device kind and logged there once per device kind, in one more
line (the FPS kernel, the dropout kernel, whether the compiled CPU operators are built).
"""
import logging
from typing import Dict, List, Optional

import torch
from mmengine.logging import print_log
from torch import nn

from cast_mm.ops import extension
from cast_mm.ops.farthest_point_sampling import native_implementation
from cast_mm.ops.hashed_dropout import implementation as dropout_implementation
from .execution_profile import FAST, LITERAL


def _origin(component: str, key: str, value) -> str:
    """``key=value`` and whether that is the fast or the literal profile's choice."""
    if FAST[component].get(key) == value:
        profile = 'fast'
    elif LITERAL[component].get(key) == value:
        profile = 'literal'
    else:
        profile = 'custom'
    return f'{key}={value!r}, {profile}'


def _attention(choices: Dict, component: str) -> str:
    if choices['fused_attn']:
        what = 'scaled_dot_product_attention'
        if choices['hashed_dropout']:
            what += ' (softmax + hashed dropout-matmul while attention dropout trains)'
    else:
        what = 'explicit softmax'
    return f"{what} [{_origin(component, 'fused_attn', choices['fused_attn'])}]"


def _dropout(choices: Dict, component: str) -> str:
    what = 'hashed masks' if choices['hashed_dropout'] else 'torch.nn.Dropout'
    return f"{what} [{_origin(component, 'hashed_dropout', choices['hashed_dropout'])}]"


def describe_model(model: nn.Module) -> Dict[str, str]:
    """Computation -> the implementation the model's configuration chose, and why."""
    out: Dict[str, str] = {}
    backbone = getattr(model, 'backbone', None)
    choices = getattr(backbone, 'execution', None)
    if choices is not None:
        if backbone.token_resolution == 'superpixel':
            pooling = choices['token_pooling']
            out['token pooling'] = f"{pooling} [{_origin('backbone', 'token_pooling', pooling)}]"
        else:
            out['token pooling'] = "stem grid means [token_resolution='feature']"
        out['attention'] = _attention(choices, 'backbone')
        out['dropout'] = _dropout(choices, 'backbone')
        backend = choices['fps_backend']
        resolved = {'native': 'a kernel per device, resolved at first forward',
                    'torch': 'torch loop', 'dgl': "DGL's CPU kernel"}[backend]
        out['FPS'] = f"{resolved} [{_origin('backbone', 'fps_backend', backend)}]"
        out['stem'] = ('channels-last' if choices['channels_last_stem'] else 'NCHW') + \
            f" [{_origin('backbone', 'channels_last_stem', choices['channels_last_stem'])}]"
    head = getattr(model, 'decode_head', None)
    decoder = getattr(head, 'decoder', None)
    if getattr(decoder, 'execution', None) is not None:
        out['decoder attention'] = _attention(decoder.execution, 'decoder')
        out['decoder dropout'] = _dropout(decoder.execution, 'decoder')
    if head is not None and hasattr(head, 'loss_by_superpixel'):
        value = head.loss_by_superpixel
        what = 'per-superpixel label counts' if value else "mmseg's loss on pixel logits"
        out['loss'] = f"{what} [{_origin('decode_head', 'loss_by_superpixel', value)}]"
    if hasattr(model, 'predict_by_segments_enabled'):
        value = model.predict_by_segments_enabled
        what = ('one argmax per superpixel in uncropped whole-image inference'
                if value else "mmseg's per-pixel post-processing")
        out['prediction'] = f"{what} [{_origin('segmentor', 'predict_by_segments', value)}]"
    source = getattr(model, 'superpixel_source', None)
    if source is not None:
        where = 'in the model' if getattr(model, 'superpixels_in_model', False) else \
            'from the pipeline, slide windows in the model'
        out['superpixels'] = f'{where}: {type(source).__name__}'
    elif backbone is not None:
        out['superpixels'] = 'from the pipeline (data transform)'
    return out


def describe_device(device: torch.device, dtype: Optional[torch.dtype] = None) -> Dict[str, str]:
    """Computation -> the implementation the device (and dtype) resolve to."""
    out = {'FPS (native)': native_implementation(device.type),
           'hashed dropout': dropout_implementation(device.type)}
    if device.type == 'cpu':
        out['compiled CPU operators'] = f'cast_mm.ops._C {extension.status()}'
    if dtype is not None:
        out['dtype'] = str(dtype).replace('torch.', '')
    return out


def _line(title: str, items: Dict[str, str]) -> str:
    return f'{title}: ' + '; '.join(f'{name}: {what}' for name, what in items.items())


def _log_device_once(module: nn.Module, args, kwargs) -> None:
    if torch.compiler.is_compiling():
        return
    inputs: List[torch.Tensor] = [a for a in list(args) + list(kwargs.values())
                                  if isinstance(a, torch.Tensor)]
    if not inputs:
        return
    device = inputs[0].device
    logged = module.__dict__.setdefault('_execution_logged_devices', set())
    if device.type in logged:
        return
    logged.add(device.type)
    print_log(_line(f'cast_mm execution on {device.type}',
                    describe_device(device, inputs[0].dtype)), logger='current',
              level=logging.INFO)


def log_model_execution(model: nn.Module) -> None:
    """Log :func:`describe_model` now and :func:`describe_device` at the first forward of each
    device kind (on ``model.backbone``, which every CAST model runs)."""
    print_log(_line(f'cast_mm execution of {type(model).__name__}', describe_model(model)),
              logger='current', level=logging.INFO)
    backbone = getattr(model, 'backbone', None)
    if isinstance(backbone, nn.Module):
        backbone.register_forward_pre_hook(_log_device_once, with_kwargs=True)

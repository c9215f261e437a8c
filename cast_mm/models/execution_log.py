"""One INFO line per CAST model: the execution profile it runs, and where its superpixels come from.

When a CAST model (segmentor, classifier, MoCo, hierarchy model) is built,
:func:`log_model_execution` logs which profile of :mod:`cast_mm.models.execution_profile` its
switches follow: ``fast``, ``literal``, or the fast profile with the switches that differ named.
Farthest point sampling with ``fps_backend='native'`` resolves by device: at the model's first
forward on each device kind one more line names the kernel that runs there (on the CPU, whether
the compiled operator is built).
"""
import logging
from typing import Any, Dict

import torch
from mmengine.logging import print_log
from torch import nn

from cast_mm.ops.farthest_point_sampling import native_implementation
from .execution_profile import FAST, LITERAL


def model_choices(model: nn.Module) -> Dict[str, Dict[str, Any]]:
    """The execution-profile switches of ``model`` per component it has (keys of ``FAST``)."""
    head = getattr(model, 'decode_head', None)
    found = dict(backbone=getattr(getattr(model, 'backbone', None), 'execution', None),
                 decoder=getattr(getattr(head, 'decoder', None), 'execution', None))
    if hasattr(head, 'loss_by_superpixel'):
        found['decode_head'] = dict(loss_by_superpixel=head.loss_by_superpixel)
    if hasattr(model, 'predict_by_segments_enabled'):
        found['segmentor'] = dict(predict_by_segments=model.predict_by_segments_enabled)
    return {component: dict(choices) for component, choices in found.items() if choices}


def describe_model(model: nn.Module) -> str:
    """The profile ``model`` runs and where its superpixels come from, in a few words."""
    choices = model_choices(model)
    if all(values == FAST[component] for component, values in choices.items()):
        profile = 'fast profile'
    elif all(values == LITERAL[component] for component, values in choices.items()):
        profile = 'literal profile (the official computation)'
    else:
        profile = 'fast profile except ' + ', '.join(
            f'{component}.{key}={value!r}' for component, values in choices.items()
            for key, value in values.items() if value != FAST[component][key])
    source = getattr(model, 'superpixel_source', None)
    if getattr(model, 'superpixels_in_model', False):
        superpixels = f'superpixels in the model ({type(source).__name__})'
    elif source is not None:
        superpixels = f'superpixels from the pipeline, slide windows {type(source).__name__}'
    else:
        superpixels = 'superpixels from the pipeline'
    return f'{profile}; {superpixels}'


def describe_device(device: torch.device) -> str:
    """What native farthest point sampling runs on ``device``."""
    return f'FPS (native): {native_implementation(device.type)}'


def _log_device_once(module: nn.Module, args, kwargs) -> None:
    if torch.compiler.is_compiling():
        return
    tensor = next((a for a in list(args) + list(kwargs.values()) if isinstance(a, torch.Tensor)),
                  None)
    if tensor is None:
        return
    logged = module.__dict__.setdefault('_execution_logged_devices', set())
    if tensor.device.type in logged:
        return
    logged.add(tensor.device.type)
    print_log(f'cast_mm execution on {tensor.device.type}: {describe_device(tensor.device)}',
              logger='current', level=logging.INFO)


def log_model_execution(model: nn.Module) -> None:
    """Log :func:`describe_model` now and, where the backbone samples with the native FPS,
    :func:`describe_device` at its first forward on each device kind."""
    print_log(f'cast_mm execution of {type(model).__name__}: {describe_model(model)}',
              logger='current', level=logging.INFO)
    backbone = getattr(model, 'backbone', None)
    if isinstance(backbone, nn.Module) and \
            getattr(backbone, 'execution', {}).get('fps_backend') == 'native':
        backbone.register_forward_pre_hook(_log_device_once, with_kwargs=True)

"""Parameters and FLOPs of an mmseg or mmpretrain model built from its config, ours included.

MMEngine's counter (:class:`mmengine.analysis.FlopAnalyzer`, given the inputs; mmseg 1.2.2's
get_flops.py passes an input shape as well, which MMEngine 0.10.7 refuses) traces one forward
pass that returns the logits (``mode='tensor'``): for a segmentor the backbone, neck and decode
head (the auxiliary head and the losses do not run in inference), for a classifier the
backbone, neck and head. It counts one multiply-add as one FLOP (fvcore's convention, that of
mmseg's and mmpretrain's published GFLOPs). Torch's fused attention
(``scaled_dot_product_attention``) is counted as the two products it fuses
(:func:`sdpa_flop_jit`), as an explicit ``q @ k.T`` and ``attn @ v`` are; operators without a
formula (normalisation, softmax, farthest point sampling, gathers) count 0.

The input is one photograph of the asked size: through the config's superpixel transform and
packing transform and its data preprocessor where the config's train pipeline makes
superpixels (so CAST runs on the superpixels its pipeline would give), otherwise a zero image
(the count does not depend on the values). Checkpoints named in the config are not loaded.
"""
from math import prod
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from .batches import make_batch
from .models import build_model, load_config


def sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """Multiply-adds of ``scaled_dot_product_attention(q, k, v)``: ``q @ k.T`` and ``attn @ v``
    (``(..., L, E) x (..., S, E)`` and ``(..., L, S) x (..., S, Ev)``)."""
    from mmengine.analysis.jit_handles import get_shape
    query, key, value = (get_shape(v) for v in inputs[:3])
    batch = prod(query[:-2])
    return batch * query[-2] * key[-2] * (query[-1] + value[-1])


class TensorForward(nn.Module):
    """``model(inputs, data_samples, mode='tensor')`` with the data samples held, so that the
    traced call takes the image tensor alone."""

    def __init__(self, model: nn.Module, data_samples=None) -> None:
        super().__init__()
        self.model = model
        self.data_samples = data_samples

    def forward(self, inputs: torch.Tensor):
        return self.model(inputs, self.data_samples, mode='tensor')


def _without_checkpoints(node) -> None:
    """Drop every ``Pretrained`` initialisation and ``pretrained`` path of a model config, in
    place (the counts do not depend on the weights)."""
    if isinstance(node, dict):
        if node.get('pretrained') is not None:
            node['pretrained'] = None
        init = node.get('init_cfg')
        entries = init if isinstance(init, (list, tuple)) else [init]
        if any(isinstance(e, dict) and e.get('type') == 'Pretrained' for e in entries):
            node['init_cfg'] = None
        for value in node.values():
            _without_checkpoints(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _without_checkpoints(value)


def _makes_superpixels(cfg) -> bool:
    pipeline = cfg.get('train_dataloader', {}).get('dataset', {}).get('pipeline', [])
    return any(str(t.get('type', '')).endswith('Superpixels') for t in pipeline)


def model_complexity(config: str, shape: Tuple[int, int] = (512, 512),
                     options: Optional[Dict] = None) -> Dict:
    """Parameters and FLOPs of ``config``'s model on one ``shape`` image.

    Args:
        config (str): a config path, or ``package::path`` of an installed OpenMMLab package
            (``mmseg::vit/...``, ``mmpretrain::deit/...``).
        shape (tuple): ``(height, width)`` of the image.
        options (dict, optional): ``--cfg-options`` merged into the config.

    Returns:
        dict: ``config``, ``shape``, ``params`` (all parameters, trained or frozen), ``flops``
        (multiply-adds), ``superpixels`` (the number of superpixels the input had, or None).
    """
    cfg = load_config(config, dict(options or {}))
    _without_checkpoints(cfg.model)
    model = build_model(cfg, 'cpu').eval()
    task = 'seg' if 'decode_head' in cfg.model else 'cls'
    superpixels = None
    if _makes_superpixels(cfg):
        batch = make_batch(task, cfg, tuple(shape), 1)
        with torch.no_grad():
            data = model.data_preprocessor(batch, False)
        inputs, samples = data['inputs'], data['data_samples']
        superpixels = int(samples[0].superpixels.data.max()) + 1
    else:
        inputs, samples = torch.zeros(1, 3, *shape), None
    from mmengine.analysis import FlopAnalyzer, parameter_count
    analyzer = FlopAnalyzer(TensorForward(model, samples), inputs=(inputs, ))
    analyzer.set_op_handle('aten::scaled_dot_product_attention', sdpa_flop_jit)
    with torch.no_grad():
        flops = analyzer.total()
    return dict(config=config, shape=tuple(shape), params=int(parameter_count(model)['']),
                flops=int(flops), superpixels=superpixels)

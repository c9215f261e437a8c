"""MMEngine weight initialisers for CAST's official initialisation rules."""
import math

import torch.nn as nn
from mmengine.model.weight_init import BaseInit, update_init_info
from mmengine.registry import WEIGHT_INITIALIZERS


@WEIGHT_INITIALIZERS.register_module(name='CASTMoCoV3')
class CASTMoCoV3Init(BaseInit):
    """The MoCo-v3 initialisation of a CAST encoder, as an ``init_cfg`` entry.

    Every ``nn.Linear`` of the module gets xavier-uniform weights, except those whose name
    contains ``qkv``: their bound ``sqrt(6 / (out / 3 + in))`` treats the q, k and v
    projections as three separate layers. Biases become zero and the class token (a
    ``cls_token`` parameter of the module, if any) is drawn from N(0, 1e-6^2). Convolutions
    keep PyTorch's default: the official rule for the first convolution applies to a patch
    embedding only, and CAST's conv stem keeps its default initialisation there. LayerNorms
    keep ones and zeros.

    Use it as ``init_cfg=dict(type='CASTMoCoV3')`` on the backbone. It defines every
    parameter's initial value, so :class:`cast_mm.CAST` skips its default (truncated-normal)
    initialisation when it is given; a ``Pretrained`` entry in the same list still loads last.

    Args:
        cls_token_std (float): std of the class token. Defaults to 1e-6.
        **kwargs: ``BaseInit`` arguments (``bias``, ``bias_prob``, ``layer``; ``layer`` is
            not used: the rule covers the whole module).
    """

    #: CAST.init_weights skips its default initialisation when an entry sets this.
    replaces_default_init = True

    def __init__(self, cls_token_std: float = 1e-6, **kwargs) -> None:
        super().__init__(**kwargs)
        self.cls_token_std = cls_token_std

    def __call__(self, module: nn.Module) -> None:
        for name, layer in module.named_modules():
            if not isinstance(layer, nn.Linear):
                continue
            if 'qkv' in name:
                bound = math.sqrt(6. / float(layer.weight.shape[0] // 3 + layer.weight.shape[1]))
                nn.init.uniform_(layer.weight, -bound, bound)
            else:
                nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        cls_token = getattr(module, 'cls_token', None)
        if isinstance(cls_token, nn.Parameter):
            nn.init.normal_(cls_token, std=self.cls_token_std)
        if hasattr(module, '_params_init_info'):
            update_init_info(module, init_info=self._get_init_info())

    def _get_init_info(self) -> str:
        return (f'{self.__class__.__name__}: xavier-uniform Linear (qkv: bound from the '
                f'separate q/k/v fan), zero bias, cls_token N(0, {self.cls_token_std})')

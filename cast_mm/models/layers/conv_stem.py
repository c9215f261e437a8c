"""Convolutional stem: four 3x3 conv-BN-ReLU stages (total stride 8) and a 1x1 projection."""
from typing import Callable

import torch
import torch.nn as nn
from torch import Tensor


def _grad_in_param_layout(param: nn.Parameter) -> None:
    """Give ``param`` its gradients with its own strides.

    On several CPU threads the weight gradient of a 1x1 convolution of channels-last input
    comes out channels-last strided. Autograd accepts it (the strides differ only in size-1
    dimensions), DDP does not: it copies such a gradient into its bucket, with a 'Grad strides do
    not match bucket view strides' warning.
    """

    def hook(grad: Tensor) -> Tensor:
        if grad.stride() == param.stride():
            return grad
        return torch.empty_like(param).copy_(grad)

    param.register_hook(hook)


class ConvStem(nn.Module):
    """Stride-8 convolutional stem of CAST, with the official layer layout.

    Channels grow ``C/8 -> C/4 -> C/2 -> C`` over three stride-2 convs and one stride-1 conv
    (no bias, each followed by BatchNorm and ReLU), then a 1x1 conv with bias. ``proj`` keeps
    the official ``nn.Sequential`` indices (0..12) so checkpoints map one to one.

    The convolutions run on channels-last (NHWC) memory, which oneDNN and cuDNN compute faster;
    the output is an NHWC-strided ``(B, C, h, w)`` tensor, so per-pixel token code reads it
    without a copy. The weight gradients keep their parameters' strides (DDP compares them).

    Args:
        in_channels (int): image channels. Defaults to 3.
        embed_dims (int): output channels ``C``; must be divisible by 8.
        norm_layer (callable): ``num_features -> batch norm`` for the four norms (a
            ``BatchNorm2d`` or a synchronised variant; the state-dict keys stay the same).
            Defaults to ``nn.BatchNorm2d``.
    """

    def __init__(self, in_channels: int = 3, embed_dims: int = 384,
                 norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d) -> None:
        super().__init__()
        if embed_dims % 8 != 0:
            raise ValueError(f'ConvStem needs embed_dims divisible by 8, got {embed_dims}')
        layers = []
        channels = [in_channels, embed_dims // 8, embed_dims // 4, embed_dims // 2, embed_dims]
        for i, (cin, cout) in enumerate(zip(channels[:-1], channels[1:])):
            stride = 1 if i == 3 else 2
            layers += [
                nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
                norm_layer(cout),
                nn.ReLU(inplace=True),
            ]
        layers.append(nn.Conv2d(embed_dims, embed_dims, 1))
        self.proj = nn.Sequential(*layers)
        for layer in self.proj:
            if isinstance(layer, nn.Conv2d):
                _grad_in_param_layout(layer.weight)

    def forward(self, x: Tensor) -> Tensor:
        """Map images ``(B, 3, H, W)`` to features ``(B, C, ceil(H/8), ceil(W/8))``."""
        return self.proj(x.contiguous(memory_format=torch.channels_last))

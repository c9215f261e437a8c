"""Convolutional stem: four 3x3 conv-BN-ReLU stages (total stride 8) and a 1x1 projection."""
from typing import Callable

import torch
import torch.nn as nn
from torch import Tensor

from ..execution_profile import FAST


class ConvStem(nn.Module):
    """Stride-8 convolutional stem of CAST, with the official layer layout.

    Channels grow ``C/8 -> C/4 -> C/2 -> C`` over three stride-2 convs and one stride-1 conv
    (no bias, each followed by BatchNorm and ReLU), then a 1x1 conv with bias. ``proj`` keeps
    the official ``nn.Sequential`` indices (0..12) so checkpoints map one to one.

    Args:
        in_channels (int): image channels. Defaults to 3.
        embed_dims (int): output channels ``C``; must be divisible by 8.
        channels_last (bool): run the convolutions on channels-last (NHWC) memory, faster with
            oneDNN / cuDNN; the output is then an NHWC-strided ``(B, C, h, w)`` tensor, so
            per-pixel token code reads it without a copy. Same values up to float rounding.
            Defaults to True (the fast path).
        norm_layer (callable): ``num_features -> batch norm`` for the four norms (a
            ``BatchNorm2d`` or a synchronised variant; the state-dict keys stay the same).
            Defaults to ``nn.BatchNorm2d``.
    """

    def __init__(self, in_channels: int = 3, embed_dims: int = 384,
                 channels_last: bool = FAST['backbone']['channels_last_stem'],
                 norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d) -> None:
        super().__init__()
        self.channels_last = channels_last
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

    def forward(self, x: Tensor) -> Tensor:
        """Map images ``(B, 3, H, W)`` to features ``(B, C, ceil(H/8), ceil(W/8))``."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.proj(x)

"""The official CAST segmentation head as an mmseg decode head."""
from typing import Optional

from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from torch import Tensor

from cast_mm.registry import MODELS
from ..backbones.cast import CASTFeatures
from .mask_transformer import SuperpixelMaskTransformer


@MODELS.register_module()
class SuperpixelMaskTransformerHead(BaseDecodeHead):
    """Segmenter-style mask transformer over CAST's fused segment tokens (spec §4.2).

    Class scores are computed per stage-1 segment token and scattered to pixels through the
    superpixel map, so logits are piecewise constant on superpixels and already at input
    resolution. The decoder lives in ``self.decoder`` (official parameter names), which is
    where converted Segmenter checkpoints put it (``decode_head.decoder.*``).

    Args:
        in_channels (int): width of the backbone tokens.
        channels (int): decoder width. Defaults to 384.
        num_classes (int): number of classes.
        num_layers (int): decoder blocks. Defaults to 2.
        num_heads (int): attention heads. Defaults to 6.
        ffn_dims (int, optional): MLP width. Defaults to ``4 * channels``.
        dropout (float): dropout in the decoder blocks. Defaults to 0.1.
        drop_path_rate (float): stochastic depth of the decoder blocks. Defaults to 0.
        fused_attn (bool): fused scaled-dot-product attention in the decoder blocks.
            Defaults to True.
        **kwargs: the rest of ``BaseDecodeHead`` (``loss_decode``, ``ignore_index``, ...).
    """

    def __init__(self,
                 in_channels: int,
                 num_classes: int,
                 channels: int = 384,
                 num_layers: int = 2,
                 num_heads: int = 6,
                 ffn_dims: Optional[int] = None,
                 dropout: float = 0.1,
                 drop_path_rate: float = 0.,
                 fused_attn: bool = True,
                 **kwargs) -> None:
        kwargs.setdefault('init_cfg', None)
        kwargs.setdefault('dropout_ratio', 0.)
        super().__init__(in_channels, channels, num_classes=num_classes, **kwargs)
        del self.conv_seg  # classes come from the decoder's class embeddings
        self.decoder = SuperpixelMaskTransformer(num_classes, in_channels, channels,
                                                 num_layers, num_heads, ffn_dims, dropout,
                                                 drop_path_rate, fused_attn)

    def init_weights(self) -> None:
        super().init_weights()
        if not self.is_init or self.init_cfg is None:
            self.decoder.init_weights()

    def forward(self, inputs: CASTFeatures) -> Tensor:
        """Per-pixel class scores ``(B, num_classes, H, W)`` at the superpixel-map size."""
        if not isinstance(inputs, CASTFeatures) or inputs.fused_tokens is None:
            raise TypeError('SuperpixelMaskTransformerHead needs the CASTFeatures of a CAST '
                            "backbone in mode='segmentation'")
        return self.decoder(inputs.fused_tokens, inputs.token_labels)

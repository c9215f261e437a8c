"""The official CAST segmentation head as an mmseg decode head."""
from typing import Optional

from torch import Tensor

from cast_mm.registry import MODELS
from ..backbones.cast import CASTFeatures
from ..execution_profile import FAST
from .mask_transformer import SuperpixelMaskTransformer
from .segment_decode_head import SegmentDecodeHead


@MODELS.register_module()
class SuperpixelMaskTransformerHead(SegmentDecodeHead):
    """Segmenter-style mask transformer over CAST's fused segment tokens.

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
        **kwargs: the rest of :class:`SegmentDecodeHead` (``loss_decode``,
            ``ignore_index``, ``loss_by_superpixel``, ...). ``dropout_ratio`` must stay 0:
            the decoder's dropout is ``dropout``.
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
                 fused_attn: bool = FAST['decoder']['fused_attn'],
                 **kwargs) -> None:
        if kwargs.get('dropout_ratio', 0.):
            raise ValueError('SuperpixelMaskTransformerHead has no dropout before a classifier '
                             '(dropout_ratio); set the decoder dropout with `dropout`')
        super().__init__(in_channels, channels, num_classes=num_classes, **kwargs)
        self.decoder = SuperpixelMaskTransformer(num_classes, in_channels, channels,
                                                 num_layers, num_heads, ffn_dims, dropout,
                                                 drop_path_rate, fused_attn)

    def segment_scores(self, inputs: CASTFeatures) -> Tensor:
        """Class mask scores ``(B, N, num_classes)`` of the fused segment tokens."""
        return self.decoder.token_masks(inputs.fused_tokens)

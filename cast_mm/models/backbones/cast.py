"""CAST backbone: a ViT over superpixel tokens with graph pooling after each stage.

One implementation serves the four official model families:

============================  ===============  ============  ==========================
official file                 ``mode``         ``pos_embed`` notes
============================  ===============  ============  ==========================
``cast.py`` (MoCo)            classification   ``'sincos'``  ``cls_feature`` output
``cast_deit.py`` (DeiT)       classification   ``'learned'`` ``cls_feature`` output
``cast_seg.py`` (MoCo COCO)   segmentation     ``'sincos'``  ``token_resolution`` chooses
                                                             pretrain (``'feature'``) or
                                                             fine-tune (``'superpixel'``)
``cast_seg_deit.py`` (Segm.)  segmentation     ``'learned'`` fused segment tokens
============================  ===============  ============  ==========================

In segmentation mode ``out_type='feature_maps'`` makes CAST an mmseg encoder like any other:
a tuple of ``(B, C, H_l, W_l)`` maps, one per hierarchy level, for mmseg's stock decode heads
and necks (:meth:`CAST.feature_maps`).
"""
import dataclasses
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmengine.model import BaseModule
from mmengine.model.weight_init import PretrainedInit, trunc_normal_
from mmengine.registry import WEIGHT_INITIALIZERS
from torch import Tensor

from cast_mm.checkpoints import DEFAULT_WEIGHTS_BASE, OFFICIAL_FILES, check_cast_weights
from cast_mm.ops import masked_mean, num_token_slots, segment_padding_mask, segment_to_pixels
from cast_mm.ops.precision import autocast_disabled
from cast_mm.registry import MODELS
from ..execution_profile import FAST, FEATURE_INTERPOLATION, POSITION_INTERPOLATION
from ..layers import (BlockFusion, ConvStem, GraphPooling, TransformerBlock,
                      interpolated_segment_means, level_assignments, resized_segment_mean,
                      sincos_pos_embed_2d)
from ..utils import batch_norm_factory

#: Stride of the convolutional stem.
STEM_STRIDE = 8

#: The ``'fast'`` token pooling. Its sparse weights have data-dependent sizes, so
#: ``torch.compile`` runs it eagerly (a graph break) and ``torch.export`` traces the literal
#: pooling instead.
_fast_segment_means = torch.compiler.disable(interpolated_segment_means)


@dataclasses.dataclass
class CASTFeatures:
    """Everything one CAST forward pass produces.

    Lists have one entry per stage ``k = 1..4``. ``N_1`` is the number of superpixel token
    slots (largest superpixel id + 1 over the batch), ``N_{k+1} = K_k``.

    Attributes:
        token_labels: ``(B, h, w)`` superpixel ids at the resolution where tokens were pooled
            (the stem-feature grid in classification mode, the input in segmentation mode).
        stage_tokens: ``(B, N_k, C)`` tokens after the blocks of stage k (before pooling).
        stage_cls: ``(B, 1, C)`` class token after the blocks of stage k.
        padding_masks: ``(B, N_k)`` bool, padded tokens entering stage k.
        pool_logits: ``(B, N_k, K_k)`` assignment logits of pooling k.
        pool_tokens: ``(B, K_k, C)`` tokens produced by pooling k.
        pool_cls: ``(B, 1, C)`` class token updated by pooling k.
        sampled_inds: ``(B, K_k)`` farthest-point-sampled centre indices of pooling k.
        pool_padding_masks: ``(B, K_k)`` clusters of pooling k that found no distinct centre.
        cls_feature: ``(B, C)`` normalised stage-4 class token (classification mode).
        fused_tokens: ``(B, N_1, C)`` block-fusion output (segmentation mode).
        fused_cls: ``(B, 1, C)`` fused class token (segmentation mode).
    """
    token_labels: Tensor
    stage_tokens: List[Tensor]
    stage_cls: List[Tensor]
    padding_masks: List[Tensor]
    pool_logits: List[Tensor]
    pool_tokens: List[Tensor]
    pool_cls: List[Tensor]
    sampled_inds: List[Tensor]
    pool_padding_masks: List[Tensor]
    cls_feature: Optional[Tensor] = None
    fused_tokens: Optional[Tensor] = None
    fused_cls: Optional[Tensor] = None


def check_superpixels(inputs: Tensor,
                      superpixels: Tensor,
                      num_slots: Optional[int] = None,
                      check_values: bool = True) -> None:
    """Raise ``ValueError`` unless ``superpixels`` is a valid ``(B, H, W)`` integer id map.

    Args:
        inputs (Tensor): the images ``(B, C, H, W)`` the map belongs to.
        superpixels (Tensor): the id map.
        num_slots (int, optional): number of token slots; ids must be below it when given.
        check_values (bool): also check the id range (a device sync). Defaults to True.
    """
    if not isinstance(inputs, Tensor) or inputs.dim() != 4:
        shape = tuple(inputs.shape) if isinstance(inputs, Tensor) else type(inputs).__name__
        raise ValueError(f'CAST expects images of shape (B, C, H, W), got {shape}')
    batch, _, height, width = inputs.shape
    expected = (batch, height, width)
    if not isinstance(superpixels, Tensor):
        raise ValueError(f'superpixels must be an integer tensor of shape (B, H, W) = '
                         f'{expected}, got {type(superpixels).__name__}')
    if tuple(superpixels.shape) != expected:
        raise ValueError(f'superpixel map must have shape (B, H, W) = {expected} to match the '
                         f'images, got {tuple(superpixels.shape)}')
    if superpixels.dtype.is_floating_point or superpixels.dtype.is_complex \
            or superpixels.dtype == torch.bool:
        raise ValueError(f'superpixel map must hold integer ids (e.g. torch.int64), got '
                         f'{superpixels.dtype}')
    if not check_values or superpixels.numel() == 0:
        return
    low, high = torch.stack([superpixels.min(), superpixels.max()]).tolist()  # one sync
    if low < 0:
        raise ValueError(f'superpixel ids must be >= 0, got min {low}')
    if num_slots is not None and high >= num_slots:
        raise ValueError(f'num_slots={num_slots} leaves no token for superpixel id {high}')


def resize_labels(labels: Tensor, size: Tuple[int, int]) -> Tensor:
    """Nearest-neighbour resize of an id map ``(B, H, W)`` (legacy ``nearest``: ``floor``)."""
    if tuple(labels.shape[-2:]) == tuple(size):
        return labels.long()
    # Floats represent ids exactly up to 2**24, far beyond any superpixel budget.
    out = F.interpolate(labels[:, None].float(), size=size, mode='nearest')
    return out[:, 0].long()


def grid_labels(token_labels: Tensor, image_size: Tuple[int, int], stride: int) -> Tensor:
    """The token slot of every cell of a stride-``stride`` grid over the image.

    The grid has ``ceil(H / stride) x ceil(W / stride)`` cells; cell ``(i, j)`` covers pixels
    ``[i * stride, (i + 1) * stride)`` and takes the slot of its centre pixel
    ``(i * stride + stride // 2, j * stride + stride // 2)``, clamped to the image. The centre
    is looked up in ``token_labels`` at its own resolution (the image in segmentation mode).

    Args:
        token_labels (Tensor): ``(B, h, w)`` token slots (:attr:`CASTFeatures.token_labels`).
        image_size (tuple): ``(H, W)`` of the images.
        stride (int): pixels per grid cell along each side.

    Returns:
        Tensor: ``(B, ceil(H / stride), ceil(W / stride))`` int64 slots.
    """
    height, width = image_size
    device = token_labels.device

    def centres(size: int, labels_size: int) -> Tensor:
        pixel = torch.arange(-(-size // stride), device=device) * stride + stride // 2
        return pixel.clamp_(max=size - 1) * labels_size // size

    rows = centres(height, token_labels.shape[-2])
    cols = centres(width, token_labels.shape[-1])
    return token_labels.index_select(-2, rows).index_select(-1, cols).long()


def _replaces_default_init(entry: Dict) -> bool:
    """Whether an ``init_cfg`` entry defines every parameter (CAST's default then skips)."""
    kind = entry['type']
    initializer = WEIGHT_INITIALIZERS.get(kind) if isinstance(kind, str) else kind
    return bool(getattr(initializer, 'replaces_default_init', False))


def _missing_checkpoint_message(path: str) -> str:
    files = '\n'.join(f'    {DEFAULT_WEIGHTS_BASE}/{path}  ({entry.description}; name '
                      f'{entry.model_name})' for path, entry in OFFICIAL_FILES.items())
    return (f"CAST init_cfg checkpoint '{path}' does not exist. Either\n"
            '- load official weights directly: set model.backbone.init_cfg.checkpoint to an '
            "official URL (with prefix='backbone.'), or use a model name "
            '(mmpretrain.get_model(NAME, pretrained=True)); the file is downloaded once into '
            "torch hub's cache and converted when loaded. The official weights are\n"
            f'{files}\n'
            '  (none for a supervised CAST-B, none fine-tuned for ADE20K or Pascal Context; '
            'README, "Pretrained models");\n'
            '- for an offline copy, convert an official file: python '
            f'tools/model_converters/cast_official_to_mm.py OFFICIAL_FILE {path} (official files '
            'need no --trust-pickle);\n'
            '- point model.backbone.init_cfg.checkpoint at a checkpoint of your own;\n'
            '- or train from random weights: --cfg-options model.backbone.init_cfg=None')


def _check_local_checkpoint(path: Optional[str]) -> None:
    """Name the ways to get a missing pre-trained checkpoint before MMEngine tries to load it."""
    if not isinstance(path, str) or '://' in path or ':' in path.split('/')[0]:
        return  # URLs and MMEngine prefixes (open-mmlab:, mmpretrain::, ...) load elsewhere
    if not osp.isfile(path):
        raise FileNotFoundError(_missing_checkpoint_message(path))


@MODELS.register_module()
class CAST(BaseModule):
    """CAST backbone (Ke, Mo, Yu, ICLR 2024).

    Pixels go through a stride-8 conv stem, are averaged inside superpixels into tokens, and
    four stages of transformer blocks each end with a graph pooling that merges the tokens into
    fewer segments (``num_clusters``). Classification mode reads the class token after the last
    blocks; segmentation mode fuses the four levels back onto the superpixel tokens.

    Args:
        arch (str | dict): ``'small'``, ``'small-deep'``, ``'base'``, ``'base-deep'`` (short
            names ``s``, ``sd``, ``b``, ``bd``) or a dict with ``embed_dims``, ``depths`` (4
            stage depths), ``num_heads`` and optionally ``mlp_ratio``.
        mode (str): ``'classification'`` or ``'segmentation'``.
        num_clusters (Sequence[int], optional): tokens after each pooling. Defaults to
            (64, 32, 16, 8) for classification and (320, 160, 80, 40) for segmentation.
        img_size (int | tuple): training image size; the position grid is ``img_size // 8``.
        in_channels (int): image channels. Defaults to 3.
        pos_embed (str): ``'learned'`` (DeiT: a learned table with a class-token position) or
            ``'sincos'`` (MoCo-v3: a fixed 2-D sin-cos table).
        token_resolution (str, optional): where superpixel tokens are averaged: ``'feature'``
            (superpixels nearest-resized to the stem grid, classification / MoCo pre-training)
            or ``'superpixel'`` (stem features bilinearly and positions bicubically resized to
            the superpixel map, segmentation). Defaults by mode.
        out_type (str, optional): what ``forward`` returns: ``'cls_token'`` (``(B, C)``
            normalised stage-4 class token), ``'fused_tokens'`` (``(B, N, C)``),
            ``'fused_tokens_with_cls'`` (``(B, 1 + N, C)``) or ``'fused_mean'`` (``(B, C)``,
            the official MoCo COCO pre-training output) or ``'feature_maps'`` (a tuple of
            ``(B, C, H_l, W_l)`` maps, one per ``out_indices`` level, for mmseg's stock
            decode heads: :meth:`feature_maps`). Defaults by mode.
        out_indices (Sequence[int]): hierarchy levels ``'feature_maps'`` returns, in order:
            level ``l`` is the tokens of stage ``l + 1`` after its blocks (level 0 the
            superpixel tokens, level ``l > 0`` the segments of pooling ``l``). Defaults to
            (0, 1, 2, 3).
        out_strides (Sequence[int]): the stride of the grid each level is painted on, one per
            level (not per ``out_indices`` entry). Defaults to (4, 8, 16, 32), a pyramid
            that mmseg's pyramid heads take without a neck; ``(16, 16, 16, 16)`` gives the
            grids of a ViT with 16-pixel patches.
        freeze_last_pool (bool, optional): freeze the last pooling (official classification
            models do; its logits still give the coarsest hierarchy level). Defaults to True
            in classification mode and without level fusion (nothing then reads the last
            pooling's tokens).
        fuse_levels (bool, optional): build the level fusion of segmentation mode (the fused
            segment tokens); segmentation heads that read the stage tokens themselves do not
            need it (``cast_mm.SuperpixelEncoderDecoder`` decides from its heads). Defaults to
            True in segmentation mode unless ``out_type='feature_maps'`` (the feature maps
            read the stage tokens).
        drop_rate (float): dropout after the position embedding and in blocks. Defaults to 0.
        drop_path_rate (float): stochastic depth, linearly increasing over all blocks.
        mask_padding (bool): batch-invariant mode. Padded tokens (ids an image does not use,
            batch padding) are masked out of attention, centring and cluster averages, so an
            image gives the same output alone and in any batch. Defaults to False, the official
            behaviour, in which zero padded tokens take part in attention.
        token_pooling (str): how ``'superpixel'`` resolution tokens are averaged: ``'fast'``
            (segment means as sparse weighted sums of the low-resolution features and position
            table, no full-resolution tensor) or ``'literal'`` (the official computation:
            resize to full resolution, then average). They agree within float rounding.
            Defaults to ``'fast'``.
        fps_backend (str): farthest point sampling: ``'native'`` (a kernel per device) or
            ``'dgl'`` (DGL's, the reference; :func:`cast_mm.ops.farthest_point_sampling`).
        fused_attn (bool): ``F.scaled_dot_product_attention`` in every attention (blocks and
            pooling), with the padding mask in batch-invariant mode. Defaults to True; False
            runs the literal softmax attention of the official code.
        pool_num_heads (int): heads of the pooling attention. Defaults to 12 (official).
        norm_cfg (dict, optional): the batch norms of the conv stem and of the level fusion:
            ``dict(type='BN')`` (plain), ``dict(type='SyncBN')`` (torch's, CUDA only across
            processes) or ``dict(type='cast_mm.MaskedSyncBN')`` (statistics over all
            processes on any device, plain BN in a single process). Parameter names are the
            same for all. Defaults to ``dict(type='BN')``.
        with_cp (bool): activation checkpointing: in training, every transformer block's
            activations are recomputed in the backward pass instead of being kept
            (``torch.utils.checkpoint``, non-reentrant, dropout replayed with the same random
            state), trading one more block forward for memory. Graph pooling stays outside.
            Gradients are the same as without. Defaults to False.
        init_cfg (dict, optional): MMEngine init config, e.g.
            ``dict(type='Pretrained', checkpoint='cast-s_deit_in1k.pth', prefix='backbone.')``.
    """

    arch_zoo: Dict[str, Dict] = {
        **dict.fromkeys(['s', 'small'], dict(embed_dims=384, depths=(3, 3, 3, 2), num_heads=12)),
        **dict.fromkeys(['sd', 'small-deep'],
                        dict(embed_dims=384, depths=(6, 3, 3, 3), num_heads=12)),
        **dict.fromkeys(['b', 'base'], dict(embed_dims=768, depths=(3, 3, 3, 2), num_heads=12)),
        **dict.fromkeys(['bd', 'base-deep'],
                        dict(embed_dims=768, depths=(6, 3, 3, 3), num_heads=12)),
    }
    default_num_clusters = dict(classification=(64, 32, 16, 8),
                                segmentation=(320, 160, 80, 40))
    out_types = ('cls_token', 'fused_tokens', 'fused_tokens_with_cls', 'fused_mean',
                 'feature_maps')
    #: The out_types that read the fused tokens of the level fusion.
    fused_out_types = ('fused_tokens', 'fused_tokens_with_cls', 'fused_mean')

    def __init__(self,
                 arch: Union[str, Dict] = 'small',
                 mode: str = 'classification',
                 num_clusters: Optional[Sequence[int]] = None,
                 img_size: Union[int, Tuple[int, int]] = 224,
                 in_channels: int = 3,
                 pos_embed: str = 'learned',
                 token_resolution: Optional[str] = None,
                 out_type: Optional[str] = None,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 out_strides: Sequence[int] = (4, 8, 16, 32),
                 freeze_last_pool: Optional[bool] = None,
                 fuse_levels: Optional[bool] = None,
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 mask_padding: bool = False,
                 token_pooling: str = FAST['backbone']['token_pooling'],
                 fps_backend: str = FAST['backbone']['fps_backend'],
                 fused_attn: bool = FAST['backbone']['fused_attn'],
                 pool_num_heads: int = 12,
                 norm_cfg: Optional[Dict] = None,
                 with_cp: bool = False,
                 init_cfg: Optional[Union[Dict, List[Dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        # Weights from elsewhere (another model, a CAST of another size or mode) are refused
        # with an error naming the file, wherever they are loaded into this backbone.
        self._strict_load = False
        self.register_load_state_dict_pre_hook(self._check_loaded_weights)
        self.with_cp = with_cp
        arch_cfg = self._parse_arch(arch)
        if mode not in self.default_num_clusters:
            raise ValueError(f"mode must be 'classification' or 'segmentation', got {mode!r}")
        self.mode = mode
        self.embed_dims = arch_cfg['embed_dims']
        self.depths = tuple(arch_cfg['depths'])
        self.num_clusters = tuple(num_clusters or self.default_num_clusters[mode])
        if len(self.num_clusters) != len(self.depths):
            raise ValueError(f'num_clusters needs one entry per stage ({len(self.depths)}), '
                             f'got {self.num_clusters}')
        self.token_resolution = token_resolution or (
            'feature' if mode == 'classification' else 'superpixel')
        if self.token_resolution not in ('feature', 'superpixel'):
            raise ValueError("token_resolution must be 'feature' or 'superpixel', got "
                             f'{self.token_resolution!r}')
        self.out_type = out_type or ('cls_token' if mode == 'classification' else 'fused_tokens')
        if self.out_type not in self.out_types:
            raise ValueError(f'out_type must be one of {self.out_types}, got {self.out_type!r}')
        if self.out_type == 'cls_token' and mode != 'classification':
            raise ValueError("out_type 'cls_token' needs mode='classification'")
        if self.out_type != 'cls_token' and mode != 'segmentation':
            raise ValueError(f"out_type {self.out_type!r} needs mode='segmentation'")
        if fuse_levels is None:
            fuse_levels = mode == 'segmentation' and self.out_type != 'feature_maps'
        self.fuse_levels = bool(fuse_levels)
        if fuse_levels and mode != 'segmentation':
            raise ValueError("fuse_levels=True needs mode='segmentation'")
        if out_type is not None and self.out_type in self.fused_out_types \
                and not self.fuse_levels:
            raise ValueError(f'out_type {self.out_type!r} reads the fused tokens: it needs '
                             'fuse_levels=True')
        self.out_indices, self.out_strides = self._check_levels(out_indices, out_strides)
        if pos_embed not in ('learned', 'sincos'):
            raise ValueError(f"pos_embed must be 'learned' or 'sincos', got {pos_embed!r}")
        self.pos_embed_type = pos_embed
        self.mask_padding = mask_padding
        if token_pooling not in ('fast', 'literal'):
            raise ValueError(f"token_pooling must be 'fast' or 'literal', got {token_pooling!r}")
        self.token_pooling = token_pooling
        #: The execution-profile choices of this backbone (``execution_profile.FAST`` keys).
        self.execution = dict(token_pooling=token_pooling, fused_attn=fused_attn,
                              fps_backend=fps_backend)
        img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        self.pos_grid_size = (img_size[0] // STEM_STRIDE, img_size[1] // STEM_STRIDE)

        dims = self.embed_dims
        self.norm_cfg = dict(norm_cfg or dict(type='BN'))
        self.stem = ConvStem(in_channels, dims,
                             norm_layer=batch_norm_factory(self.norm_cfg, spatial=True))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dims))
        num_pos = self.pos_grid_size[0] * self.pos_grid_size[1]
        if pos_embed == 'learned':
            self.pos_embed = nn.Parameter(torch.zeros(1, 1 + num_pos, dims))
        else:
            self.register_buffer('pos_embed', sincos_pos_embed_2d(self.pos_grid_size, dims))
        self.pos_drop = nn.Dropout(drop_rate)

        dpr = torch.linspace(0, drop_path_rate, sum(self.depths)).tolist()
        self.blocks = nn.ModuleList([
            TransformerBlock(dims, arch_cfg['num_heads'], arch_cfg.get('mlp_ratio', 4.),
                             qkv_bias=True, drop_rate=drop_rate, drop_path_rate=rate,
                             fused_attn=fused_attn)
            for rate in dpr
        ])
        self.pools = nn.ModuleList([
            GraphPooling(dims, k, pool_num_heads, fps_backend=fps_backend, fused_attn=fused_attn)
            for k in self.num_clusters
        ])
        if mode == 'classification':
            self.norm = nn.LayerNorm(dims, eps=1e-6)
        elif self.fuse_levels:
            self.fusion = BlockFusion(
                dims, num_levels=len(self.depths),
                norm_layer=batch_norm_factory(self.norm_cfg, spatial=False))

        if freeze_last_pool is None:
            freeze_last_pool = mode == 'classification' or not self.fuse_levels
        self.freeze_last_pool = freeze_last_pool
        if freeze_last_pool:
            self.pools[-1].requires_grad_(False)

    @classmethod
    def _parse_arch(cls, arch: Union[str, Dict]) -> Dict:
        if isinstance(arch, str):
            key = arch.lower()
            if key not in cls.arch_zoo:
                raise ValueError(f'unknown CAST arch {arch!r}; choose one of '
                                 f'{sorted(set(cls.arch_zoo))} or pass a dict')
            return dict(cls.arch_zoo[key])
        missing = {'embed_dims', 'depths', 'num_heads'} - set(arch)
        if missing:
            raise ValueError(f'a custom CAST arch needs the keys {sorted(missing)}')
        return dict(arch)

    def _check_levels(self, out_indices: Sequence[int],
                      out_strides: Sequence[int]) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
        """``out_indices`` and ``out_strides`` as tuples, or a ValueError naming the problem."""
        num_levels = len(self.depths)
        indices = tuple(out_indices)
        if not indices or len(set(indices)) != len(indices) or any(
                not isinstance(i, int) or not 0 <= i < num_levels for i in indices):
            raise ValueError(f'out_indices must be distinct hierarchy levels in '
                             f'0..{num_levels - 1}, got {out_indices!r}')
        strides = tuple(out_strides)
        if len(strides) != num_levels or any(
                not isinstance(s, int) or s < 1 for s in strides):
            raise ValueError(f'out_strides needs one positive integer stride per hierarchy '
                             f'level ({num_levels}), got {out_strides!r}')
        return indices, strides

    @property
    def stage_ranges(self) -> List[Tuple[int, int]]:
        """``(first, last + 1)`` block index of each stage."""
        ends = [sum(self.depths[:i + 1]) for i in range(len(self.depths))]
        return list(zip([0] + ends[:-1], ends))

    def _init_cfg_entries(self) -> List[Dict]:
        """``init_cfg`` as a list of dicts (the forms MMEngine accepts), or a ValueError."""
        if self.init_cfg is None:
            return []
        entries = [self.init_cfg] if isinstance(self.init_cfg, dict) else self.init_cfg
        if not isinstance(entries, (list, tuple)):
            raise ValueError(f'CAST init_cfg must be a dict, a list of dicts or None, got '
                             f'{type(self.init_cfg).__name__}')
        for entry in entries:
            if not isinstance(entry, dict) or 'type' not in entry:
                raise ValueError(f"every CAST init_cfg entry must be a dict with a 'type', "
                                 f'got {entry!r}')
        return list(entries)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """As ``nn.Module.load_state_dict``; with ``strict`` the weights must also be complete
        (:func:`~cast_mm.checkpoints.check_cast_weights`)."""
        self._strict_load = strict
        try:
            return super().load_state_dict(state_dict, strict=strict, assign=assign)
        finally:
            self._strict_load = False

    def _check_loaded_weights(self, module, state_dict, prefix, *args) -> None:
        # Hooks are told strict=True whatever the caller asked (torch and MMEngine alike); the
        # caller's strict is known for loads into this backbone itself. Loaded as a part of a
        # larger model, the check is not strict: MMEngine (load_from, init_cfg) loads with
        # strict=False, and torch reports missing weights of a strict load itself.
        check_cast_weights(self, state_dict, prefix, strict=self._strict_load)

    def init_weights(self) -> None:
        """Initialise through MMEngine's ``init_cfg``, on top of the default initialisation.

        The default is the official DeiT one (timm's ViT init, which runs before the official
        model adds its pooling and fusion layers): truncated normal (std 0.02) linears with
        zero bias and unit LayerNorms in the transformer blocks and the final norm, truncated
        normal class token and learned position table; the graph poolings and the level
        fusion keep PyTorch's default initialisation. It runs first unless an ``init_cfg``
        entry replaces it (an initialiser with ``replaces_default_init``, e.g.
        ``dict(type='CASTMoCoV3')``); then MMEngine applies every entry (``Kaiming``,
        ``Constant``, ``override``, ...), ``Pretrained`` ones last. A local ``Pretrained``
        checkpoint that does not exist raises FileNotFoundError with the way to make it.
        """
        entries = self._init_cfg_entries()
        for entry in entries:
            if entry['type'] in ('Pretrained', PretrainedInit):
                _check_local_checkpoint(entry.get('checkpoint'))
        if not self.is_init and not any(_replaces_default_init(e) for e in entries):
            self._default_init()
        super().init_weights()

    def _default_init(self) -> None:
        trunc_normal_(self.cls_token, std=.02)
        if self.pos_embed_type == 'learned':
            trunc_normal_(self.pos_embed, std=.02)
        vit_modules = [self.blocks] + ([self.norm] if self.mode == 'classification' else [])
        for module in (m for part in vit_modules for m in part.modules()):
            if isinstance(module, nn.Linear):
                trunc_normal_(module.weight, std=.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def train(self, mode: bool = True) -> 'CAST':
        super().train(mode)
        if self.freeze_last_pool:
            self.pools[-1].eval()
        return self

    # ----------------------------------------------------------------------------- tokens
    def _pos_grid(self) -> Tensor:
        """Position table of the patch grid, ``(1, gh, gw, C)``."""
        table = self.pos_embed[:, 1:] if self.pos_embed_type == 'learned' else self.pos_embed
        return table.reshape(1, *self.pos_grid_size, self.embed_dims)

    def initial_cls_token(self) -> Tensor:
        """Class token entering stage 1 (with its position in the learned variant)."""
        if self.pos_embed_type == 'learned':
            return self.cls_token + self.pos_embed[:, :1]
        return self.cls_token

    def segment_tokens(self,
                       feats: Tensor,
                       superpixels: Tensor,
                       num_slots: Optional[int] = None) -> Tuple[Tensor, Tensor]:
        """Average stem features and positions inside each superpixel.

        Args:
            feats (Tensor): stem output ``(B, C, h, w)``.
            superpixels (Tensor): ``(B, H, W)`` ids at image resolution.
            num_slots (int, optional): number of token slots; defaults to the largest id
                (at token resolution) + 1 over the batch.

        Returns:
            ``(tokens (B, N, C), token_labels)`` with ``token_labels`` the id map at the
            resolution the means were taken at.
        """
        if self.token_resolution == 'feature':
            # Superpixels nearest-resized to the stem grid: only the positions are resized.
            labels = resize_labels(superpixels, feats.shape[-2:])
            full = tuple(feats.shape[-2:])
            pool = resized_segment_mean
        else:
            labels = superpixels.long()
            # Resize onto the stride-8 padded extent, then crop: for sides that are multiples
            # of 8 this is exactly the official resize to the superpixel map, and otherwise it
            # keeps features aligned with the pixels they were computed from.
            full = (feats.shape[-2] * STEM_STRIDE, feats.shape[-1] * STEM_STRIDE)
            fast = self.token_pooling == 'fast' and not torch.compiler.is_exporting()
            pool = None if fast else resized_segment_mean
        if num_slots is None:
            num_slots = num_token_slots(labels)
        # Means over many pixels are taken in float32 (or float64), also under autocast.
        dtype = torch.promote_types(feats.dtype, torch.float32)
        with autocast_disabled(feats.device):
            feats = feats.permute(0, 2, 3, 1).to(dtype)
            pos_grid = self._pos_grid().to(dtype)
            if pool is None:  # both sparse weights' sizes read at once
                tokens, pos = _fast_segment_means(
                    [(feats, FEATURE_INTERPOLATION), (pos_grid, POSITION_INTERPOLATION)],
                    labels, num_slots, full)
            else:
                tokens = pool(feats, labels, num_slots, full, FEATURE_INTERPOLATION)
                pos = pool(pos_grid, labels, num_slots, full, POSITION_INTERPOLATION)
            tokens = tokens + pos
        return tokens, labels

    # ---------------------------------------------------------------------------- forward
    def _missing_superpixels_message(self) -> str:
        model = ('cast_mm.SuperpixelEncoderDecoder' if self.mode == 'segmentation' else
                 'cast_mm.SuperpixelImageClassifier')
        return ('CAST needs the superpixel map of every image: CAST(inputs, superpixels). A '
                "stock mmseg EncoderDecoder or mmpretrain ImageClassifier passes none; use "
                f"model=dict(type='{model}', ...) instead, with cast_mm's superpixel transform "
                'and data preprocessor (configs/cast/ has complete examples)')

    def forward_features(self,
                         inputs: Tensor,
                         superpixels: Optional[Tensor] = None,
                         num_slots: Optional[int] = None,
                         ids_checked: bool = False) -> CASTFeatures:
        """Run CAST and return every intermediate (see :class:`CASTFeatures`).

        Args:
            inputs (Tensor): normalised images ``(B, 3, H, W)``.
            superpixels (Tensor): integer superpixel ids ``(B, H, W)``, ``>= 0``.
            num_slots (int, optional): fixed number of stage-1 token slots (larger than
                every id). By default it is the largest id + 1 over the batch, a data-dependent
                size; ``torch.export`` needs it fixed. Where it is known on the host (the data
                preprocessors compute it from the data loader's maps) passing it saves a
                device sync.
            ids_checked (bool): the ids are known to be ``>= 0`` (and below ``num_slots``
                where given): the data preprocessors check them on the host. Skips checking
                them on the device, which reads them on the host. Defaults to False.
        """
        if superpixels is None:
            raise TypeError(self._missing_superpixels_message())
        check_superpixels(inputs, superpixels, num_slots,
                          check_values=not (ids_checked or torch.compiler.is_compiling()))
        feats = self.stem(inputs)
        tokens, token_labels = self.segment_tokens(feats, superpixels, num_slots)
        padding_mask = segment_padding_mask(token_labels, tokens.shape[1])
        x = self.pos_drop(tokens)
        cls = self.initial_cls_token().expand(x.shape[0], -1, -1).to(x.dtype)

        out = CASTFeatures(token_labels, [], [], [], [], [], [], [], [])
        for (start, end), pool in zip(self.stage_ranges, self.pools):
            key_mask = None
            if self.mask_padding:
                key_mask = F.pad(padding_mask, (1, 0), value=False)
            y = torch.cat([cls, x], dim=1)
            for block in self.blocks[start:end]:
                if self.with_cp and self.training and y.requires_grad:
                    y = cp.checkpoint(block, y, key_mask, use_reentrant=False)
                else:
                    y = block(y, key_mask)
            y = y.type_as(x)
            stage_cls, stage_tokens = y[:, :1], y[:, 1:]
            pooled = pool(stage_cls, stage_tokens, padding_mask, self.mask_padding)
            out.stage_tokens.append(stage_tokens)
            out.stage_cls.append(stage_cls)
            out.padding_masks.append(padding_mask)
            out.pool_logits.append(pooled.logits)
            out.pool_tokens.append(pooled.tokens)
            out.pool_cls.append(pooled.cls_token)
            out.sampled_inds.append(pooled.sampled_inds)
            out.pool_padding_masks.append(pooled.padding_mask)
            cls, x, padding_mask = pooled.cls_token, pooled.tokens, pooled.padding_mask

        if self.mode == 'classification':
            out.cls_feature = self.norm(out.stage_cls[-1][:, 0])
        elif self.fuse_levels:
            out.fused_tokens, out.fused_cls = self.fusion(out.stage_tokens, out.pool_cls,
                                                          out.pool_logits)
        return out

    def feature_maps(self, feats: CASTFeatures, image_size: Tuple[int, int]) -> Tuple[Tensor]:
        """The hierarchy levels of ``out_indices`` painted on grids, as mmseg's heads read them.

        Level ``l`` is painted on the stride-``out_strides[l]`` grid: every cell takes the
        superpixel of its centre pixel (:func:`grid_labels`), and that superpixel's level-``l``
        segment through the argmax chain of the poolings (:func:`level_assignments`; no
        gradient flows through the argmax); the cell's feature is that segment's token after
        the blocks of stage ``l + 1``. No map at image resolution is made.

        Args:
            feats (CASTFeatures): the output of :meth:`forward_features`.
            image_size (tuple): ``(H, W)`` of the images ``feats`` come from.

        Returns:
            tuple[Tensor]: one ``(B, C, ceil(H / s), ceil(W / s))`` map per ``out_indices``
            entry.
        """
        chain = level_assignments(feats.pool_logits[:max(self.out_indices)])
        maps = []
        for level in self.out_indices:
            slots = grid_labels(feats.token_labels, image_size, self.out_strides[level])
            if level > 0:  # stage-1 slot -> segment of pooling `level`
                slots = chain[level - 1].gather(1, slots.flatten(1)).view_as(slots)
            maps.append(segment_to_pixels(feats.stage_tokens[level], slots).contiguous())
        return tuple(maps)

    def forward(self,
                inputs: Tensor,
                superpixels: Optional[Tensor] = None,
                num_slots: Optional[int] = None,
                ids_checked: bool = False) -> Tuple[Tensor, ...]:
        """Return the output selected by ``out_type``: a one-element tuple, or one map per
        ``out_indices`` entry for ``'feature_maps'``.

        Args are those of :meth:`forward_features`.
        """
        feats = self.forward_features(inputs, superpixels, num_slots, ids_checked)
        if self.out_type == 'feature_maps':
            return self.feature_maps(feats, inputs.shape[-2:])
        if self.out_type == 'cls_token':
            return (feats.cls_feature, )
        if not self.fuse_levels:
            raise ValueError(f'CAST.forward returns {self.out_type!r}, the fused tokens, and '
                             'this backbone has no level fusion (fuse_levels=False); read '
                             'forward_features instead')
        if self.out_type == 'fused_tokens':
            return (feats.fused_tokens, )
        if self.out_type == 'fused_tokens_with_cls':
            return (torch.cat([feats.fused_cls, feats.fused_tokens], dim=1), )
        mask = feats.padding_masks[0] if self.mask_padding else None
        return (masked_mean(feats.fused_tokens, mask), )

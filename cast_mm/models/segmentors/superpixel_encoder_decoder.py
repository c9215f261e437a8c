"""mmseg EncoderDecoder that hands CAST its superpixels."""
import dataclasses
import importlib.util
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.structures import PixelData
from mmseg.models.decode_heads.cascade_decode_head import BaseCascadeDecodeHead
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS as MMSEG_MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import OptSampleList, SampleList
from torch import Tensor

from cast_mm.ops import gather_tokens, segment_to_pixels
from cast_mm.registry import MODELS
from cast_mm.superpixels import (MISSING_SUPERPIXELS_HINT, batch_slot_count,
                                 build_superpixel_source, sample_superpixels)
from ..backbones.cast import CAST, CASTFeatures
from ..data_preprocessors.seg_data_preprocessor import SUPERPIXEL_IMAGE_FIELD
from ..execution_log import log_model_execution
from ..execution_profile import FAST
from ..heads.segment_decode_head import SegmentDecodeHead

#: Superpixels of sliding windows: the official protocol (SEEDS, window area / 16**2).
DEFAULT_WINDOW_SUPERPIXELS = dict(type='cast_mm.SEEDSSuperpixels', preset='seg')
#: Source of ``device_superpixels`` when its config names no type: the batched torch SLIC.
DEFAULT_DEVICE_SUPERPIXELS = dict(type='cast_mm.SLICSuperpixels')

#: Inference modes of ``test_cfg.mode``.
TEST_MODES = ('whole', 'slide')
#: The ``test_cfg`` keys and what they hold: every key is checked here, once.
TEST_CFG_KEYS = dict(
    mode="'whole' or 'slide'",
    crop_size='(height, width) of the sliding window, positive',
    stride='(height, width) steps between windows, positive and at most the window',
    resize_to_window='True to resize an image smaller than the window up to it before sliding '
    '(bilinear, aspect ratio kept), False (default) to shrink the window to the image')


def check_test_cfg(test_cfg: Optional[Dict]) -> ConfigDict:
    """Check a segmentor's ``test_cfg`` and return it with ``mode`` filled in.

    Raises:
        ValueError: naming the key and the allowed values, for an unknown key or mode, or a
            slide window that would leave pixels uncovered.
    """
    cfg = ConfigDict(test_cfg or {})
    unknown = sorted(set(cfg) - set(TEST_CFG_KEYS))
    if unknown:
        raise ValueError(f'test_cfg got unknown keys {unknown}; it takes '
                         + ', '.join(f'{key} ({what})' for key, what in TEST_CFG_KEYS.items()))
    cfg.setdefault('mode', 'whole')
    if cfg.mode not in TEST_MODES:
        raise ValueError(f'test_cfg.mode must be one of {TEST_MODES}, got {cfg.mode!r}')
    for key in ('crop_size', 'stride'):
        if key not in cfg:
            if cfg.mode == 'slide':
                raise ValueError(f"test_cfg.mode='slide' needs test_cfg.{key}: "
                                 f'{TEST_CFG_KEYS[key]}')
            continue
        value = cfg[key]
        if not (isinstance(value, (tuple, list)) and len(value) == 2
                and all(isinstance(v, int) and v > 0 for v in value)):
            raise ValueError(f'test_cfg.{key} must be two positive integers (height, width), '
                             f'got {value!r}')
    if not isinstance(cfg.get('resize_to_window', False), bool):
        raise ValueError('test_cfg.resize_to_window must be True or False, got '
                         f'{cfg.resize_to_window!r}')
    if 'crop_size' in cfg and 'stride' in cfg:
        for axis, crop, stride in zip(('height', 'width'), cfg.crop_size, cfg.stride):
            if stride > crop:
                raise ValueError(f'test_cfg.stride {tuple(cfg.stride)} is larger than the window '
                                 f'{tuple(cfg.crop_size)} in {axis}: pixels between windows '
                                 'would get no score; use a stride at most the crop size')
    return cfg


@dataclasses.dataclass
class SuperpixelInputs:
    """What the superpixels of a batch come from, carried beside the normalised images.

    Attributes:
        maps: ``(B, H, W)`` superpixel maps packed by the pipeline, or None.
        images: ``(B, 3, H, W)`` uint8 images kept by the data preprocessor (for superpixels
            computed in the model), or None.
        num_slots: token slots ``maps`` need (largest id + 1), computed on the host by the
            data preprocessor, or None (then read from the device).
    """
    maps: Optional[Tensor] = None
    images: Optional[Tensor] = None
    num_slots: Optional[int] = None

    def window(self, top: int, left: int, height: int, width: int) -> 'SuperpixelInputs':
        """The inputs of a window: its image crop (superpixels are computed per window)."""
        images = None if self.images is None else \
            self.images[..., top:top + height, left:left + width]
        return SuperpixelInputs(images=images)

    def resized(self, size: Tuple[int, int]) -> 'SuperpixelInputs':
        """The inputs of the batch resized to ``size``: the kept uint8 images bilinearly, as
        the normalised batch is (resizing commutes with the per-channel normalisation), then
        truncated to uint8. Pipeline maps do not survive a resize and are dropped."""
        images = None
        if self.images is not None:
            images = F.interpolate(self.images.float(), size=size, mode='bilinear',
                                   align_corners=False).clamp_(0, 255).to(torch.uint8)
        return SuperpixelInputs(images=images)


#: mmseg heads that build only with another OpenMMLab package, and that package.
HEAD_PACKAGES = dict(MaskFormerHead='mmdet', Mask2FormerHead='mmdet')
#: mmseg decode heads that read feature maps yet cannot run on CAST here, and why.
#: :class:`SuperpixelEncoderDecoder` refuses them when it is built (docs/segmentation.md).
UNSUPPORTED_HEADS = dict(
    DPTHead='it reads (feature map, class token) pairs, the output of mmseg\'s '
    'VisionTransformer(output_cls_token=True); CAST gives feature maps',
    PIDHead='it reads what the PIDNet backbone returns, three branches (P, I, D) in training '
    'and one map in inference, and edge labels',
    DDRHead='it reads what the DDRNet backbone returns, two branches in training and one map '
    'in inference',
    VPDDepthHead='it is a depth estimation head (VPD), not a segmentation head',
    SideAdapterCLIPHead='it runs its own CLIP model beside the backbone (SAN, open vocabulary)',
)


def head_class(head: Union[Dict, object, None]) -> Optional[type]:
    """The class of a head config (resolved as mmseg builds it, then in cast_mm's scope) or of
    a built head."""
    if head is None:
        return None
    if isinstance(head, dict):
        kind = head.get('type')
        return MMSEG_MODELS.get(kind) or MODELS.get(kind) if isinstance(kind, str) else kind
    return type(head)


def _heads(*heads) -> List:
    """Every head of ``heads`` (mmseg takes a list of auxiliary heads), Nones left out."""
    out = []
    for head in heads:
        if isinstance(head, (list, tuple, torch.nn.ModuleList)):
            out += _heads(*head)
        elif head is not None:
            out.append(head)
    return out


def reads_cast_features(head: Union[Dict, object]) -> bool:
    """Whether a head config (or head) reads :class:`CASTFeatures` rather than feature maps.

    A head class says it does with ``reads_cast_features = True``
    (:class:`~cast_mm.models.heads.SegmentDecodeHead` and its subclasses); every other decode
    head, mmseg's among them, reads the backbone's feature maps.
    """
    return bool(getattr(head_class(head), 'reads_cast_features', False))


def heads_need_fused_tokens(*heads: Optional[Union[Dict, object]]) -> bool:
    """Whether any of the head configs (or heads) reads CAST's fused segment tokens.

    Only heads that read :class:`CASTFeatures` can; such a head class says it does not with
    ``needs_fused_tokens = False``.
    """
    return any(reads_cast_features(head) and getattr(head_class(head), 'needs_fused_tokens', True)
               for head in _heads(*heads))


def check_heads_supported(*heads: Optional[Union[Dict, object]]) -> None:
    """Raise ``ValueError`` for a head that cannot run on CAST, with the reason."""
    for head in _heads(*heads):
        cls = head_class(head)
        if not isinstance(cls, type):
            continue  # an unknown type: the registry names it when building
        name = cls.__name__
        reason = UNSUPPORTED_HEADS.get(name)
        package = HEAD_PACKAGES.get(name)
        if package is not None and importlib.util.find_spec(package) is None:
            reason = (f'mmseg builds it from {package}, which is not installed (pip install '
                      f'{package}; cast_mm does not test it)')
        if reason is None and issubclass(cls, BaseCascadeDecodeHead):
            reason = ("it is a cascade head: its forward also takes the previous head's output, "
                      "which only mmseg's CascadeEncoderDecoder provides")
        if reason is not None:
            raise ValueError(f'{name} cannot run on CAST in cast_mm.SuperpixelEncoderDecoder: '
                             f'{reason}. Heads that read a list of feature maps (UPerHead, '
                             'SegformerHead, FCNHead, ...) or CASTFeatures work; '
                             'docs/segmentation.md lists the heads')


@MODELS.register_module()
class SuperpixelEncoderDecoder(EncoderDecoder):
    """Encoder-decoder segmentor for CAST: the backbone gets the images and their superpixels.

    Training and ``whole`` inference read the superpixel maps the pipeline packed into the data
    samples (``cast_mm.SEEDSSuperpixels`` + ``cast_mm.PackSuperpixelSegInputs``, batched by
    ``cast_mm.SuperpixelSegDataPreProcessor``). ``slide`` inference follows the official
    protocol instead: every window gets superpixels of its own, computed by the superpixel
    source on the window of the uint8 image the data preprocessor kept, so superpixels never
    straddle windows and the pipeline needs no superpixel transform.

    Heads of two kinds run here, as decode or auxiliary heads, mixed as you like: cast_mm's
    segment heads read :class:`CASTFeatures` (a head class says so with
    ``reads_cast_features = True``), and every other mmseg decode head reads the backbone's
    feature maps (:meth:`CAST.feature_maps`), through ``neck`` where one is given. When a head
    reads feature maps and the backbone config names no ``out_type``, the segmentor sets
    ``out_type='feature_maps'``; another ``out_type`` is an error. Heads that cannot work
    (:data:`UNSUPPORTED_HEADS`, cascade heads) are refused with the reason.

    The backbone's level fusion is built only when a head reads the fused tokens (a head class
    says it does not with ``needs_fused_tokens = False``; feature-map heads do not); set
    ``backbone.fuse_levels`` to decide yourself.

    Args:
        backbone (dict): a ``cast_mm.CAST`` config in ``mode='segmentation'``.
        decode_head (dict): a head taking :class:`CASTFeatures`
            (``cast_mm.SuperpixelMaskTransformerHead``, ``cast_mm.HierarchyMLPHead``) or any
            mmseg decode head that reads a list of feature maps (``UPerHead``,
            ``SegformerHead``, ``FCNHead``, ...).
        window_superpixels (dict): the superpixel source of slide windows, any source of
            ``cast_mm.registry.SUPERPIXEL_SOURCES`` (``cast_mm.SEEDSSuperpixels``,
            ``cast_mm.SLICSuperpixels``: :mod:`cast_mm.superpixels`). Its
            ``channel_order`` is set from the data preprocessor (RGB after ``bgr_to_rgb``).
            Defaults to SEEDS with the official segmentation parameters.
        device_superpixels (dict, optional): compute the superpixels of every batch inside the
            model (training, whole and slide inference alike; the pipeline then needs no
            superpixel transform), with this source; without a ``type`` it is the batched
            torch SLIC on the batch's device (``cast_mm.SLICSuperpixels``: keys
            ``pixels_per_superpixel`` (default 256), ``compactness``, ``num_iterations``).
            Use it when CPU SEEDS in the data loader bounds GPU training. It replaces
            ``window_superpixels``. Defaults to None (pipeline / window superpixels).
        predict_by_segments (bool): in whole-image prediction that mmseg would not crop,
            flip or resize, take each pixel's class from one argmax per superpixel instead of
            mmseg's per-pixel argmax over the classes (:meth:`predicts_by_segments`; the same
            data samples). Defaults to True; False always runs mmseg's post-processing.
        **kwargs: the rest of ``EncoderDecoder`` (``neck`` (on the feature maps),
            ``auxiliary_head``, ``train_cfg``, ``test_cfg`` (checked by
            :func:`check_test_cfg`), ``data_preprocessor``, ``init_cfg``).
    """

    def __init__(self,
                 backbone: Dict,
                 decode_head: Dict,
                 window_superpixels: Optional[Dict] = None,
                 device_superpixels: Optional[Dict] = None,
                 predict_by_segments: bool = FAST['segmentor']['predict_by_segments'],
                 **kwargs) -> None:
        if not isinstance(predict_by_segments, bool):
            raise TypeError(f'predict_by_segments must be True or False, got '
                            f'{predict_by_segments!r}')
        test_cfg = check_test_cfg(kwargs.pop('test_cfg', None))
        backbone = self._backbone_for_heads(backbone, decode_head, kwargs.get('auxiliary_head'),
                                            kwargs.get('neck'))
        super().__init__(backbone, decode_head, test_cfg=test_cfg, **kwargs)
        if not isinstance(self.backbone, CAST) or self.backbone.mode != 'segmentation':
            raise ValueError("SuperpixelEncoderDecoder needs a cast_mm.CAST backbone with "
                             "mode='segmentation'")
        channel_order = 'rgb' if getattr(
            self.data_preprocessor, 'channel_conversion', False) else 'bgr'
        #: Superpixels computed in the model for every batch, not only for slide windows.
        self.superpixels_in_model = device_superpixels is not None
        if self.superpixels_in_model:
            source = dict(DEFAULT_DEVICE_SUPERPIXELS, **device_superpixels)
        else:
            source = window_superpixels or DEFAULT_WINDOW_SUPERPIXELS
        #: The superpixel source of everything computed in the model.
        self.superpixel_source = build_superpixel_source(source, channel_order)
        #: Whole-image predictions from one argmax per superpixel where they can be.
        self.predict_by_segments_enabled = predict_by_segments
        log_model_execution(self)

    @staticmethod
    def _backbone_for_heads(backbone: Dict, decode_head: Dict, auxiliary_head,
                            neck: Optional[Dict]) -> Dict:
        """The backbone config completed for the heads: ``out_type='feature_maps'`` where a
        head reads feature maps, ``fuse_levels`` where a head reads the fused tokens."""
        check_heads_supported(decode_head, auxiliary_head)
        auxiliaries = _heads(auxiliary_head)
        if len({reads_cast_features(head) for head in auxiliaries}) > 1:
            raise ValueError('the auxiliary heads must all read feature maps or all read '
                             'CASTFeatures (mmseg hands them the same inputs)')
        map_heads = [head for head in _heads(decode_head, auxiliary_head)
                     if not reads_cast_features(head)]
        if neck is not None and not map_heads:
            raise ValueError('a neck reads feature maps and no head here does (cast_mm\'s '
                             'segment heads read CASTFeatures): remove model.neck')
        if not isinstance(backbone, dict) or backbone.get('mode') != 'segmentation':
            return backbone  # refused with a clear error once built
        backbone = dict(backbone)
        if map_heads:
            names = sorted({getattr(head_class(head), '__name__', '?') for head in map_heads})
            out_type = backbone.setdefault('out_type', 'feature_maps')
            if out_type != 'feature_maps':
                raise ValueError(f'{", ".join(names)} read(s) feature maps and the CAST backbone '
                                 f"has out_type={out_type!r}: set model.backbone.out_type="
                                 "'feature_maps' (or leave it out)")
        if 'fuse_levels' not in backbone:
            backbone['fuse_levels'] = heads_need_fused_tokens(decode_head, auxiliary_head)
        return backbone

    # ----------------------------------------------------------------------- superpixels
    def superpixel_inputs(self, inputs: Tensor,
                          data_samples: OptSampleList) -> SuperpixelInputs:
        """The superpixel maps and uint8 images the data samples of ``inputs`` carry."""
        maps = sample_superpixels(data_samples)
        if maps is not None:
            maps = torch.stack(maps).to(inputs.device)
            if maps.shape[-2:] != inputs.shape[-2:]:
                raise ValueError(f'superpixel maps of size {tuple(maps.shape[-2:])} do not '
                                 f'match the batch {tuple(inputs.shape[-2:])}; batch them with '
                                 "dict(type='cast_mm.SuperpixelSegDataPreProcessor')")
        images = None
        if data_samples and all(SUPERPIXEL_IMAGE_FIELD in s for s in data_samples):
            images = torch.stack([s.get(SUPERPIXEL_IMAGE_FIELD) for s in data_samples])
        num_slots = batch_slot_count(data_samples) if maps is not None else None
        return SuperpixelInputs(maps, images, num_slots)

    def compute_superpixels(self, superpixels: SuperpixelInputs) -> Tensor:
        """Superpixels ``(B, H, W)`` computed by the superpixel source on the kept images."""
        if superpixels.images is None:
            raise ValueError(
                'superpixels computed in the model (slide windows, device_superpixels) are made '
                'from the uint8 images that cast_mm.SuperpixelSegDataPreProcessor keeps in the '
                "data samples: use data_preprocessor=dict(type='cast_mm."
                "SuperpixelSegDataPreProcessor', ...) and pass its data_samples on")
        return self.superpixel_source.compute_batch(superpixels.images)

    def resolve_superpixels(self, superpixels: SuperpixelInputs) -> Tensor:
        """The ``(B, H, W)`` maps a whole batch runs on: computed in the model with
        ``device_superpixels``, otherwise the pipeline's."""
        if self.superpixels_in_model:
            return self.compute_superpixels(superpixels)
        if superpixels.maps is None:
            raise ValueError('CAST needs a superpixel map per image and the data samples carry '
                             f"none: {MISSING_SUPERPIXELS_HINT}; or set the model's "
                             "device_superpixels=dict(pixels_per_superpixel=256) to compute them "
                             "in the model; for inference only, test_cfg=dict(mode='slide', ...) "
                             "computes them per window")
        return superpixels.maps

    def resolve_num_slots(self, superpixels: SuperpixelInputs) -> Optional[int]:
        """Token slots of :meth:`resolve_superpixels`' maps when known on the host, else None."""
        return None if self.superpixels_in_model else superpixels.num_slots

    def batch_superpixels(self, inputs: Tensor, data_samples: OptSampleList) -> Tensor:
        """The ``(B, H, W)`` superpixel maps the model runs ``inputs`` on."""
        return self.resolve_superpixels(self.superpixel_inputs(inputs, data_samples))

    # -------------------------------------------------------------------------- forward
    def extract_feat(self, inputs: Tensor, superpixels: Tensor,
                     num_slots: Optional[int] = None) -> CASTFeatures:
        """All CAST outputs for the images and their ``(B, H, W)`` superpixel maps.

        ``num_slots``, where given, was computed and checked on the host (the data
        preprocessor's ``superpixel_slots``): the backbone then reads nothing back to size
        its tokens.
        """
        return self.backbone.forward_features(inputs, superpixels, num_slots,
                                              ids_checked=num_slots is not None)

    def _extract_batch_feat(self, inputs: Tensor, data_samples: OptSampleList) -> CASTFeatures:
        superpixels = self.superpixel_inputs(inputs, data_samples)
        return self.extract_feat(inputs, self.resolve_superpixels(superpixels),
                                 self.resolve_num_slots(superpixels))

    def feature_maps(self, feats: CASTFeatures, image_size: Tuple[int, int]) -> Tuple[Tensor]:
        """The backbone's feature maps of ``feats`` (:meth:`CAST.feature_maps`), through the
        neck where there is one: what feature-map heads read."""
        maps = self.backbone.feature_maps(feats, tuple(image_size))
        return self.neck(maps) if self.with_neck else maps

    def head_inputs(self, head, feats: CASTFeatures, image_size: Tuple[int, int],
                    maps: Optional[Tuple[Tensor]] = None) -> Union[CASTFeatures, Tuple[Tensor]]:
        """What ``head`` (a head or mmseg's list of auxiliary heads) reads: ``feats``, or the
        feature maps (``maps`` where already computed for this batch)."""
        if reads_cast_features(_heads(head)[0]):
            return feats
        return maps if maps is not None else self.feature_maps(feats, image_size)

    def encode_decode(self, inputs: Tensor, batch_img_metas: List[dict],
                      superpixels: Optional[Tensor] = None,
                      num_slots: Optional[int] = None) -> Tensor:
        """Class scores ``(B, num_classes, H, W)`` of ``inputs`` and their superpixel maps."""
        if superpixels is None:
            raise ValueError('SuperpixelEncoderDecoder.encode_decode needs the (B, H, W) '
                             'superpixel maps of the images')
        feats = self.extract_feat(inputs, superpixels, num_slots)
        size = inputs.shape[-2:]
        if not reads_cast_features(self.decode_head):
            # mmseg's head prediction (some heads predict from one of several training
            # outputs), resized to these inputs: metas with their size, as mmseg's slide
            # inference makes them, without changing the caller's.
            metas = [dict(meta, img_shape=size) for meta in batch_img_metas]
            return self.decode_head.predict(self.feature_maps(feats, size), metas,
                                            self.test_cfg)
        seg_logits = self.decode_head.forward(feats)
        if seg_logits.shape[-2:] != inputs.shape[-2:]:
            seg_logits = F.interpolate(seg_logits, size=inputs.shape[-2:], mode='bilinear',
                                       align_corners=self.align_corners)
        return seg_logits

    def loss(self, inputs: Tensor, data_samples: SampleList) -> Dict[str, Tensor]:
        feats = self._extract_batch_feat(inputs, data_samples)
        size = inputs.shape[-2:]
        decode_inputs = self.head_inputs(self.decode_head, feats, size)
        losses = dict(self._decode_head_forward_train(decode_inputs, data_samples))
        if self.with_auxiliary_head:
            maps = None if isinstance(decode_inputs, CASTFeatures) else decode_inputs
            losses.update(self._auxiliary_head_forward_train(
                self.head_inputs(self.auxiliary_head, feats, size, maps), data_samples))
        return losses

    def _forward(self, inputs: Tensor, data_samples: OptSampleList = None) -> Tensor:
        feats = self._extract_batch_feat(inputs, data_samples)
        return self.decode_head.forward(
            self.head_inputs(self.decode_head, feats, inputs.shape[-2:]))

    def predict(self, inputs: Tensor, data_samples: OptSampleList = None) -> SampleList:
        """As mmseg's ``predict``; :meth:`inference` also gets the batch's superpixels."""
        superpixels = self.superpixel_inputs(inputs, data_samples)
        if data_samples is not None:
            batch_img_metas = [sample.metainfo for sample in data_samples]
        else:
            shape = inputs.shape[2:]
            batch_img_metas = [dict(ori_shape=shape, img_shape=shape, pad_shape=shape,
                                    padding_size=[0, 0, 0, 0])] * inputs.shape[0]
        if self.predicts_by_segments(inputs, batch_img_metas):
            return self.predict_by_segments(inputs, superpixels, data_samples)
        seg_logits = self.inference(inputs, batch_img_metas, superpixels)
        return self.postprocess_result(seg_logits, data_samples)

    def predicts_by_segments(self, inputs: Tensor, batch_img_metas: List[dict]) -> bool:
        """Whether :meth:`predict` can take each pixel's class from its superpixel.

        True for whole-image inference by a head whose scores are constant on superpixels
        (:class:`SegmentDecodeHead`, more than one class) when mmseg's post-processing would
        neither crop padding, flip nor resize the scores: the argmax of a pixel's scores is
        then the argmax of its superpixel's, computed once per superpixel instead of over
        ``num_classes`` values at every pixel.
        """
        if not self.predict_by_segments_enabled or self.with_auxiliary_head:
            return False
        if check_test_cfg(self.test_cfg).mode != 'whole':
            return False
        if not isinstance(self.decode_head, SegmentDecodeHead) or self.out_channels < 2:
            return False
        size = tuple(inputs.shape[-2:])
        for meta in batch_img_metas:
            padding = meta.get('img_padding_size', meta.get('padding_size', [0] * 4))
            if any(padding) or meta.get('flip') or tuple(meta['ori_shape'][:2]) != size:
                return False
        return True

    def predict_by_segments(self, inputs: Tensor, superpixels: SuperpixelInputs,
                            data_samples: OptSampleList = None) -> SampleList:
        """:meth:`predict` of whole images whose scores need no post-processing
        (:meth:`predicts_by_segments`): the same ``seg_logits`` and ``pred_sem_seg``."""
        feats = self.extract_feat(inputs, self.resolve_superpixels(superpixels),
                                  self.resolve_num_slots(superpixels))
        self.decode_head.check_inputs(feats)
        scores = self.decode_head.segment_scores(feats)
        seg_logits = segment_to_pixels(scores, feats.token_labels)
        if seg_logits.shape[-2:] != inputs.shape[-2:]:  # maps of another size: mmseg's path
            seg_logits = F.interpolate(seg_logits, size=inputs.shape[-2:], mode='bilinear',
                                       align_corners=self.align_corners)
            return self.postprocess_result(seg_logits, data_samples)
        segment_pred = scores.argmax(dim=-1, keepdim=True)
        seg_pred = gather_tokens(segment_pred, feats.token_labels).squeeze(-1)
        if data_samples is None:
            data_samples = [SegDataSample() for _ in range(inputs.shape[0])]
        for i, sample in enumerate(data_samples):
            sample.set_data(dict(seg_logits=PixelData(data=seg_logits[i]),
                                 pred_sem_seg=PixelData(data=seg_pred[i:i + 1])))
        return data_samples

    def inference(self, inputs: Tensor, batch_img_metas: List[dict],
                  superpixels: Optional[SuperpixelInputs] = None) -> Tensor:
        """Scores of a test batch in the ``test_cfg`` mode (checked by
        :func:`check_test_cfg`).

        Args:
            inputs (Tensor): normalised images ``(B, 3, H, W)``.
            batch_img_metas (List[dict]): their meta information.
            superpixels (SuperpixelInputs, optional): what their superpixels come from.
        """
        mode = check_test_cfg(self.test_cfg).mode
        superpixels = superpixels or SuperpixelInputs()
        if mode == 'slide':
            return self.slide_inference(inputs, batch_img_metas, superpixels)
        return self.whole_inference(inputs, batch_img_metas, superpixels)

    def whole_inference(self, inputs: Tensor, batch_img_metas: List[dict],
                        superpixels: Optional[SuperpixelInputs] = None) -> Tensor:
        """Scores of whole images."""
        superpixels = superpixels or SuperpixelInputs()
        return self.encode_decode(inputs, batch_img_metas, self.resolve_superpixels(superpixels),
                                  self.resolve_num_slots(superpixels))

    def slide_inference(self, inputs: Tensor, batch_img_metas: List[dict],
                        superpixels: Optional[SuperpixelInputs] = None) -> Tensor:
        """Average the scores of overlapping windows, each with its own superpixels.

        Windows are placed as in mmseg (the last one flush with the border). An image smaller
        than ``crop_size`` gets one window of its own size, or, with
        ``test_cfg.resize_to_window=True`` (the official protocol), is first resized up so
        that the window fits (:func:`window_fit_size`); its scores are then resized back to
        the input size.
        """
        superpixels = superpixels or SuperpixelInputs()
        stride_h, stride_w = self.test_cfg.stride
        crop_h, crop_w = self.test_cfg.crop_size
        size = tuple(inputs.shape[-2:])
        fit = window_fit_size(size, (crop_h, crop_w)) \
            if self.test_cfg.get('resize_to_window', False) else None
        if fit is not None:
            inputs = F.interpolate(inputs, size=fit, mode='bilinear', align_corners=False)
            superpixels = superpixels.resized(fit)
        batch, _, height, width = inputs.shape
        preds = inputs.new_zeros((batch, self.out_channels, height, width))
        counts = inputs.new_zeros((batch, 1, height, width))
        for y in window_starts(height, crop_h, stride_h):
            for x in window_starts(width, crop_w, stride_w):
                window = inputs[:, :, y:y + crop_h, x:x + crop_w]
                maps = self.compute_superpixels(superpixels.window(y, x, crop_h, crop_w))
                preds[:, :, y:y + crop_h, x:x + crop_w] += self.encode_decode(
                    window, batch_img_metas, maps)
                counts[:, :, y:y + crop_h, x:x + crop_w] += 1
        scores = preds / counts
        if fit is not None:
            scores = F.interpolate(scores, size=size, mode='bilinear',
                                   align_corners=self.align_corners)
        return scores


def window_fit_size(size: Tuple[int, int],
                    crop: Tuple[int, int]) -> Optional[Tuple[int, int]]:
    """The size an image of ``size`` (height, width) is resized to so that a ``crop`` window
    fits, aspect ratio kept; None when it already fits.

    The side that needs the larger scale becomes the window's side and the other side is
    ``int(ratio * window side)``, as the official evaluation resizes (for a square window:
    the shorter side becomes the window's).
    """
    (height, width), (crop_h, crop_w) = size, crop
    if height >= crop_h and width >= crop_w:
        return None
    if crop_h / height >= crop_w / width:
        return crop_h, max(int(width / height * crop_h), crop_w)
    return max(int(height / width * crop_w), crop_h), crop_w


def window_starts(size: int, crop: int, stride: int) -> List[int]:
    """Top (or left) coordinates of sliding windows over ``size`` pixels.

    Anchors ``0, stride, 2 * stride, ...`` while a window still fits, plus one window flush
    with the far border; a single window at 0 when ``size <= crop``.
    """
    if stride <= 0 or crop <= 0:
        raise ValueError(f'slide inference needs positive crop_size and stride, got '
                         f'crop {crop}, stride {stride}')
    if size <= crop:
        return [0]
    num = (size - crop + stride - 1) // stride + 1
    return sorted({min(i * stride, size - crop) for i in range(num)})

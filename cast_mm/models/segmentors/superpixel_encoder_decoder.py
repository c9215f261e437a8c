"""mmseg EncoderDecoder that hands CAST its superpixels."""
import dataclasses
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.structures import PixelData
from mmseg.models.segmentors import EncoderDecoder
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


def heads_need_fused_tokens(*heads: Optional[Union[Dict, object]]) -> bool:
    """Whether any of the head configs (or heads) reads CAST's fused segment tokens.

    A head class says it does not with ``needs_fused_tokens = False``.
    """
    for head in heads:
        if head is None:
            continue
        if isinstance(head, (list, tuple)):  # mmseg takes a list of auxiliary heads
            if heads_need_fused_tokens(*head):
                return True
            continue
        if isinstance(head, dict):
            kind = head.get('type')
            head = MODELS.get(kind) if isinstance(kind, str) else kind
        if getattr(head, 'needs_fused_tokens', True):
            return True
    return False


@MODELS.register_module()
class SuperpixelEncoderDecoder(EncoderDecoder):
    """Encoder-decoder segmentor for CAST: the backbone gets the images and their superpixels.

    Training and ``whole`` inference read the superpixel maps the pipeline packed into the data
    samples (``cast_mm.SEEDSSuperpixels`` + ``cast_mm.PackSuperpixelSegInputs``, batched by
    ``cast_mm.SuperpixelSegDataPreProcessor``). ``slide`` inference follows the official
    protocol instead: every window gets superpixels of its own, computed by the superpixel
    source on the window of the uint8 image the data preprocessor kept, so superpixels never
    straddle windows and the pipeline needs no superpixel transform.

    The backbone's level fusion is built only when a head reads the fused tokens (a head class
    says it does not with ``needs_fused_tokens = False``); set ``backbone.fuse_levels`` to
    decide yourself.

    Args:
        backbone (dict): a ``cast_mm.CAST`` config in ``mode='segmentation'``.
        decode_head (dict): a head taking :class:`CASTFeatures`
            (``cast_mm.SuperpixelMaskTransformerHead`` or ``cast_mm.HierarchyMLPHead``).
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
        **kwargs: the rest of ``EncoderDecoder`` (``train_cfg``, ``test_cfg`` (checked by
            :func:`check_test_cfg`), ``data_preprocessor``, ``auxiliary_head``, ``init_cfg``).
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
        if kwargs.get('neck') is not None:
            raise ValueError('SuperpixelEncoderDecoder takes no neck: CAST features are '
                             'segment tokens, not feature maps')
        test_cfg = check_test_cfg(kwargs.pop('test_cfg', None))
        if isinstance(backbone, dict) and backbone.get('mode') == 'segmentation' \
                and 'fuse_levels' not in backbone:
            backbone = dict(backbone, fuse_levels=heads_need_fused_tokens(
                decode_head, kwargs.get('auxiliary_head')))
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

    def encode_decode(self, inputs: Tensor, batch_img_metas: List[dict],
                      superpixels: Optional[Tensor] = None,
                      num_slots: Optional[int] = None) -> Tensor:
        """Class scores ``(B, num_classes, H, W)`` of ``inputs`` and their superpixel maps."""
        if superpixels is None:
            raise ValueError('SuperpixelEncoderDecoder.encode_decode needs the (B, H, W) '
                             'superpixel maps of the images')
        seg_logits = self.decode_head.forward(self.extract_feat(inputs, superpixels, num_slots))
        if seg_logits.shape[-2:] != inputs.shape[-2:]:
            seg_logits = F.interpolate(seg_logits, size=inputs.shape[-2:], mode='bilinear',
                                       align_corners=self.align_corners)
        return seg_logits

    def loss(self, inputs: Tensor, data_samples: SampleList) -> Dict[str, Tensor]:
        feats = self._extract_batch_feat(inputs, data_samples)
        losses = dict(self._decode_head_forward_train(feats, data_samples))
        if self.with_auxiliary_head:
            losses.update(self._auxiliary_head_forward_train(feats, data_samples))
        return losses

    def _forward(self, inputs: Tensor, data_samples: OptSampleList = None) -> Tensor:
        feats = self._extract_batch_feat(inputs, data_samples)
        return self.decode_head.forward(feats)

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

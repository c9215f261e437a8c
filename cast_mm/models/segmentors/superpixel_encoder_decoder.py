"""mmseg EncoderDecoder that hands CAST its superpixels."""
from typing import Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F
from mmseg.models.segmentors import EncoderDecoder
from mmseg.utils import OptSampleList, SampleList
from torch import Tensor

from cast_mm.datasets.transforms.formatting import MISSING_SUPERPIXELS_HINT
from cast_mm.ops import slic_superpixels
from cast_mm.registry import MODELS, TRANSFORMS
from ..backbones.cast import CAST, CASTFeatures
from ..data_preprocessors import sample_superpixels
from ..utils import stack_superpixel_maps

#: Superpixels of sliding windows: the official protocol (SEEDS, window area / 16**2).
DEFAULT_WINDOW_SUPERPIXELS = dict(type='cast_mm.SEEDSSuperpixels', preset='seg')


@MODELS.register_module()
class SuperpixelEncoderDecoder(EncoderDecoder):
    """Encoder-decoder segmentor for CAST: the backbone gets the images and their superpixels.

    Training and ``whole`` inference read the superpixel maps the pipeline packed into the data
    samples (``cast_mm.SEEDSSuperpixels`` + ``cast_mm.PackSuperpixelSegInputs``, batched by
    ``cast_mm.SuperpixelSegDataPreProcessor``). ``slide`` inference follows the official
    protocol instead: every window gets superpixels computed on that window (the normalised
    window is mapped back to uint8 colours first), so superpixels never straddle windows and
    the pipeline needs no superpixel transform.

    Args:
        backbone (dict): a ``cast_mm.CAST`` config in ``mode='segmentation'``.
        decode_head (dict): a head taking :class:`CASTFeatures`
            (``cast_mm.SuperpixelMaskTransformerHead`` or ``cast_mm.HierarchyMLPHead``).
        window_superpixels (dict): the superpixel transform run on each slide window. Its
            ``channel_order`` is set from the data preprocessor (RGB after ``bgr_to_rgb``).
            Defaults to SEEDS with the official segmentation parameters.
        device_superpixels (dict, optional): compute superpixels inside the model, on the
            device of the batch, with the batched torch SLIC
            (:func:`cast_mm.ops.slic_superpixels`; keys ``pixels_per_superpixel`` (default
            256), ``compactness``, ``num_iterations``), for training, whole and slide
            inference alike; the pipeline then needs no superpixel transform. Use it when CPU
            SEEDS in the data loader bounds GPU training. Defaults to None (pipeline / window
            SEEDS).
        **kwargs: the rest of ``EncoderDecoder`` (``train_cfg``, ``test_cfg``,
            ``data_preprocessor``, ``auxiliary_head``, ``init_cfg``).
    """

    def __init__(self,
                 backbone: Dict,
                 decode_head: Dict,
                 window_superpixels: Optional[Dict] = None,
                 device_superpixels: Optional[Dict] = None,
                 **kwargs) -> None:
        if kwargs.get('neck') is not None:
            raise ValueError('SuperpixelEncoderDecoder takes no neck: CAST features are '
                             'segment tokens, not feature maps')
        super().__init__(backbone, decode_head, **kwargs)
        if not isinstance(self.backbone, CAST) or self.backbone.mode != 'segmentation':
            raise ValueError("SuperpixelEncoderDecoder needs a cast_mm.CAST backbone with "
                             "mode='segmentation'")
        window_cfg = dict(window_superpixels or DEFAULT_WINDOW_SUPERPIXELS)
        window_cfg['channel_order'] = 'rgb' if getattr(
            self.data_preprocessor, 'channel_conversion', False) else 'bgr'
        self.window_superpixels = TRANSFORMS.build(window_cfg)
        self.device_superpixels = dict(device_superpixels) if device_superpixels else None
        if self.device_superpixels is not None:
            unknown = set(self.device_superpixels) - {
                'pixels_per_superpixel', 'compactness', 'num_iterations'}
            if unknown:
                raise ValueError(f'device_superpixels got unknown keys {sorted(unknown)}')

    # ----------------------------------------------------------------------- superpixels
    def batch_superpixels(self, inputs: Tensor, data_samples: OptSampleList) -> Tensor:
        """The ``(B, H, W)`` superpixel maps of ``inputs``: stacked by the data preprocessor, or
        computed on the device with ``device_superpixels``."""
        if self.device_superpixels is not None:
            return self.compute_superpixels(inputs)
        maps = sample_superpixels(data_samples)
        if maps is None:
            raise ValueError('CAST needs a superpixel map per image and the data samples carry '
                             f"none: {MISSING_SUPERPIXELS_HINT}; or set the model's "
                             "device_superpixels=dict(pixels_per_superpixel=256) to compute them "
                             "in the model; for inference only, test_cfg=dict(mode='slide', ...) "
                             "computes them per window")
        superpixels = torch.stack(maps).to(inputs.device)
        if superpixels.shape[-2:] != inputs.shape[-2:]:
            raise ValueError(f'superpixel maps of size {tuple(superpixels.shape[-2:])} do not '
                             f'match the batch {tuple(inputs.shape[-2:])}; batch them with '
                             "dict(type='cast_mm.SuperpixelSegDataPreProcessor')")
        return superpixels

    def denormalize(self, inputs: Tensor) -> Tensor:
        """Undo the data preprocessor's normalisation: float images in ``[0, 255]``."""
        images = inputs.detach().float()
        if getattr(self.data_preprocessor, '_enable_normalize', False):
            images = images * self.data_preprocessor.std + self.data_preprocessor.mean
        return images.clamp(0, 255)

    def to_uint8_images(self, inputs: Tensor) -> List[np.ndarray]:
        """The batch as ``H x W x 3`` uint8 arrays in the data preprocessor's colour order."""
        images = self.denormalize(inputs).round().to(torch.uint8).permute(0, 2, 3, 1)
        return list(images.cpu().numpy())

    def compute_superpixels(self, inputs: Tensor) -> Tensor:
        """Superpixels of normalised images ``(B, 3, H, W)``: torch SLIC on the device with
        ``device_superpixels``, otherwise ``window_superpixels`` per image on the CPU."""
        if self.device_superpixels is not None:
            cfg = dict(self.device_superpixels)
            budget = inputs.shape[-2] * inputs.shape[-1] // cfg.pop('pixels_per_superpixel', 256)
            order = self.window_superpixels.channel_order
            with torch.no_grad():
                return slic_superpixels(self.denormalize(inputs), max(1, budget),
                                        channel_order=order, **cfg)
        maps = [torch.from_numpy(self.window_superpixels.compute(image))
                for image in self.to_uint8_images(inputs)]
        return stack_superpixel_maps(maps).to(inputs.device)

    # -------------------------------------------------------------------------- forward
    def extract_feat(self, inputs: Tensor, superpixels: Tensor) -> CASTFeatures:
        """All CAST outputs for the images and their ``(B, H, W)`` superpixel maps."""
        return self.backbone.forward_features(inputs, superpixels)

    def encode_decode(self, inputs: Tensor, batch_img_metas: List[dict],
                      superpixels: Optional[Tensor] = None) -> Tensor:
        """Class scores ``(B, num_classes, H, W)`` of ``inputs``.

        Without ``superpixels`` they are computed with ``window_superpixels``.
        """
        if superpixels is None:
            superpixels = self.compute_superpixels(inputs)
        seg_logits = self.decode_head.forward(self.extract_feat(inputs, superpixels))
        if seg_logits.shape[-2:] != inputs.shape[-2:]:
            seg_logits = F.interpolate(seg_logits, size=inputs.shape[-2:], mode='bilinear',
                                       align_corners=self.align_corners)
        return seg_logits

    def loss(self, inputs: Tensor, data_samples: SampleList) -> Dict[str, Tensor]:
        feats = self.extract_feat(inputs, self.batch_superpixels(inputs, data_samples))
        losses = dict(self._decode_head_forward_train(feats, data_samples))
        if self.with_auxiliary_head:
            losses.update(self._auxiliary_head_forward_train(feats, data_samples))
        return losses

    def _forward(self, inputs: Tensor, data_samples: OptSampleList = None) -> Tensor:
        feats = self.extract_feat(inputs, self.batch_superpixels(inputs, data_samples))
        return self.decode_head.forward(feats)

    def predict(self, inputs: Tensor, data_samples: OptSampleList = None) -> SampleList:
        if data_samples is not None:
            batch_img_metas = [sample.metainfo for sample in data_samples]
        else:
            shape = inputs.shape[2:]
            batch_img_metas = [
                dict(ori_shape=shape, img_shape=shape, pad_shape=shape,
                     padding_size=[0, 0, 0, 0])
            ] * inputs.shape[0]
        if self.test_cfg.get('mode', 'whole') == 'slide':
            seg_logits = self.slide_inference(inputs, batch_img_metas)
        else:
            superpixels = self.batch_superpixels(inputs, data_samples)
            seg_logits = self.whole_inference(inputs, batch_img_metas, superpixels)
        return self.postprocess_result(seg_logits, data_samples)

    def whole_inference(self, inputs: Tensor, batch_img_metas: List[dict],
                        superpixels: Optional[Tensor] = None) -> Tensor:
        """Scores of whole images with the given (or freshly computed) superpixels."""
        return self.encode_decode(inputs, batch_img_metas, superpixels)

    def slide_inference(self, inputs: Tensor, batch_img_metas: List[dict]) -> Tensor:
        """Average the scores of overlapping windows, each with its own superpixels.

        Windows are placed as in mmseg (the last one flush with the border; windows shrink
        to images smaller than ``crop_size``).
        """
        stride_h, stride_w = self.test_cfg.stride
        crop_h, crop_w = self.test_cfg.crop_size
        batch, _, height, width = inputs.shape
        preds = inputs.new_zeros((batch, self.out_channels, height, width))
        counts = inputs.new_zeros((batch, 1, height, width))
        for y in window_starts(height, crop_h, stride_h):
            for x in window_starts(width, crop_w, stride_w):
                window = inputs[:, :, y:y + crop_h, x:x + crop_w]
                preds[:, :, y:y + crop_h, x:x + crop_w] += self.encode_decode(
                    window, batch_img_metas)
                counts[:, :, y:y + crop_h, x:x + crop_w] += 1
        return preds / counts


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

"""mmseg data preprocessor that also batches superpixel maps and keeps the uint8 images."""
from typing import Any, Dict, List, Sequence

import torch
from mmengine.structures import PixelData
from mmseg.models.data_preprocessor import SegDataPreProcessor
from torch import Tensor

from cast_mm.registry import MODELS
from cast_mm.superpixels import (MISSING_SUPERPIXELS_HINT, SUPERPIXEL_SLOTS_KEY, host_slot_count,
                                 sample_superpixels, stack_superpixel_maps)

#: Data-sample field holding the image as uint8 colours, for superpixels computed in the model.
SUPERPIXEL_IMAGE_FIELD = 'superpixel_image'


@MODELS.register_module()
class SuperpixelSegDataPreProcessor(SegDataPreProcessor):
    """``SegDataPreProcessor`` that also batches what CAST's superpixels are made from.

    Images are normalised and padded exactly as in mmseg. Each superpixel map must match its
    image's size before padding; it is padded to the batch size by repeating its border ids
    (:func:`~cast_mm.superpixels.stack_superpixel_maps`), so padded pixels never form
    segments of their own, and written back to the data samples, where the segmentor reads
    them.

    For superpixels computed in the model (sliding windows, ``device_superpixels``) every
    data sample also gets ``superpixel_image``: its image as uint8 colours on the model's
    device, ``(3, H, W)`` in the model's channel order, padded like the batch (padding takes
    the colour that the padded normalised value stands for). Superpixel sources run on these,
    never on a de-normalised copy of the batch. Args are those of ``SegDataPreProcessor``.

    Nothing is read back from the device: the pad colour is computed once, when the module is
    built (on the host), and the number of token slots of the batch (largest superpixel id +
    1) is computed from the data loader's maps before they move, and given to every sample as
    the metainfo ``superpixel_slots``, so the model needs no device sync to size its tokens.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # ``(3, 1, 1)`` uint8 colour that the padded normalised value stands for, computed
        # here, on the host, before mean and std move to the model's device.
        pad_colour = torch.full((3, 1, 1), float(self.pad_val))
        if self._enable_normalize:
            pad_colour = pad_colour * self.std + self.mean
        self.uint8_pad_colour = pad_colour.round().clamp(0, 255).to(torch.uint8)

    def forward(self, data: Dict, training: bool = False) -> Dict[str, Any]:
        images: Sequence[Tensor] = data['inputs']
        sizes = [tuple(img.shape[-2:]) for img in images]
        maps = sample_superpixels(data.get('data_samples'))
        if maps is not None:
            for i, (size, sp) in enumerate(zip(sizes, maps)):
                if tuple(sp.shape) != size:
                    raise ValueError(
                        f'sample {i}: superpixel map of shape {tuple(sp.shape)} does not match '
                        f'its image {size}; compute superpixels on the final image '
                        f'({MISSING_SUPERPIXELS_HINT})')
        num_slots = host_slot_count(maps) if maps is not None else None
        out = super().forward(data, training)
        samples = out['data_samples']
        if not samples:
            return out
        batch_size = tuple(out['inputs'].shape[-2:])
        device = out['inputs'].device
        if maps is not None:
            stacked = stack_superpixel_maps(maps, batch_size).to(device)
            for sample, sp in zip(samples, stacked):
                sample.superpixels = PixelData(data=sp[None])
                if num_slots is not None:  # batch padding repeats border ids: no new id
                    sample.set_metainfo({SUPERPIXEL_SLOTS_KEY: num_slots})
        for sample, image in zip(samples, self.uint8_images(images, batch_size)):
            sample.set_field(image.to(device), SUPERPIXEL_IMAGE_FIELD)
        return out

    def uint8_images(self, images: Sequence[Tensor], size: Sequence[int]) -> List[Tensor]:
        """The images as ``(3, H, W)`` uint8 in the model's channel order, padded to ``size``.

        Args:
            images: the ``(3, H_i, W_i)`` images the data loader gave.
            size: ``(H, W)`` of the padded batch.

        Returns:
            one image per sample; none when an image is not a 3-channel one (superpixel
            sources need colours).
        """
        if any(image.dim() != 3 or image.shape[0] != 3 for image in images):
            return []
        pad_colour = self.uint8_pad_colour
        out = []
        for image in images:
            if self.channel_conversion:
                image = image[[2, 1, 0]]
            if image.dtype != torch.uint8:
                image = image.float().round().clamp(0, 255).to(torch.uint8)
            padded = pad_colour.to(image.device).expand(3, *size).clone()
            padded[:, :image.shape[1], :image.shape[2]] = image
            out.append(padded)
        return out


__all__ = ['SuperpixelSegDataPreProcessor', 'SUPERPIXEL_IMAGE_FIELD', 'sample_superpixels']

"""mmseg data preprocessor that also batches superpixel maps."""
from typing import Any, Dict, List, Optional

from mmengine.structures import PixelData
from mmseg.models.data_preprocessor import SegDataPreProcessor
from torch import Tensor

from cast_mm.datasets.transforms.formatting import MISSING_SUPERPIXELS_HINT
from cast_mm.registry import MODELS
from ..utils import stack_superpixel_maps


def sample_superpixels(data_samples: Optional[List[Any]]) -> Optional[List[Tensor]]:
    """The ``(H, W)`` superpixel maps of a batch, or None if no sample carries one.

    Raises:
        ValueError: if only some samples carry a map.
    """
    if not data_samples:
        return None
    present = ['superpixels' in sample for sample in data_samples]
    if not any(present):
        return None
    if not all(present):
        raise ValueError(f'only {sum(present)} of {len(present)} samples carry superpixels; '
                         f'{MISSING_SUPERPIXELS_HINT}')
    return [sample.superpixels.data[0] for sample in data_samples]


@MODELS.register_module()
class SuperpixelSegDataPreProcessor(SegDataPreProcessor):
    """``SegDataPreProcessor`` that stacks and pads ``data_sample.superpixels`` with the images.

    Images are normalised and padded exactly as in mmseg. Each superpixel map must match its
    image's size before padding; it is padded to the batch size by repeating its border ids
    (:func:`~cast_mm.models.utils.stack_superpixel_maps`), so padded pixels never form
    segments of their own. The padded maps are written back to the data samples, where the
    segmentor reads them. Args are those of ``SegDataPreProcessor``.
    """

    def forward(self, data: Dict, training: bool = False) -> Dict[str, Any]:
        sizes = [tuple(img.shape[-2:]) for img in data['inputs']]
        maps = sample_superpixels(data.get('data_samples'))
        if maps is not None:
            for i, (size, sp) in enumerate(zip(sizes, maps)):
                if tuple(sp.shape) != size:
                    raise ValueError(
                        f'sample {i}: superpixel map of shape {tuple(sp.shape)} does not match '
                        f'its image {size}; compute superpixels on the final image '
                        f'({MISSING_SUPERPIXELS_HINT})')
        out = super().forward(data, training)
        if maps is not None:
            stacked = stack_superpixel_maps(maps, tuple(out['inputs'].shape[-2:]))
            stacked = stacked.to(out['inputs'].device)
            for sample, sp in zip(out['data_samples'], stacked):
                sample.superpixels = PixelData(data=sp[None])
        return out

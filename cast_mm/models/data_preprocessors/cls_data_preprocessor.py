"""mmpretrain data preprocessors that also batch superpixel maps (one per image or per view)."""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from mmpretrain.models.utils.data_preprocessor import ClsDataPreprocessor, SelfSupDataPreprocessor
from torch import Tensor

from cast_mm.registry import MODELS
from cast_mm.superpixels import (MISSING_CLS_SUPERPIXELS_HINT, SUPERPIXEL_SLOTS_KEY,
                                 host_slot_count, sample_superpixels, stack_superpixel_maps)


def pad_sample_superpixels(data_samples: Optional[Sequence[Any]],
                           expected_shapes: Sequence[Tuple[int, ...]],
                           size: Tuple[int, int],
                           device: torch.device) -> None:
    """Check, pad and move ``data_sample.superpixels`` of a batch, in place.

    Args:
        data_samples: the batch's data samples; each must carry ``superpixels``.
        expected_shapes: the shape each sample's map must have (that of its image(s) before
            batch padding): ``(H, W)``, or ``(V, H, W)`` for ``V`` views.
        size: ``(H, W)`` of the padded image batch.
        device: where the model runs.
    """
    maps = []
    for i, (superpixels, shape) in enumerate(zip(
            sample_superpixels(data_samples, MISSING_CLS_SUPERPIXELS_HINT, required=True),
            expected_shapes)):
        if tuple(superpixels.shape) != tuple(shape):
            raise ValueError(
                f'sample {i}: superpixel map of shape {tuple(superpixels.shape)} does '
                f'not match its image(s) {tuple(shape)}; compute superpixels on the final image '
                f'({MISSING_CLS_SUPERPIXELS_HINT})')
        maps.append(superpixels.reshape(-1, *shape[-2:]))
    stacked = stack_superpixel_maps([m for views in maps for m in views], size).to(device)
    for sample, padded in zip(data_samples, stacked.split([len(m) for m in maps])):
        sample.superpixels = padded.reshape(*sample.superpixels.shape[:-2], *size)


def mark_host_checked_ids(data_samples: Optional[Sequence[Any]]) -> None:
    """Check the ids of the data loader's maps on the host and record the batch's token slots
    in every sample's metainfo (``superpixel_slots``), so the model need not read them back
    from the device. Nothing is recorded where a map is not on the host."""
    maps = sample_superpixels(data_samples)
    if maps is None:
        return
    num_slots = host_slot_count(maps)
    if num_slots is not None:
        for sample in data_samples:
            sample.set_metainfo({SUPERPIXEL_SLOTS_KEY: num_slots})


@MODELS.register_module()
class SuperpixelClsDataPreprocessor(ClsDataPreprocessor):
    """``ClsDataPreprocessor`` that pads ``data_sample.superpixels`` with the images.

    Images are normalised, padded and batch-augmented (Mixup / CutMix) exactly as in
    mmpretrain; batch augmentations leave the superpixel maps alone (official DeiT behaviour).
    Each ``(H, W)`` map is padded to the batch size by repeating border ids and moved to the
    model's device in place; the classifier stacks them. The ids are checked on the host,
    before they move (:func:`mark_host_checked_ids`). Args are those of
    ``ClsDataPreprocessor``.
    """

    def forward(self, data: Dict, training: bool = False) -> Dict[str, Any]:
        shapes = [tuple(img.shape[-2:]) for img in data['inputs']]
        mark_host_checked_ids(data.get('data_samples'))
        out = super().forward(data, training)
        pad_sample_superpixels(out['data_samples'], shapes, tuple(out['inputs'].shape[-2:]),
                               out['inputs'].device)
        return out


@MODELS.register_module()
class SuperpixelSelfSupDataPreprocessor(SelfSupDataPreprocessor):
    """``SelfSupDataPreprocessor`` for multi-view inputs with one superpixel map per view.

    Each data sample carries ``superpixels`` of shape ``(V, H, W)`` (view ``v`` of every
    sample is ``inputs[v]``); the maps are checked against the views and moved to the model's
    device in place. Args are those of ``SelfSupDataPreprocessor``.
    """

    def forward(self, data: Dict, training: bool = False) -> Dict[str, Any]:
        out = super().forward(data, training)
        views: List[Tensor] = out['inputs'] if isinstance(out['inputs'], list) \
            else [out['inputs']]
        sizes = {tuple(view.shape[-2:]) for view in views}
        if len(sizes) != 1:
            raise ValueError(f'all views must have the same size to batch their superpixels, '
                             f'got {sorted(sizes)}')
        size = sizes.pop()
        expected = (len(views), *size) if isinstance(out['inputs'], list) else size
        pad_sample_superpixels(out['data_samples'], [expected] * len(views[0]), size,
                               views[0].device)
        return out

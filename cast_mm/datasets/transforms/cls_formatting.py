"""Packing for mmpretrain pipelines: the superpixel map travels in the ``DataSample``."""
from typing import Dict

import numpy as np
import torch
from mmpretrain.datasets.transforms import PackInputs

from cast_mm.registry import TRANSFORMS
from cast_mm.superpixels import MISSING_CLS_SUPERPIXELS_HINT


@TRANSFORMS.register_module()
class PackSuperpixelClsInputs(PackInputs):
    """:class:`mmpretrain.datasets.transforms.PackInputs` that also packs ``superpixels``.

    The map computed by :class:`cast_mm.SEEDSSuperpixels` is stored in the data sample as
    ``data_sample.superpixels``: an ``(H, W)`` int64 tensor for one image, or ``(V, H, W)``
    for ``V`` views (MoCo-v3: ``MultiView`` followed by ``ApplyToList`` around
    ``SEEDSSuperpixels`` gives one map per view). Batch augmentations (Mixup / CutMix) later
    mix images and labels only, as the official DeiT training does.

    Args are those of :class:`~mmpretrain.datasets.transforms.PackInputs`.
    """

    def transform(self, results: Dict) -> Dict:
        if 'superpixels' not in results:
            raise KeyError("PackSuperpixelClsInputs found no 'superpixels': "
                           f'{MISSING_CLS_SUPERPIXELS_HINT}')
        packed = super().transform(results)
        maps = results['superpixels']
        if isinstance(maps, (list, tuple)):
            maps = np.stack(maps)
        packed['data_samples'].set_field(torch.from_numpy(np.asarray(maps, np.int64)),
                                         'superpixels')
        return packed

"""Batches of real photographs packed by a config's own pipeline, and photo mosaics.

Inputs are the colour photographs bundled with scikit-image, resized to the model size and
passed through the tail of the config's train pipeline (its superpixel transform with the
official presets, then its packing transform). Segmentation labels are regions of the
photographs (a coarse segmentation into 150 classes with an ignored band along region
borders); classification labels are fixed classes.
"""
from typing import Dict, List, Optional, Tuple, Union

import cv2
import numpy as np
import torch

#: Coarse regions per photograph that become the segmentation labels.
LABEL_REGIONS = 24


def photographs() -> List[np.ndarray]:
    """The colour photographs bundled with scikit-image (RGB uint8)."""
    from skimage import data
    return [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(),
            data.immunohistochemistry(), data.stereo_motorcycle()[0], data.hubble_deep_field(),
            data.retina()]


def resized_photos(size: Union[int, Tuple[int, int]], count: int) -> List[np.ndarray]:
    """``count`` photographs (cycling through :func:`photographs`) resized to ``size x size``
    (or to ``size = (height, width)``)."""
    height, width = (size, size) if isinstance(size, int) else size
    photos = photographs()
    return [cv2.resize(photos[i % len(photos)], (width, height), interpolation=cv2.INTER_AREA)
            for i in range(count)]


def region_labels(image: np.ndarray, index: int, num_classes: int = 150) -> np.ndarray:
    """Segmentation labels of a photograph: coarse regions with classes, borders ignored."""
    from cast_mm.superpixels import slic_superpixels
    regions = slic_superpixels(torch.from_numpy(image).permute(2, 0, 1)[None],
                               LABEL_REGIONS)[0].numpy()
    labels = ((regions * 37 + index * 11) % num_classes).astype(np.uint8)
    border = cv2.morphologyEx(labels, cv2.MORPH_GRADIENT, np.ones((5, 5), np.uint8)) > 0
    labels[border] = 255
    return labels


def pipeline_tail(cfg):
    """The config's train transforms from its superpixel transform on, built."""
    from mmcv.transforms import Compose
    from mmengine.registry import TRANSFORMS, DefaultScope
    pipeline = cfg.train_dataloader.dataset.pipeline
    first = next((i for i, t in enumerate(pipeline) if t['type'].endswith('Superpixels')), None)
    if first is None:
        raise ValueError('the train pipeline of the config has no superpixel transform')
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmseg')):
        return Compose([TRANSFORMS.build(t) for t in pipeline[first:]])


def make_batch(task: str, cfg, size: Union[int, Tuple[int, int]], batch: int) -> Dict:
    """A collated batch of ``batch`` photographs at ``size x size`` (or ``size = (height,
    width)``) as ``cfg``'s pipeline packs it (``task``: ``'cls'`` or ``'seg'``)."""
    from mmengine.dataset import pseudo_collate
    tail = pipeline_tail(cfg)
    shape = (size, size) if isinstance(size, int) else tuple(size)
    samples = []
    for i, rgb in enumerate(resized_photos(shape, batch)):
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        results = dict(img=bgr, img_shape=shape, ori_shape=shape,
                       scale_factor=(1., 1.), flip=False, flip_direction=None)
        if task == 'seg':
            results.update(gt_seg_map=region_labels(rgb, i), seg_fields=['gt_seg_map'],
                           reduce_zero_label=True, pad_shape=shape)
        else:
            results.update(gt_label=int((i * 389 + 7) % 1000))
        samples.append(tail(results))
    return pseudo_collate(samples)


def superpixel_count(batch: Dict) -> int:
    """The number of superpixels of the largest map of a packed batch."""
    return max(int(s.superpixels.data.max()) if hasattr(s.superpixels, 'data')
               else int(s.superpixels.max()) for s in batch['data_samples']) + 1


def cast_like_points(batch: int, num_tokens: int, channels: int = 384,
                     num_padded: Optional[int] = None, seed: int = 0) -> torch.Tensor:
    """Farthest-point-sampling input as CAST builds it, ``(batch, num_tokens + 1, channels)``:
    ``[mean token, tokens]`` with the last ``num_padded`` tokens (default: 10%) padded, i.e.
    equal to the mean of the others."""
    num_padded = num_tokens // 10 if num_padded is None else num_padded
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randn(batch, num_tokens, channels, generator=gen)
    mean = tokens[:, :num_tokens - num_padded].mean(dim=1, keepdim=True)
    tokens[:, num_tokens - num_padded:] = mean
    return torch.cat([mean, tokens], dim=1)


def photo_mosaic(size: int, regions: int, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """A Voronoi partition into ``regions`` cells, each filled with a crop of a different
    photograph: ``(RGB image, partition ids)``; the partition is the ground truth."""
    rng = np.random.default_rng(seed)
    photos = photographs()
    centres = rng.uniform(0, size, (regions, 2))
    yy, xx = np.mgrid[:size, :size]
    truth = ((yy[..., None] - centres[:, 0])**2 + (xx[..., None] - centres[:, 1])**2).argmin(-1)
    image = np.zeros((size, size, 3), np.uint8)
    for region in range(regions):
        photo = photos[(seed + region) % len(photos)]
        scale = size / min(photo.shape[:2]) * rng.uniform(1, 2)
        new_size = (int(np.ceil(photo.shape[1] * scale)), int(np.ceil(photo.shape[0] * scale)))
        photo = cv2.resize(photo, new_size, interpolation=cv2.INTER_AREA)
        top = rng.integers(0, photo.shape[0] - size + 1)
        left = rng.integers(0, photo.shape[1] - size + 1)
        inside = truth == region
        image[inside] = photo[top:top + size, left:left + size][inside]
    return image, truth

"""A tiny synthetic dataset in ADE20K layout, generated deterministically on first use.

It lets the README's first command train, evaluate and run inference with no download:
outdoor-like scenes (sky, building, tree, grass, road) drawn with class-specific colours and
textures, saved as ADE20K stores its data::

    ROOT/images/{training,validation}/demo_XXXX.jpg
    ROOT/annotations/{training,validation}/demo_XXXX.png   (0 = other, k = ADE class k - 1)
"""
import os
import os.path as osp
import shutil
import tempfile
from typing import Tuple

import cv2
import numpy as np
from mmseg.datasets import ADE20KDataset

from cast_mm.registry import DATASETS

#: ADE20K class index (0-based, after ``reduce_zero_label``) and mean BGR colour per region.
DEMO_CLASSES = dict(sky=(2, (235, 190, 120)), building=(1, (120, 125, 140)),
                    tree=(4, (40, 110, 45)), grass=(9, (60, 170, 90)),
                    road=(6, (95, 95, 90)))


def _draw_scene(rng: np.random.Generator, size: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """One image (BGR uint8) and its ADE20K annotation (uint8, class + 1)."""
    height, width = size
    labels = np.zeros((height, width), np.uint8)
    horizon = int(height * rng.uniform(0.4, 0.6))
    labels[:horizon] = DEMO_CLASSES['sky'][0] + 1
    ground = 'grass' if rng.random() < 0.5 else 'road'
    labels[horizon:] = DEMO_CLASSES[ground][0] + 1
    for _ in range(rng.integers(1, 3)):  # buildings standing on the horizon
        w = int(width * rng.uniform(0.15, 0.35))
        x = int(rng.integers(0, width - w))
        top = int(horizon * rng.uniform(0.1, 0.6))
        labels[top:horizon + 2, x:x + w] = DEMO_CLASSES['building'][0] + 1
    for _ in range(rng.integers(1, 4)):  # tree crowns
        center = (int(rng.integers(0, width)), int(horizon - rng.integers(0, horizon // 2)))
        axes = (int(rng.integers(width // 14, width // 7)), int(rng.integers(height // 10,
                                                                             height // 5)))
        cv2.ellipse(labels, center, axes, 0, 0, 360, DEMO_CLASSES['tree'][0] + 1, -1)
    image = np.zeros((height, width, 3), np.float32)
    for index, colour in DEMO_CLASSES.values():
        mask = labels == index + 1
        texture = rng.normal(0, 12, size=(height, width, 1)).astype(np.float32)
        image[mask] = (np.asarray(colour, np.float32) + texture[mask])
    image = cv2.GaussianBlur(image, (3, 3), 0)
    return np.clip(image, 0, 255).astype(np.uint8), labels


def generate_demo_ade20k(root: str,
                         num_train: int = 24,
                         num_val: int = 6,
                         size: Tuple[int, int] = (128, 160),
                         seed: int = 0) -> str:
    """Write the demo dataset under ``root`` unless it is already complete; return ``root``.

    Generation is deterministic (``seed``) and atomic (written aside, then renamed), so
    concurrent processes of a distributed run agree on the result.
    """
    splits = dict(training=num_train, validation=num_val)
    if all(
            osp.isdir(osp.join(root, 'annotations', split))
            and len(os.listdir(osp.join(root, 'annotations', split))) == count
            for split, count in splits.items()):
        return root
    parent = osp.dirname(osp.abspath(root))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix='.cast_demo_', dir=parent)
    rng = np.random.default_rng(seed)
    for split, count in splits.items():
        os.makedirs(osp.join(staging, 'images', split))
        os.makedirs(osp.join(staging, 'annotations', split))
        for i in range(count):
            image, labels = _draw_scene(rng, size)
            name = f'demo_{split[0]}{i:04d}'
            cv2.imwrite(osp.join(staging, 'images', split, name + '.jpg'), image,
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
            cv2.imwrite(osp.join(staging, 'annotations', split, name + '.png'), labels)
    try:
        os.rename(staging, root)
    except OSError:  # another process finished first, or an incomplete copy is in the way
        if not osp.isdir(osp.join(root, 'annotations')):
            shutil.rmtree(root, ignore_errors=True)
            os.rename(staging, root)
        else:
            shutil.rmtree(staging, ignore_errors=True)
    return root


@DATASETS.register_module()
class DemoADE20KDataset(ADE20KDataset):
    """``ADE20KDataset`` over the synthetic demo data, generated in ``data_root`` if missing.

    Args:
        num_train (int): training images. Defaults to 24.
        num_val (int): validation images. Defaults to 6.
        image_size (tuple): ``(H, W)`` of the generated images. Defaults to (128, 160).
        seed (int): generation seed. Defaults to 0.
        **kwargs: as ``ADE20KDataset`` (``data_root``, ``data_prefix``, ``pipeline``, ...).
    """

    def __init__(self,
                 num_train: int = 24,
                 num_val: int = 6,
                 image_size: Tuple[int, int] = (128, 160),
                 seed: int = 0,
                 **kwargs) -> None:
        data_root = kwargs.get('data_root')
        if not data_root:
            raise ValueError('DemoADE20KDataset needs a data_root to generate the data in')
        generate_demo_ade20k(data_root, num_train, num_val, tuple(image_size), seed)
        super().__init__(**kwargs)

"""Pictures of a segmentation hierarchy: per-level overlays and a combined panel."""
import dataclasses
import os
import os.path as osp
from typing import List, Sequence, Tuple

import cv2
import numpy as np
from skimage.segmentation import find_boundaries

from cast_mm.models.segment_hierarchy import SegmentHierarchy

Color = Tuple[int, int, int]


@dataclasses.dataclass
class HierarchyDrawing:
    """RGB uint8 pictures of one hierarchy.

    Attributes:
        levels: one ``H x W x 3`` overlay per level (superpixels first).
        panel: the image and every level side by side, each under a caption.
        names: caption of each level.
    """
    levels: List[np.ndarray]
    panel: np.ndarray
    names: List[str]


def segment_palette(num_colors: int, seed: int = 0) -> np.ndarray:
    """``num_colors x 3`` uint8 RGB colours, saturated and reproducible for a ``seed``.

    Colour ``i`` does not depend on ``num_colors`` (the palettes of a seed share prefixes).
    """
    draws = np.random.RandomState(seed).randint(0, 256, (num_colors, 3)).astype(np.int64)
    hsv = np.stack([draws[:, 0] * 180 // 256, 150 + draws[:, 1] * 106 // 256,
                    170 + draws[:, 2] * 86 // 256], axis=1).astype(np.uint8)
    return cv2.cvtColor(hsv[None], cv2.COLOR_HSV2RGB)[0]


def draw_segments(image: np.ndarray,
                  label_map: np.ndarray,
                  alpha: float = 0.5,
                  boundary_color: Color = (255, 255, 255),
                  palette_seed: int = 0) -> np.ndarray:
    """Colour each segment of ``label_map`` over ``image`` and draw the segment boundaries.

    Args:
        image (np.ndarray): ``H x W x 3`` uint8 RGB image.
        label_map (np.ndarray): ``H x W`` integer segment ids (``>= 0``).
        alpha (float): weight of the segment colour. Defaults to 0.5.
        boundary_color (tuple): RGB colour of boundaries. Defaults to white.
        palette_seed (int): seed of the segment colours. Defaults to 0.

    Returns:
        np.ndarray: ``H x W x 3`` uint8 RGB picture.
    """
    label_map = np.asarray(label_map)
    if image.shape[:2] != label_map.shape:
        raise ValueError(f'label map of shape {label_map.shape} does not match image of shape '
                         f'{image.shape[:2]}')
    if not 0. <= alpha <= 1.:
        raise ValueError(f'alpha must be in [0, 1], got {alpha}')
    colors = segment_palette(int(label_map.max()) + 1, palette_seed)[label_map]
    out = (image.astype(np.float32) * (1 - alpha) + colors.astype(np.float32) * alpha)
    out = out.round().astype(np.uint8)
    out[find_boundaries(label_map, mode='inner')] = boundary_color
    return out


def _captioned(tile: np.ndarray, caption: str, bar: int) -> np.ndarray:
    header = np.full((bar, tile.shape[1], 3), 255, dtype=np.uint8)
    scale = bar / 40.
    cv2.putText(header, caption, (4, int(bar * 0.72)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (0, 0, 0), max(1, int(round(scale * 2))), cv2.LINE_AA)
    return np.concatenate([header, tile], axis=0)


def caption_bar_height(tile_height: int) -> int:
    """Height of the caption bar :func:`compose_panel` puts above tiles of that height."""
    return max(14, tile_height // 10)


def compose_panel(tiles: Sequence[np.ndarray], captions: Sequence[str],
                  gap: int = 4) -> np.ndarray:
    """Tiles side by side, each with its caption above, separated by white gaps."""
    if len(tiles) != len(captions):
        raise ValueError(f'{len(tiles)} tiles but {len(captions)} captions')
    bar = caption_bar_height(tiles[0].shape[0])
    columns = []
    for i, (tile, caption) in enumerate(zip(tiles, captions)):
        columns.append(_captioned(tile, caption, bar))
        if i < len(tiles) - 1:
            columns.append(np.full((columns[-1].shape[0], gap, 3), 255, dtype=np.uint8))
    return np.concatenate(columns, axis=1)


def level_names(hierarchy: SegmentHierarchy) -> List[str]:
    """Captions ``'superpixels (n)'``, ``'level 1 (n)'``, ... of a hierarchy's levels."""
    return [('superpixels' if level == 0 else f'level {level}') + f' ({count})'
            for level, count in enumerate(hierarchy.num_segments)]


def draw_hierarchy(image: np.ndarray,
                   hierarchy: SegmentHierarchy,
                   alpha: float = 0.5,
                   boundary_color: Color = (255, 255, 255),
                   palette_seed: int = 0) -> HierarchyDrawing:
    """Draw every level of ``hierarchy`` over ``image`` and a combined panel.

    Args:
        image (np.ndarray): the ``H x W x 3`` uint8 RGB image the hierarchy was extracted from.
        hierarchy (SegmentHierarchy): its hierarchy.
        alpha, boundary_color, palette_seed: see :func:`draw_segments`.
    """
    levels = [draw_segments(image, label_map.numpy(), alpha, boundary_color, palette_seed)
              for label_map in hierarchy.label_maps]
    names = level_names(hierarchy)
    panel = compose_panel([image] + levels, ['image'] + names)
    return HierarchyDrawing(levels, panel, names)


def save_drawing(drawing: HierarchyDrawing, out_dir: str, stem: str) -> List[str]:
    """Write ``{stem}_level{k}.png`` per level and ``{stem}_panel.png``; return the paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for level, picture in enumerate(drawing.levels):
        paths.append(osp.join(out_dir, f'{stem}_level{level}.png'))
        _write_rgb(paths[-1], picture)
    paths.append(osp.join(out_dir, f'{stem}_panel.png'))
    _write_rgb(paths[-1], drawing.panel)
    return paths


def _write_rgb(path: str, picture: np.ndarray) -> None:
    if not cv2.imwrite(path, np.ascontiguousarray(picture[..., ::-1])):
        raise OSError(f'cannot write {path}')

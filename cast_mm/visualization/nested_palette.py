"""Colours of a segment hierarchy that nest: a segment's children take shades of its colour."""
from typing import List, Sequence

import cv2
import numpy as np

from cast_mm.models.segment_hierarchy import SegmentHierarchy
from .drawing import segment_palette

#: Brightness of the darkest and brightest sibling, relative to the parent colour.
SHADE_VALUE_RANGE = (0.62, 1.18)
#: Hue offset (OpenCV hue units, 0-179) between the first and the last sibling.
SHADE_HUE_SPREAD = 10


def shade_children(parent_colors: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """Colours of the children of coloured segments: shades of their parent's colour.

    The ``i``-th of ``m`` children of a segment (in id order) gets its parent's hue shifted by
    up to ``SHADE_HUE_SPREAD / 2`` and its brightness scaled between ``SHADE_VALUE_RANGE``,
    darkest first; an only child keeps its parent's colour exactly.

    Args:
        parent_colors (np.ndarray): ``P x 3`` uint8 RGB colours of the parent level.
        parents (np.ndarray): ``(N,)`` integer parent (``0 .. P-1``) of each child.

    Returns:
        np.ndarray: ``N x 3`` uint8 RGB colours of the children.
    """
    parents = np.asarray(parents, dtype=np.int64)
    parent_colors = np.asarray(parent_colors, dtype=np.uint8)
    if parents.ndim != 1 or (parents.size and (parents.min() < 0
                                               or parents.max() >= len(parent_colors))):
        raise ValueError(f'parents must be ids in 0..{len(parent_colors) - 1}, got '
                         f'{parents.min() if parents.size else None}..'
                         f'{parents.max() if parents.size else None}')
    if parents.size == 0:
        return np.zeros((0, 3), np.uint8)
    order = np.lexsort((np.arange(parents.size), parents))
    siblings = np.bincount(parents, minlength=len(parent_colors))
    starts = np.concatenate([[0], np.cumsum(siblings)[:-1]])
    rank = np.empty(parents.size, np.int64)
    rank[order] = np.arange(parents.size) - starts[parents[order]]
    count = siblings[parents]
    t = np.where(count > 1, rank / np.maximum(count - 1, 1), 0.5)
    hsv = cv2.cvtColor(parent_colors[None], cv2.COLOR_RGB2HSV)[0].astype(np.float64)[parents]
    low, high = SHADE_VALUE_RANGE
    value = np.clip(hsv[:, 2] * (low + (high - low) * t), 40, 255)
    hue = (hsv[:, 0] + np.round((t - 0.5) * SHADE_HUE_SPREAD)) % 180
    shaded = np.stack([hue, hsv[:, 1], value], axis=1).round().astype(np.uint8)
    colors = cv2.cvtColor(shaded[None], cv2.COLOR_HSV2RGB)[0]
    only = count == 1
    colors[only] = parent_colors[parents[only]]
    return colors


def nested_palettes(parents: Sequence[np.ndarray], num_top: int, seed: int = 0) -> List[np.ndarray]:
    """One colour table per level, the top level's from :func:`segment_palette`, every other
    level's shaded from its parents (:func:`shade_children`).

    Args:
        parents (Sequence[np.ndarray]): per level but the last, the parent id of each segment
            in the next level (``SegmentHierarchy.parents``).
        num_top (int): number of segments of the top level.
        seed (int): seed of the top-level colours. Defaults to 0.

    Returns:
        list[np.ndarray]: ``num_segments[k] x 3`` uint8 RGB colours per level, lowest first.
    """
    palettes = [segment_palette(num_top, seed)]
    for level_parents in reversed(list(parents)):
        palettes.append(shade_children(palettes[-1], np.asarray(level_parents)))
    return palettes[::-1]


def hierarchy_palettes(hierarchy: SegmentHierarchy, seed: int = 0) -> List[np.ndarray]:
    """:func:`nested_palettes` of a :class:`SegmentHierarchy`."""
    return nested_palettes([p.cpu().numpy() for p in hierarchy.parents],
                           hierarchy.num_segments[-1], seed)

"""An interactive view of one hierarchy: pictures re-drawn from cached arrays, click paths.

:class:`HierarchyView` does the per-image work once (segment sizes, nested colours, label maps
and boundaries at picture resolution), so that changing the blend, the boundaries or the
clicked point only recolours arrays: no model, no superpixels.
"""
import dataclasses
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from cast_mm.models.segment_hierarchy import SegmentHierarchy
from .drawing import Color, caption_bar_height, compose_panel, level_names
from .nested_palette import hierarchy_palettes

#: Gap between the tiles of the panel, in pixels.
PANEL_GAP = 4
#: Brightness left to the pixels outside a highlighted segment.
HIGHLIGHT_DIM = 0.35


def label_edges(labels: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: pixels whose right or lower neighbour has another label (one-pixel
    boundary lines, an order of magnitude quicker than morphological boundaries)."""
    edges = np.zeros(labels.shape, dtype=bool)
    edges[:, :-1] |= labels[:, 1:] != labels[:, :-1]
    edges[:-1, :] |= labels[1:, :] != labels[:-1, :]
    return edges


@dataclasses.dataclass
class SegmentOnPath:
    """One segment on the part-to-whole path through a point.

    Attributes:
        level: 0 for superpixels, ``1..4`` for the groups of each pooling.
        name: caption of the level (``'superpixels (196)'``, ``'level 1 (64)'``, ...).
        segment: the segment's id at its level.
        pixels: its size in image pixels.
        share: its size as a fraction of the image (0-1).
    """
    level: int
    name: str
    segment: int
    pixels: int
    share: float


class HierarchyView:
    """Pictures of one image's hierarchy, ready to be re-drawn.

    The panel shows the image and then every level side by side, each level coloured with
    :func:`~cast_mm.visualization.nested_palette.hierarchy_palettes` (children are shades of
    their parent's colour) and blended over the image.

    Args:
        image (np.ndarray): the ``H x W x 3`` uint8 RGB image the hierarchy was extracted from.
        hierarchy (SegmentHierarchy): its hierarchy.
        tile_size (int, optional): longest side of each tile of the panel; larger images are
            shown downscaled (clicks and sizes still refer to image pixels). None: image size.
        palette_seed (int): seed of the top-level colours. Defaults to 0.
    """

    def __init__(self,
                 image: np.ndarray,
                 hierarchy: SegmentHierarchy,
                 tile_size: Optional[int] = None,
                 palette_seed: int = 0) -> None:
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f'image must be H x W x 3 uint8, got {image.shape} {image.dtype}')
        self.label_maps = [m.cpu().numpy() for m in hierarchy.label_maps]
        if self.label_maps[0].shape != image.shape[:2]:
            raise ValueError(f'hierarchy of size {self.label_maps[0].shape} does not match image '
                             f'of size {image.shape[:2]}')
        if tile_size is not None and tile_size < 16:
            raise ValueError(f'tile_size must be at least 16, got {tile_size}')
        self.image = image
        self.names = level_names(hierarchy)
        self.num_segments = hierarchy.num_segments
        self.sizes = [np.bincount(m.ravel(), minlength=n)
                      for m, n in zip(self.label_maps, self.num_segments)]
        self.palettes = hierarchy_palettes(hierarchy, palette_seed)
        height, width = image.shape[:2]
        scale = 1. if tile_size is None else min(1., tile_size / max(height, width))
        self.tile_shape = (max(1, round(height * scale)), max(1, round(width * scale)))
        th, tw = self.tile_shape
        if (th, tw) == (height, width):
            self.tile_image = image
        else:
            self.tile_image = cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA)
        # Nearest sampling of the label maps at the tile centres' image pixels.
        rows = np.minimum(((np.arange(th) + .5) * height / th).astype(np.int64), height - 1)
        cols = np.minimum(((np.arange(tw) + .5) * width / tw).astype(np.int64), width - 1)
        self.tile_labels = [m[rows[:, None], cols[None, :]] for m in self.label_maps]
        self.tile_boundaries = [label_edges(t) for t in self.tile_labels]
        self.tile_colors = [p[t] for p, t in zip(self.palettes, self.tile_labels)]
        self._plain_tiles = {}

    @property
    def num_levels(self) -> int:
        return len(self.label_maps)

    def path_at(self, x: int, y: int) -> List[SegmentOnPath]:
        """The segment containing image pixel ``(x, y)`` at every level, part to whole.

        Raises:
            ValueError: the point is outside the image.
        """
        height, width = self.image.shape[:2]
        if not (0 <= x < width and 0 <= y < height):
            raise ValueError(f'point ({x}, {y}) is outside the {width} x {height} image')
        total = float(height * width)
        path = []
        for level, (labels, sizes) in enumerate(zip(self.label_maps, self.sizes)):
            segment = int(labels[y, x])
            path.append(SegmentOnPath(level, self.names[level], segment, int(sizes[segment]),
                                      sizes[segment] / total))
        return path

    def locate(self, panel_x: int, panel_y: int) -> Optional[Tuple[int, int]]:
        """Image pixel ``(x, y)`` under a point of the panel, or None (caption, gap, outside)."""
        th, tw = self.tile_shape
        height, width = self.image.shape[:2]
        tile_y = panel_y - caption_bar_height(th)
        column, tile_x = divmod(int(panel_x), tw + PANEL_GAP)
        if not (0 <= column <= self.num_levels and 0 <= tile_x < tw and 0 <= tile_y < th):
            return None
        return (min(int(tile_x * width / tw), width - 1),
                min(int(tile_y * height / th), height - 1))

    def draw_level(self,
                   level: int,
                   alpha: float = 0.5,
                   boundaries: bool = True,
                   highlight: Optional[int] = None,
                   boundary_color: Color = (255, 255, 255),
                   highlight_color: Color = (255, 230, 0)) -> np.ndarray:
        """One level's tile: colours blended over the image, optionally a highlighted segment.

        Args:
            level (int): the level (0: superpixels).
            alpha (float): weight of the colours (0: image only, 1: colours only).
            boundaries (bool): draw segment boundaries.
            highlight (int, optional): a segment of the level to highlight: the rest of the
                tile is darkened (to ``HIGHLIGHT_DIM``) and the segment outlined in
                ``highlight_color``.
        """
        if not 0. <= alpha <= 1.:
            raise ValueError(f'alpha must be in [0, 1], got {alpha}')
        key = (level, float(alpha), bool(boundaries), tuple(boundary_color))
        tile = self._plain_tiles.get(key)
        if tile is None:  # kept for the clicks that follow: they only add the highlight
            tile = cv2.addWeighted(self.tile_image, 1. - alpha, self.tile_colors[level], alpha,
                                   0.)
            if boundaries:
                tile[self.tile_boundaries[level]] = boundary_color
            if len(self._plain_tiles) >= 4 * self.num_levels:
                self._plain_tiles.clear()
            self._plain_tiles[key] = tile
        tile = tile.copy()
        if highlight is not None:
            inside = (self.tile_labels[level] == highlight).astype(np.uint8)
            darker = cv2.convertScaleAbs(tile, alpha=HIGHLIGHT_DIM)
            np.copyto(darker, tile, where=inside[..., None].astype(bool))
            ring = cv2.dilate(inside, np.ones((3, 3), np.uint8), iterations=2) - inside
            darker[ring.astype(bool)] = highlight_color
            tile = darker
        return tile

    def render(self,
               alpha: float = 0.5,
               boundaries: bool = True,
               point: Optional[Tuple[int, int]] = None,
               captions: Optional[Sequence[str]] = None) -> np.ndarray:
        """The panel: the image, then every level; with ``point`` (image pixel ``(x, y)``) the
        segments containing it are highlighted at every level and the point is marked."""
        path = self.path_at(*point) if point is not None else None
        tiles = [self.tile_image.copy()]
        for level in range(self.num_levels):
            tiles.append(self.draw_level(level, alpha, boundaries,
                                         None if path is None else path[level].segment))
        if point is not None:
            th, tw = self.tile_shape
            height, width = self.image.shape[:2]
            center = (int((point[0] + .5) * tw / width), int((point[1] + .5) * th / height))
            for tile in tiles:
                cv2.drawMarker(tile, center, (255, 0, 0), cv2.MARKER_CROSS,
                               max(7, min(th, tw) // 16), 2)
        captions = list(captions) if captions is not None else ['image'] + self.names
        return compose_panel(tiles, captions, gap=PANEL_GAP)

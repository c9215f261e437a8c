"""Interactive hierarchy view helpers: nested colours, click paths, panel geometry, .npz files."""
import io

import cv2
import numpy as np
import pytest
import torch

from cast_mm.apis import SegmentHierarchy, hierarchy_arrays, save_hierarchy
from cast_mm.visualization import (HierarchyView, caption_bar_height, hierarchy_palettes,
                                   nested_palettes, segment_palette, shade_children)


def toy_hierarchy(size=8):
    """Four superpixels (quadrants) of a size x size image, grouped 3 + 1, then 1."""
    half = size // 2
    level0 = torch.zeros(size, size, dtype=torch.long)
    level0[:half, half:] = 1
    level0[half:, :half] = 2
    level0[half:, half:] = 3
    parents0 = torch.tensor([0, 0, 0, 1])
    level1 = parents0[level0]
    level2 = torch.zeros_like(level0)
    return SegmentHierarchy(
        label_maps=[level0, level1, level2],
        parents=[parents0, torch.tensor([0, 0])],
        features=[torch.zeros(4, 2), torch.zeros(2, 2), torch.zeros(1, 2)],
        token_index=[torch.arange(4), torch.arange(2), torch.arange(1)],
        superpixel_ids=torch.tensor([0, 5, 7, 9]))


def _hsv(colors):
    return cv2.cvtColor(np.asarray(colors, np.uint8)[None], cv2.COLOR_RGB2HSV)[0].astype(int)


def test_children_are_shades_of_their_parent():
    parent_colors = segment_palette(2, seed=3)
    children = shade_children(parent_colors, np.array([0, 1, 0, 0]))
    # an only child keeps the colour; siblings get distinct colours, darkest first
    assert (children[1] == parent_colors[1]).all()
    siblings = _hsv(children[[0, 2, 3]])
    assert len({tuple(c) for c in children[[0, 2, 3]].tolist()}) == 3
    assert siblings[0, 2] < siblings[1, 2] <= siblings[2, 2]
    hue = _hsv(parent_colors)[0, 0]
    assert all(min(abs(h - hue), 180 - abs(h - hue)) <= 6 for h in siblings[:, 0])
    with pytest.raises(ValueError, match='parents must be ids'):
        shade_children(parent_colors, np.array([0, 2]))


def test_nested_palettes_follow_the_hierarchy():
    hierarchy = toy_hierarchy()
    palettes = hierarchy_palettes(hierarchy, seed=1)
    assert [p.shape for p in palettes] == [(4, 3), (2, 3), (1, 3)]
    assert (palettes[2] == segment_palette(1, seed=1)).all()
    # level 1 has two children of the single top segment: both shades of it
    assert (palettes[1] == shade_children(palettes[2], np.array([0, 0]))).all()
    # superpixel 3 is the only part of level-1 segment 1: same colour
    assert (palettes[0][3] == palettes[1][1]).all()
    assert all((a == b).all() for a, b in zip(
        palettes, nested_palettes([np.array([0, 0, 0, 1]), np.array([0, 0])], 1, seed=1)))


def test_path_at_gives_nested_segments_with_sizes():
    view = HierarchyView(np.zeros((8, 8, 3), np.uint8), toy_hierarchy())
    path = view.path_at(6, 7)  # x=6, y=7: bottom right quadrant
    assert [(s.level, s.segment, s.pixels) for s in path] == [(0, 3, 16), (1, 1, 16), (2, 0, 64)]
    assert [s.share for s in path] == [0.25, 0.25, 1.0]
    assert path[0].name == 'superpixels (4)'
    path = view.path_at(0, 7)
    assert [(s.segment, s.pixels) for s in path] == [(2, 16), (0, 48), (0, 64)]
    with pytest.raises(ValueError, match='outside'):
        view.path_at(8, 0)


def test_render_highlights_the_clicked_path_at_every_level():
    image = np.full((8, 8, 3), 90, np.uint8)
    view = HierarchyView(image, toy_hierarchy())
    plain = view.render(alpha=1.0, boundaries=False)
    bar = caption_bar_height(8)
    assert plain.shape == (8 + bar, 4 * 8 + 3 * 4, 3)
    # the level tiles are the nested colours
    superpixels_tile = plain[bar:, 12:20]
    assert (superpixels_tile[0, 0] == view.palettes[0][0]).all()
    assert (superpixels_tile[7, 7] == view.palettes[0][3]).all()
    # clicked: the rest is darkened and the segment outlined, at every level
    tile = view.draw_level(1, alpha=1.0, boundaries=False, highlight=1)
    assert (tile[6, 6] == view.palettes[1][1]).all()
    darker = np.round(view.palettes[1][0] * 0.35)
    assert np.abs(tile[0, 0].astype(int) - darker).max() <= 1
    assert (tile[3, 6] == (255, 230, 0)).all()  # just outside the bottom-right segment
    picture = view.render(alpha=1.0, boundaries=False, point=(6, 6))
    for column in range(1, 4):
        drawn = picture[bar:, column * 12:column * 12 + 8]
        assert ((drawn == (255, 230, 0)).all(-1)).any() or column == 3  # level 2: whole image
    assert (picture != plain).any()


def test_locate_inverts_the_panel_layout_with_downscaled_tiles():
    hierarchy = toy_hierarchy(size=64)
    view = HierarchyView(np.zeros((64, 64, 3), np.uint8), hierarchy, tile_size=32)
    assert view.tile_shape == (32, 32)
    panel = view.render()
    bar = caption_bar_height(32)
    assert panel.shape == (32 + bar, 4 * 32 + 3 * 4, 3)
    for column in range(4):
        left = column * 36
        assert view.locate(left + 31, bar + 0) == (62, 0)
        assert view.locate(left, bar + 31) == (0, 62)
    assert view.locate(33, bar + 5) is None  # gap
    assert view.locate(5, bar - 1) is None  # caption
    assert view.locate(4 * 36 + 1, bar + 1) is None  # right of the panel
    # tile labels are the label maps sampled at the tile pixel centres
    assert (view.tile_labels[0] == hierarchy.label_maps[0].numpy()[1::2, 1::2]).all()


def test_boundaries_are_drawn_where_labels_change():
    view = HierarchyView(np.zeros((8, 8, 3), np.uint8), toy_hierarchy())
    expected = np.zeros((8, 8), bool)
    expected[:, 3] = expected[3, :] = True  # quadrant edges: the last row / column of each
    assert (view.tile_boundaries[0] == expected).all()
    level1 = np.zeros((8, 8), bool)
    level1[3, 4:] = level1[4:, 3] = True  # the bottom-right quadrant against the rest
    assert (view.tile_boundaries[1] == level1).all()
    assert not view.tile_boundaries[2].any()
    tile = view.draw_level(0, alpha=0., boundaries=True, boundary_color=(9, 8, 7))
    assert (tile[expected] == (9, 8, 7)).all() and (tile[~expected] == 0).all()


def test_view_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match='does not match'):
        HierarchyView(np.zeros((4, 8, 3), np.uint8), toy_hierarchy())
    with pytest.raises(ValueError, match='uint8'):
        HierarchyView(np.zeros((8, 8, 3), np.float32), toy_hierarchy())
    with pytest.raises(ValueError, match='alpha'):
        HierarchyView(np.zeros((8, 8, 3), np.uint8), toy_hierarchy()).draw_level(0, alpha=2)


def test_npz_file_round_trips_the_hierarchy():
    hierarchy = toy_hierarchy()
    image = np.random.RandomState(0).randint(0, 256, (8, 8, 3)).astype(np.uint8)
    superpixels = hierarchy.superpixel_ids[hierarchy.label_maps[0]].numpy()
    buffer = io.BytesIO()
    save_hierarchy(buffer, hierarchy, image, superpixels)
    buffer.seek(0)
    loaded = np.load(buffer)
    assert sorted(loaded.files) == ['image', 'label_maps', 'num_segments', 'parents_0',
                                    'parents_1', 'superpixel_ids', 'superpixels']
    assert loaded['label_maps'].shape == (3, 8, 8)
    for level, label_map in enumerate(hierarchy.label_maps):
        assert np.array_equal(loaded['label_maps'][level], label_map.numpy())
    for level, parents in enumerate(hierarchy.parents):
        assert np.array_equal(loaded[f'parents_{level}'], parents.numpy())
    assert np.array_equal(loaded['image'], image)
    assert np.array_equal(loaded['superpixels'], superpixels)
    assert loaded['num_segments'].tolist() == [4, 2, 1]
    assert set(hierarchy_arrays(hierarchy)) == {'label_maps', 'num_segments', 'parents_0',
                                                'parents_1', 'superpixel_ids'}
    with pytest.raises(ValueError, match='does not match'):
        hierarchy_arrays(hierarchy, image=image[:4])

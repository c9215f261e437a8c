"""Hierarchy extraction: argmax chain, vanished superpixels, batching, inputs and errors."""
import functools

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn
from helpers import tiny_cast

from cast_mm.apis import (HierarchyExtractor, extract_hierarchy, hierarchy_from_features,
                          superpixels_to_tokens)
from cast_mm.models.layers import level_assignments

#: The tiny CAST with the sin-cos positions of the MoCo-v3 models the hierarchy tools serve.
sincos_cast = functools.partial(tiny_cast, pos_embed='sincos')


@pytest.fixture(scope='module')
def image():
    rng = np.random.RandomState(0)
    img = np.zeros((64, 80, 3), np.uint8)
    for _ in range(12):  # coloured rectangles: SEEDS finds real regions
        y, x = rng.randint(0, 56), rng.randint(0, 72)
        img[y:y + rng.randint(8, 30), x:x + rng.randint(8, 30)] = rng.randint(0, 255, 3)
    return img


def blocks_with_small_island():
    """16 x 16 blocks of a 64 x 64 map (ids 0..15) plus id 7 moved into a 3 x 3 island.

    The island (rows 25-27, cols 41-43) misses every stride-8 sample point (multiples of 8), so
    id 7 owns no token in classification mode; it lies inside block 6 (rows 16-31, cols
    32-47). Block 7's own area gets the id 16, so 7 is not a trailing id.
    """
    spx = torch.arange(16).view(4, 4).repeat_interleave(16, 0).repeat_interleave(16, 1)
    spx = spx.clone()
    spx[spx == 7] = 16
    spx[25:28, 41:44] = 7
    return spx


def test_superpixels_to_tokens_known_answer():
    spx = blocks_with_small_island()
    token_labels = spx[::8, ::8]  # what the nearest resize to 8 x 8 keeps
    ids, tokens = superpixels_to_tokens(spx, token_labels)
    assert ids.tolist() == list(range(17))
    expected = list(range(17))
    expected[7] = 6
    assert tokens.tolist() == expected


def test_superpixels_to_tokens_tie_goes_to_lowest_token():
    spx = torch.zeros(16, 16, dtype=torch.long)
    spx[:, 8:] = 1
    spx[7:9, 7:9] = 2  # 2 x 2 island: 1 pixel in each of the four 8 x 8 cells
    token_labels = torch.tensor([[0, 1], [0, 1]])
    _, tokens = superpixels_to_tokens(spx, token_labels)
    assert tokens.tolist() == [0, 1, 0]


def test_vanished_middle_id_takes_host_token_labels():
    model = sincos_cast()
    spx = blocks_with_small_island()
    image = np.random.RandomState(1).randint(0, 255, (64, 64, 3), dtype=np.uint8)
    hierarchy = extract_hierarchy(model, image, spx)
    island = (spx == 7).numpy()
    host = (spx == 6).numpy()
    for label_map in hierarchy.label_maps[1:]:
        labels = label_map.numpy()
        assert np.unique(labels[island]).size == 1
        assert labels[island][0] == labels[host][0]
    # Level 0 keeps the island as its own segment (17 superpixels).
    assert hierarchy.num_segments[0] == 17
    assert hierarchy.superpixel_ids.tolist() == list(range(17))
    assert torch.equal(hierarchy.features[0][7], hierarchy.features[0][6])


def test_levels_follow_official_argmax_chain_and_nest(image):
    model = sincos_cast()
    # the MoCo preset's 196 superpixels: small enough that some own no token at stride 8
    extractor = HierarchyExtractor(model, superpixel_cfg=dict(preset='moco'))
    spx = torch.from_numpy(extractor.superpixels(image))
    hierarchy = extractor(image, spx)
    inputs = ((torch.from_numpy(image).permute(2, 0, 1)[None].float() - extractor.mean)
              / extractor.std)
    with torch.no_grad():
        feats = model.forward_features(inputs, spx[None])
    chain = level_assignments(feats.pool_logits)
    owned = torch.unique(feats.token_labels[0])
    pixels = torch.isin(spx, owned)  # pixels of superpixels that own a token
    assert not pixels.all()  # some superpixels vanished at the stem resolution
    assert hierarchy.num_levels == 5
    for level in range(1, 5):
        # The notebook gathers with the full-resolution map (valid for ids owning a token).
        official = chain[level - 1][0][spx[pixels]]
        ours = hierarchy.label_maps[level]
        # Same partition (ids are compacted): a bijection between the two labelings.
        pairs = torch.unique(torch.stack([official, ours[pixels]]), dim=1)
        assert pairs.shape[1] == torch.unique(official).numel()
        assert pairs.shape[1] == torch.unique(ours[pixels]).numel()
        assert hierarchy.num_segments[level] == int(ours.max()) + 1
        # Parents: every segment sits inside its parent.
        parent = hierarchy.parents[level - 1]
        assert torch.equal(parent[hierarchy.label_maps[level - 1]], ours)
        assert hierarchy.features[level].shape == (hierarchy.num_segments[level], 48)
    # Level-4 features are the last pooling's tokens at the kept clusters.
    assert torch.allclose(hierarchy.features[4],
                          feats.pool_tokens[-1][0][hierarchy.token_index[4]], atol=1e-5)


def test_batch_equals_single_images(image):
    model = sincos_cast(mask_padding=True)
    images = [image, np.ascontiguousarray(image[::-1]), cv2.resize(image, (64, 64))]
    batch = extract_hierarchy(model, images)
    for img, result in zip(images, batch):
        alone = extract_hierarchy(model, img)
        assert result.label_maps[0].shape == img.shape[:2]
        for a, b in zip(result.label_maps, alone.label_maps):
            assert torch.equal(a, b)
        for a, b in zip(result.features, alone.features):
            assert torch.allclose(a, b, atol=1e-4)


def test_segmentation_mode_wrapped_model_and_path(image, tmp_path):
    backbone = sincos_cast('segmentation')

    class Segmentor(nn.Module):

        def __init__(self):
            super().__init__()
            self.backbone = backbone

    path = str(tmp_path / 'img.png')
    cv2.imwrite(path, image[..., ::-1])
    extractor = HierarchyExtractor(Segmentor(), superpixel_cfg=dict(pixels_per_superpixel=64))
    assert extractor.seeds.pixels_per_superpixel == 64 and extractor.seeds.histogram_bins == 5
    backbone.train()
    hierarchy = extractor(path)
    assert backbone.training  # the mode is restored
    spx = extractor.superpixels(image)
    assert torch.equal(hierarchy.label_maps[0], torch.unique(
        torch.from_numpy(spx), return_inverse=True)[1])
    assert hierarchy.num_segments[1:] == [int(m.max()) + 1 for m in hierarchy.label_maps[1:]]


def test_hierarchy_from_features_counts_per_image():
    model = sincos_cast()
    spx = torch.stack([blocks_with_small_island(), blocks_with_small_island().flip(1)])
    with torch.no_grad():
        feats = model.forward_features(torch.randn(2, 3, 64, 64), spx)
    results = hierarchy_from_features(feats, spx)
    assert [r.num_segments[0] for r in results] == [17, 17]
    assert all(len(r.parents) == 4 for r in results)


def test_bad_inputs_raise(image):
    model = sincos_cast()
    with pytest.raises(TypeError, match='CAST backbone'):
        HierarchyExtractor(nn.Linear(2, 2))
    with pytest.raises(ValueError, match='1, 3 or 4 channels'):
        extract_hierarchy(model, np.zeros((8, 8, 2), np.uint8))
    with pytest.raises(ValueError, match='before mean / std normalisation'):
        extract_hierarchy(model, (image.astype(np.float32) - 120) / 58)
    with pytest.raises(ValueError, match='does not match'):
        extract_hierarchy(model, image, np.zeros((10, 10), np.int64))
    with pytest.raises(ValueError, match='2 images but 1'):
        extract_hierarchy(model, [image, image], [np.zeros(image.shape[:2], np.int64)])
    with pytest.raises(ValueError, match='no such image file'):
        extract_hierarchy(model, '/nonexistent/image.png')
    with pytest.raises(ValueError, match='std'):
        HierarchyExtractor(model, std=(0, 1, 1))

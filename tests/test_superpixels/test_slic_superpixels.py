"""Batched torch SLIC, its pipeline transform, and the superpixel quality measures."""
import cv2
import numpy as np
import pytest
import torch
from skimage import data

from cast_analysis.quality import boundary_recall, undersegmentation_error
from cast_mm.registry import TRANSFORMS
from cast_mm.superpixels import slic_superpixels
from cast_mm.superpixels.slic import rgb_to_lab


@pytest.fixture(scope='module')
def photos():
    """Two 96 x 128 RGB crops of bundled photographs, ``(2, 3, H, W)`` uint8."""
    crops = [data.astronaut()[40:136, 160:288], data.coffee()[100:196, 200:328]]
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()


def test_ids_are_compact_per_image_and_near_the_budget(photos):
    labels = slic_superpixels(photos, 48)
    assert labels.shape == (2, 96, 128) and labels.dtype == torch.long
    for item in labels:
        count = int(item.max()) + 1
        assert torch.equal(item.unique(), torch.arange(count))
        assert 0.8 * 48 <= count <= 48


def test_batch_items_are_independent_and_channel_order_is_honoured(photos):
    batched = slic_superpixels(photos, 48)
    alone = slic_superpixels(photos[1:], 48)
    assert torch.equal(batched[1:], alone)
    assert torch.equal(slic_superpixels(photos.flip(1), 48, channel_order='bgr'), batched)


def test_superpixels_follow_a_colour_edge_off_the_seed_grid():
    image = torch.zeros(1, 3, 64, 64, dtype=torch.uint8)
    image[..., 37:] = 255  # the seed grid has 8-pixel cells: the edge is inside a cell
    labels = slic_superpixels(image, 64)
    truth = (torch.arange(64) >= 37).long().expand(64, 64)
    assert undersegmentation_error(labels[0], truth) == 0.
    assert boundary_recall(labels[0], truth, tolerance=0) == 1.


def test_lab_conversion_matches_opencv(photos):
    image = photos[0].permute(1, 2, 0).numpy()
    reference = cv2.cvtColor(image.astype(np.float32) / 255., cv2.COLOR_RGB2LAB)
    ours = rgb_to_lab(photos[:1].float())[0].permute(1, 2, 0).numpy()
    assert np.abs(ours - reference).max() < 1.


def test_quality_measures_on_hand_made_maps():
    halves = (torch.arange(16) >= 8).long().expand(16, 16)
    assert boundary_recall(halves, halves) == 1.
    assert undersegmentation_error(halves, halves) == 0.
    one_segment = torch.zeros(16, 16, dtype=torch.long)
    # One superpixel over two equal halves: each half "leaks" 128 pixels.
    assert undersegmentation_error(one_segment, halves) == 1.
    assert boundary_recall(one_segment, halves) == 0.
    shifted = (torch.arange(16) >= 11).long().expand(16, 16)
    assert boundary_recall(shifted, halves, tolerance=2) == 0.
    assert boundary_recall(shifted, halves, tolerance=3) == 1.


def test_transform_is_registered_and_reads_bgr_images(photos):
    transform = TRANSFORMS.build(dict(type='cast_mm.SLICSuperpixels', num_superpixels=48))
    bgr = photos[0].flip(0).permute(1, 2, 0).numpy()
    results = transform(dict(img=bgr))
    assert results['num_superpixels'] == 48
    assert results['superpixels'].dtype == np.int64
    np.testing.assert_array_equal(results['superpixels'], slic_superpixels(photos[:1], 48)[0])
    by_area = TRANSFORMS.build(dict(type='cast_mm.SLICSuperpixels', pixels_per_superpixel=256))
    assert by_area.budget(96, 128) == 48


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r'\(B, 3, H, W\)'):
        slic_superpixels(torch.zeros(3, 8, 8), 4)
    with pytest.raises(ValueError, match='channel_order'):
        slic_superpixels(torch.zeros(1, 3, 8, 8), 4, channel_order='hsv')


def test_slic_never_reads_tensor_values_on_the_host():
    """Runs on the meta device, where reading any value on the host raises."""
    images = torch.empty(2, 3, 64, 80, device='meta')
    labels = slic_superpixels(images, 20)
    assert labels.device.type == 'meta' and labels.shape == (2, 64, 80)

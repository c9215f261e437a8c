"""PartImageNet: dataset in the release layout, open-vocabulary labelling, metric and a run."""
import json
import os.path as osp
import sys

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import REPO, TINY_ARCH, TINY_CLUSTERS, run_test
from mmengine.config import Config

from cast_mm.datasets import LoadPartImageNetMasks, PartImageNetDataset
from cast_mm.evaluation import OpenVocabSegmentLabeler, PartImageNetMetric
from cast_mm.evaluation.open_vocab import import_open_clip

open_clip = pytest.importorskip('open_clip')

META = dict(object_classes=('background', 'Quadruped', 'Car'),
            part_classes=('background', 'Quadruped Head', 'Quadruped Body', 'Car Body'),
            part_to_object=(0, 1, 1, 2))
TINY_CLIP = 'cast-test-tiny-clip'


@pytest.fixture(scope='module')
def tiny_clip(tmp_path_factory):
    """Register a tiny, randomly initialised open_clip architecture (no download)."""
    cfg = dict(embed_dim=32,
               vision_cfg=dict(image_size=32, layers=1, width=32, patch_size=16, head_width=16),
               text_cfg=dict(context_length=77, vocab_size=49408, width=32, heads=2, layers=1))
    path = tmp_path_factory.mktemp('clip') / f'{TINY_CLIP}.json'
    path.write_text(json.dumps(cfg))
    open_clip.add_model_config(str(path))
    return dict(model_name=TINY_CLIP, pretrained=None, device='cpu')


def coco_json(images, annotations):
    categories = [dict(id=10 + i, name=name, supercategory=name.split()[0])
                  for i, name in enumerate(META['part_classes'][1:])]
    return dict(images=images, annotations=annotations, categories=categories)


def rect(x0, y0, x1, y1):
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


@pytest.fixture(scope='module')
def partimagenet_root(tmp_path_factory):
    """PartImageNet release layout: images/val/<synset>/*.JPEG, annotations/val.json."""
    root = tmp_path_factory.mktemp('PartImageNet')
    (root / 'annotations').mkdir()
    rng = np.random.RandomState(0)
    images, annotations = [], []
    for i in range(3):
        name = f'n0210{i}/n0210{i}_{i}.JPEG'
        (root / 'images/val' / osp.dirname(name)).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / 'images/val' / name),
                    rng.randint(0, 255, (40, 56, 3)).astype(np.uint8))
        images.append(dict(id=i + 1, file_name=name, height=40, width=56))
        annotations += [
            dict(id=2 * i, image_id=i + 1, category_id=10, segmentation=rect(8, 4, 28, 20)),
            dict(id=2 * i + 1, image_id=i + 1, category_id=11 + i % 2,
                 segmentation=rect(20, 16, 48, 36))
        ]
    (root / 'annotations/val.json').write_text(json.dumps(coco_json(images, annotations)))
    return root


@pytest.mark.slow
def test_dataset_meta_and_masks(partimagenet_root):
    dataset = PartImageNetDataset(ann_file='annotations/val.json',
                                  data_root=str(partimagenet_root),
                                  data_prefix=dict(img_path='images/val'))
    assert len(dataset) == 3
    for key, value in META.items():
        assert dataset.metainfo[key] == value
    info = dataset.get_data_info(1)
    assert info['img_path'].endswith('images/val/n02101/n02101_1.JPEG')
    gt = LoadPartImageNetMasks()(info)['gt_seg_map']
    # Pixel x covers [x, x + 1): rect(8, 4, 28, 20) is columns 8-27, rows 4-19; the second
    # annotation (Car Body) paints over the first where they overlap.
    expected = np.zeros((40, 56), np.uint8)
    expected[4:20, 8:28] = 1
    expected[16:36, 20:48] = 3
    assert np.array_equal(gt, expected)
    # pycocotools reads a segmentation whose first entry has 4 numbers as [x, y, w, h] boxes
    boxes = dict(height=6, width=6, parts=[(2, [[1, 2, 3, 1], [0, 5, 1, 1]])])
    expected = np.zeros((6, 6), np.uint8)
    expected[2, 1:4] = expected[5, 0] = 2
    assert np.array_equal(LoadPartImageNetMasks()(boxes)['gt_seg_map'], expected)


def test_dataset_errors(tmp_path):
    (tmp_path / 'bad.json').write_text(json.dumps(dict(images=[], annotations=[])))
    with pytest.raises(ValueError, match='categories'):
        PartImageNetDataset(ann_file=str(tmp_path / 'bad.json'))
    ann = coco_json([dict(id=1, file_name='a.JPEG', height=4, width=4)],
                    [dict(id=1, image_id=1, category_id=99, segmentation=rect(0, 0, 2, 2))])
    (tmp_path / 'cat.json').write_text(json.dumps(ann))
    with pytest.raises(ValueError, match='unknown category_id 99'):
        PartImageNetDataset(ann_file=str(tmp_path / 'cat.json'))
    rle = dict(height=4, width=4, parts=[(1, dict(size=[4, 4], counts='abc'))], img_path='a')
    with pytest.raises(ValueError, match='RLE'):
        LoadPartImageNetMasks()(rle)


def test_missing_open_clip_is_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, 'open_clip', None)
    with pytest.raises(ImportError, match='pip install open_clip_torch'):
        import_open_clip()


def test_labeler_known_answer(tiny_clip):
    """Text features set to chosen segments' image features make the labels known."""
    torch.manual_seed(0)
    labeler = OpenVocabSegmentLabeler(**META, **tiny_clip)
    image = np.random.RandomState(1).randint(0, 255, (32, 32, 3)).astype(np.uint8)
    coarse = np.zeros((32, 32), np.int64)
    coarse[:, 16:] = 1  # left / right halves
    fine = np.zeros((32, 32), np.int64)
    fine[:16, 16:], fine[16:, :16], fine[16:, 16:] = 1, 2, 3  # quadrants
    f = labeler.segment_image_features(image, coarse, [0, 1])
    g = labeler.segment_image_features(image, fine, [0, 1, 2, 3])
    # left half -> Quadruped (1), right half -> background (0), nothing is a Car
    labeler.object_text = torch.stack([f[1], f[0], -F.normalize(f[0] + f[1], dim=0)])
    # Quadruped parts [1, 2]: top-left quadrant -> part 2, bottom-left -> part 1
    labeler.part_text[1] = torch.stack([g[2], g[0]])
    object_map, part_map = labeler(image, coarse, fine)
    assert np.array_equal(object_map, np.where(coarse == 0, 1, 0))
    expected = np.zeros((32, 32), np.int64)
    expected[:16, :16], expected[16:, :16] = 2, 1
    assert np.array_equal(part_map, expected)
    with pytest.raises(ValueError, match='same size'):
        labeler(image, coarse[:8], fine)


def metric_with_meta(tiny_clip):
    metric = PartImageNetMetric(labeler=tiny_clip)
    metric.dataset_meta = META
    return metric


GT_PARTS = np.array([[0, 1, 1, 2], [0, 2, 3, 3]])


def test_metric_scores_known_answers(tiny_clip):
    metric = metric_with_meta(tiny_clip)
    objects = np.array([[0, 1, 1, 1], [0, 1, 2, 2]])
    assert metric.score(objects, GT_PARTS, GT_PARTS) == pytest.approx((100, 100))
    # One pixel wrong among objects: background 2/3, Quadruped 4/4, Car 1/2.
    # Parts: background 2/3, head 1/2, body 2/3, car body 1/2.
    objects_bad = np.array([[0, 1, 1, 1], [0, 1, 2, 0]])
    parts_bad = np.array([[0, 1, 2, 2], [0, 2, 3, 0]])
    object_score, part_score = metric.score(objects_bad, parts_bad, GT_PARTS)
    assert object_score == pytest.approx((2 / 3 + 1 + 1 / 2) / 3 * 100)
    assert part_score == pytest.approx((2 / 3 + 1 / 2 + 2 / 3 + 1 / 2) / 4 * 100)


def test_metric_averages_images_and_counts_failures(tiny_clip):
    metric = metric_with_meta(tiny_clip)
    results = [dict(name='a', scores=(100., 100.)), dict(name='b', scores=(50., 20.)),
               dict(name='c', error='ValueError: broken')]
    assert metric.compute_metrics(results) == dict(object_jaccard=75., part_jaccard=60.,
                                                   num_images=2, num_failed=1)
    with pytest.raises(RuntimeError, match='failed on all 1 images; first error: ValueError'):
        metric.compute_metrics(results[2:])


def test_metric_process_reports_a_failing_image(tiny_clip):
    metric = metric_with_meta(tiny_clip)
    image = torch.randint(0, 255, (3, 8, 8), dtype=torch.uint8)
    sample = dict(img_path='good.JPEG', hierarchy_levels=(3, 4),
                  pred_hierarchy=dict(data=torch.zeros(2, 8, 8, dtype=torch.long)),
                  gt_sem_seg=dict(data=torch.zeros(1, 8, 8, dtype=torch.long)))
    broken = dict(sample, img_path='broken.JPEG', gt_sem_seg=dict(data=torch.zeros(1, 4, 4)))
    # The one segment is made background: its own (RGB) image feature is the background text.
    rgb = image.numpy().transpose(1, 2, 0)[..., ::-1].copy()
    feat = metric.labeler.segment_image_features(rgb, np.zeros((8, 8), np.int64), [0])[0]
    metric.labeler.object_text = torch.stack([feat, -feat, -feat])
    metric.process(dict(inputs=[image, image]), [sample, broken])
    assert metric.results[0] == dict(name='good.JPEG', scores=(100., 100.))
    assert metric.results[1]['name'] == 'broken.JPEG'
    assert 'does not match' in metric.results[1]['error']
    metrics = metric.evaluate(2)
    assert metrics['partimagenet/num_failed'] == 1
    assert metrics['partimagenet/num_images'] == 1


def test_partimagenet_config_runs(partimagenet_root, tiny_clip, tmp_path):
    """The shipped config with a tiny backbone and a tiny random CLIP evaluates every image."""
    cfg = Config.fromfile(osp.join(REPO, 'configs/cast/cast-s_partimagenet.py'))
    cfg.work_dir = str(tmp_path)
    cfg.model.backbone.update(arch=TINY_ARCH, num_clusters=TINY_CLUSTERS)
    cfg.test_dataloader.update(batch_size=2, num_workers=0, persistent_workers=False)
    cfg.test_dataloader.dataset.data_root = str(partimagenet_root)
    cfg.test_evaluator.labeler = tiny_clip
    torch.manual_seed(0)
    metrics = run_test(cfg)
    assert metrics['partimagenet/num_images'] == 3
    assert metrics['partimagenet/num_failed'] == 0
    for key in ('partimagenet/object_jaccard', 'partimagenet/part_jaccard'):
        assert 0 < metrics[key] <= 100

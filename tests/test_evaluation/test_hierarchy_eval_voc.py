"""VOC prototype retrieval: prototypes, memory, metric, dataset and a tools/test.py-style run."""
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from helpers import REPO, TINY_ARCH, TINY_CLUSTERS, run_test
from mmengine.config import Config
from mmengine.registry import DefaultScope
from PIL import Image

from cast_mm.datasets import PrototypeRetrievalDataset
from cast_mm.evaluation import (PrototypeMemory, PrototypeRetrievalMetric, segment_label_counts,
                                segment_prototypes)


def test_segment_prototypes_pixel_weighted_mean():
    embeddings = torch.tensor([[2., 0.], [0., 3.], [0., -1.]])
    superpixels = torch.tensor([[0, 0, 0, 1], [2, 2, 2, 2]])  # 3, 1 and 4 pixels
    prototypes = segment_prototypes(embeddings, superpixels, torch.tensor([0, 0, 1]), 3)
    assert torch.allclose(prototypes[0], torch.tensor([0.75, 0.25]))
    assert torch.allclose(prototypes[1], torch.tensor([0., -1.]))
    assert torch.equal(prototypes[2], torch.zeros(2))  # no pixels


def test_segment_label_counts_and_errors():
    counts = segment_label_counts(torch.tensor([[0, 0, 1]]), torch.tensor([[1, 255, 2]]), 2, 3)
    assert counts.tolist() == [[0, 1, 0], [0, 0, 1]]
    with pytest.raises(ValueError, match='does not match'):
        segment_label_counts(torch.zeros(2, 2), torch.zeros(2, 3), 1, 3)
    with pytest.raises(ValueError, match='ground-truth labels'):
        segment_label_counts(torch.zeros(1, 1), torch.full((1, 1), 7), 1, 3)


def test_memory_retrieval_majority_and_ties():
    memory = PrototypeMemory.from_counts(
        [torch.tensor([[1., 0.], [0.9, 0.1], [0., 1.], [0., -1.]])],
        [torch.tensor([[0, 5, 0], [0, 1, 0], [0, 0, 2], [0, 0, 0]])])
    assert memory.labels.tolist() == [1, 1, 2]  # the unlabelled segment is left out
    queries = torch.tensor([[1., 0.05], [0., 1.]])
    assert memory.retrieve(queries, top_k=1, num_classes=3).tolist() == [1, 2]
    # k=3: two votes for 1 beat one for 2; k=2 on the second query: 1 vs 1, lowest class wins.
    assert memory.retrieve(queries, top_k=3, num_classes=3).tolist() == [1, 1]
    assert memory.retrieve(queries[1:], top_k=2, num_classes=3).tolist() == [1]
    with pytest.raises(ValueError, match='memory is empty'):
        PrototypeMemory.from_counts([torch.ones(1, 2)], [torch.zeros(1, 3, dtype=torch.long)])


def retrieval_sample(role, segments, prototypes, gt):
    return dict(retrieval_role=role, prototype_level=4, hierarchy_levels=(4, ),
                pred_hierarchy=dict(data=torch.tensor(segments)[None]),
                segment_prototypes=torch.tensor(prototypes, dtype=torch.float32),
                gt_sem_seg=dict(data=torch.tensor(gt)[None]))


def run_retrieval_metric(query_gt):
    metric = PrototypeRetrievalMetric(num_classes=3, top_k=1)
    metric.process({}, [
        retrieval_sample('memory', [[0, 0], [1, 1]], [[1, 0], [0, 1]], [[1, 1], [2, 2]]),
        retrieval_sample('query', [[0, 0, 1], [0, 1, 1]], [[.9, .1], [.2, .8]], query_gt)
    ])
    return metric.evaluate(2)


def test_retrieval_metric_known_answers():
    # Query segment 0 -> class 1, segment 1 -> class 2: prediction [[1, 1, 2], [1, 2, 2]].
    perfect = run_retrieval_metric([[1, 1, 2], [1, 2, 255]])
    assert perfect['retrieval/mIoU'] == pytest.approx(100)
    assert perfect['retrieval/aAcc'] == pytest.approx(100)
    # Ground truth [[1, 1, 1], [2, 2, ignore]]: class 1 TP 2 FP 1 FN 1 -> 1/2, class 2 TP 1
    # FP 1 FN 1 -> 1/3 (class 0 absent); 3 of 5 labelled pixels right.
    imperfect = run_retrieval_metric([[1, 1, 1], [2, 2, 255]])
    assert imperfect['retrieval/mIoU'] == pytest.approx((1 / 2 + 1 / 3) / 2 * 100)
    assert imperfect['retrieval/aAcc'] == pytest.approx(60)
    assert imperfect['retrieval/num_memory_prototypes'] == 2


def test_retrieval_metric_needs_roles_and_both_splits():
    metric = PrototypeRetrievalMetric(num_classes=3)
    sample = retrieval_sample('memory', [[0]], [[1, 0]], [[1]])
    with pytest.raises(ValueError, match='retrieval_role'):
        metric.process({}, [dict(sample, retrieval_role=None)])
    metric.process({}, [sample])
    with pytest.raises(ValueError, match='no query images'):
        metric.evaluate(1)


def write_voc(root, images, split_files):
    """VOC 2012 layout: JPEGImages, SegmentationClass (palette) / SegmentationClassAug (grey)."""
    for sub in ('JPEGImages', 'SegmentationClass', 'SegmentationClassAug',
                'ImageSets/Segmentation'):
        (root / sub).mkdir(parents=True, exist_ok=True)
    palette = np.random.RandomState(0).randint(0, 255, (256, 3)).astype(np.uint8)
    for name, (image, gt) in images.items():
        cv2.imwrite(str(root / 'JPEGImages' / f'{name}.jpg'), image)
        label = Image.fromarray(gt.astype(np.uint8), mode='P')
        label.putpalette(palette.reshape(-1).tolist())
        label.save(root / 'SegmentationClass' / f'{name}.png')
        Image.fromarray(gt.astype(np.uint8)).save(root / 'SegmentationClassAug' / f'{name}.png')
    for split, names in split_files.items():
        (root / 'ImageSets/Segmentation' / f'{split}.txt').write_text('\n'.join(names) + '\n')


@pytest.fixture(scope='module')
def voc_root(tmp_path_factory):
    """Two flat-coloured images, each wholly one class; memory and query are the same."""
    root = tmp_path_factory.mktemp('voc') / 'VOC2012'
    shape = (48, 64)
    images = {
        'red': (np.full((*shape, 3), (30, 30, 220), np.uint8), np.full(shape, 1)),
        'green': (np.full((*shape, 3), (30, 200, 40), np.uint8), np.full(shape, 2)),
    }
    write_voc(root, images, dict(aug=['red', 'green'], val=['red', 'green']))
    return root


def retrieval_config(voc_root, work_dir, top_k):
    cfg = Config.fromfile(osp.join(REPO, 'configs/cast/cast-s_voc-retrieval.py'))
    cfg.work_dir = str(work_dir)
    cfg.model.backbone.update(arch=TINY_ARCH, num_clusters=TINY_CLUSTERS)
    cfg.model.neck.update(in_channels=TINY_ARCH['embed_dims'], hid_channels=32,
                          out_channels=16)
    loader = cfg.test_dataloader
    loader.update(num_workers=0, persistent_workers=False)
    for split in (loader.dataset.memory, loader.dataset.query):
        split.data_root = str(voc_root)
        split.pipeline[1].scale = (64, 64)  # longer side 64 instead of 512
        split.pipeline[3].num_superpixels = 48
    cfg.test_evaluator.update(device='cpu', top_k=top_k)
    return cfg


def test_retrieval_dataset_tags_roles(voc_root, tmp_path):
    cfg = retrieval_config(voc_root, tmp_path, 1)
    with DefaultScope.overwrite_default_scope('mmseg'):  # as in the runner; no leak
        dataset = PrototypeRetrievalDataset(
            **{k: v for k, v in cfg.test_dataloader.dataset.items() if k != 'type'})
    assert len(dataset) == 4
    assert dataset.metainfo['classes'][1] == 'aeroplane'
    roles = [dataset[i]['data_samples'].retrieval_role for i in range(4)]
    assert roles == ['memory', 'memory', 'query', 'query']
    assert dataset.get_data_info(3)['retrieval_role'] == 'query'
    assert dataset[3]['data_samples'].superpixels.data.shape[1:] == (48, 64)
    with pytest.raises(IndexError):
        dataset[4]


def test_voc_retrieval_config_runs_with_known_answers(voc_root, tmp_path):
    """The shipped config, tiny backbone: one pass builds the memory and scores val.

    Memory and query images are the same, so with ``top_k=1`` every query segment finds its
    own prototype (mIoU 100). With ``top_k`` above the memory size every segment gets the
    majority class of the whole memory, the same for both images: one class is right on
    one image (IoU 1/2), the other wrong everywhere (IoU 0).
    """
    torch.manual_seed(0)
    metrics = run_test(retrieval_config(voc_root, tmp_path / 'k1', top_k=1))
    assert metrics['retrieval/mIoU'] == pytest.approx(100)
    assert metrics['retrieval/aAcc'] == pytest.approx(100)
    metrics = run_test(retrieval_config(voc_root, tmp_path / 'k9', top_k=99))
    assert metrics['retrieval/mIoU'] == pytest.approx(25)
    assert metrics['retrieval/aAcc'] == pytest.approx(50)

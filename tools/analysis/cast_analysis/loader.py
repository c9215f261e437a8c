"""What feeds the model: each shipped training config's train pipeline timed as one data loader
worker runs it.

* :func:`training_configs`: the configs of ``configs/cast`` that have a ``train_dataloader``,
  grouped where the dataset type, the train pipeline and ``num_workers`` are identical (the
  CAST-B twins of the CAST-S configs, and configs that differ only in the model).
* :func:`write_samples`: synthetic files in the layout the pipeline's loading transforms read
  (``LoadImageFromFile``, mmseg's ``LoadAnnotations``): photographs resized to the dataset's
  typical image size (:data:`SAMPLE_LAYOUTS`) and written as JPEG, and for segmentation datasets
  label PNGs of coarse regions of the photographs. Nothing is downloaded.
* :func:`time_pipeline`: the config's train pipeline (mmengine's ``Compose``, built in the
  config's default scope) run over those files on one thread (:func:`one_worker_thread`: torch
  and OpenCV on one thread, as in a loader worker; the random generators seeded), each transform
  timed on its own.

A worker's throughput is ``1000 / ms per sample``; the config's ``num_workers`` workers deliver
``num_workers * 1000 / ms`` samples per second to their GPU, if each worker has a core of its own.
The files are read from the page cache (a first pass is untimed), so reading from disk or the
network comes on top.
"""
import contextlib
import dataclasses
import glob
import os.path as osp
import random
import time
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from .batches import photographs, region_labels
from .models import REPO

#: The folder of the shipped configs.
CONFIG_DIR = osp.join(REPO, 'configs', 'cast')


@dataclasses.dataclass(frozen=True)
class SampleLayout:
    """The synthetic files of one dataset type.

    Args:
        width (int): image width (typical of the dataset).
        height (int): image height.
        suffix (str): image file suffix.
        classes (int, optional): segmentation datasets: classes of the label PNG (values
            ``0 .. classes - 1`` and 255 on region borders); None: classification.
        reduce_zero_label (bool): the dataset's ``reduce_zero_label`` (label 0 is ignored and
            the others shift down by one, as ADE20K's).
        labelled (bool): classification: samples carry a ``gt_label``.
    """
    width: int
    height: int
    suffix: str = '.jpg'
    classes: Optional[int] = None
    reduce_zero_label: bool = False
    labelled: bool = True


#: Dataset type (without scope) -> the files its samples are made of.
SAMPLE_LAYOUTS = {
    'ADE20KDataset': SampleLayout(683, 512, classes=151, reduce_zero_label=True),
    'DemoADE20KDataset': SampleLayout(160, 128, classes=151, reduce_zero_label=True),
    'PascalContextDataset': SampleLayout(500, 375, classes=60),
    'PascalVOCDataset': SampleLayout(500, 375, classes=21),
    'ImageNet': SampleLayout(500, 375, suffix='.JPEG'),
    # COCO train2017 as an unlabelled image folder (MoCo-v3 pre-training).
    'CustomDataset': SampleLayout(640, 480, labelled=False),
}


@dataclasses.dataclass
class LoaderGroup:
    """Training configs with the same dataset type, train pipeline and ``num_workers``."""
    configs: List[str]
    dataset_type: str
    pipeline: List[Dict]
    num_workers: int
    batch_size: int
    default_scope: str

    @property
    def name(self) -> str:
        """The first config's file name."""
        return osp.basename(self.configs[0])


def _train_dataset(cfg, path: str) -> Dict:
    """The dataset config that holds the pipeline (through wrappers such as RepeatDataset)."""
    dataset = cfg.train_dataloader.dataset
    while 'pipeline' not in dataset and 'dataset' in dataset:
        dataset = dataset.dataset
    if 'pipeline' not in dataset:
        raise ValueError(f'{path}: train_dataloader.dataset has no pipeline')
    return dataset


def training_configs(paths: Optional[Sequence[str]] = None) -> List[LoaderGroup]:
    """The training configs (``paths``, default every ``configs/cast/*.py``; those without a
    ``train_dataloader`` are left out), grouped by identical dataset type, train pipeline and
    ``num_workers``, in file order."""
    from mmengine.config import Config
    groups: Dict[str, LoaderGroup] = {}
    for path in paths or sorted(glob.glob(osp.join(CONFIG_DIR, '*.py'))):
        cfg = Config.fromfile(path)
        if cfg.get('train_dataloader') is None:
            continue
        dataset = _train_dataset(cfg, path)
        pipeline = [t.to_dict() if hasattr(t, 'to_dict') else dict(t) for t in dataset.pipeline]
        dataset_type = dataset['type'].split('.')[-1]
        num_workers = cfg.train_dataloader.get('num_workers', 0)
        key = repr((dataset_type, pipeline, num_workers))
        if key in groups:
            groups[key].configs.append(path)
        else:
            groups[key] = LoaderGroup([path], dataset_type, pipeline, num_workers,
                                      cfg.train_dataloader.get('batch_size', 1),
                                      cfg.get('default_scope', 'mmseg'))
    return list(groups.values())


def sample_layout(dataset_type: str) -> SampleLayout:
    """The layout of ``dataset_type``; a KeyError names the table to extend."""
    if dataset_type not in SAMPLE_LAYOUTS:
        raise KeyError(f'no synthetic sample layout for dataset type {dataset_type!r}: add its '
                       'typical image size and labels to cast_analysis.loader.SAMPLE_LAYOUTS')
    return SAMPLE_LAYOUTS[dataset_type]


def write_samples(layout: SampleLayout, folder: str, count: int) -> List[Dict]:
    """Write ``count`` samples of ``layout`` into ``folder``; their data infos, as the dataset
    hands them to its pipeline."""
    photos = photographs()
    infos = []
    for i in range(count):
        rgb = cv2.resize(photos[i % len(photos)], (layout.width, layout.height),
                         interpolation=cv2.INTER_AREA)
        img_path = osp.join(folder, f'sample{i}{layout.suffix}')
        cv2.imwrite(img_path, np.ascontiguousarray(rgb[..., ::-1]),
                    [cv2.IMWRITE_JPEG_QUALITY, 90])
        info = dict(img_path=img_path, sample_idx=i)
        if layout.classes is not None:
            # Coarse regions of the photograph, found at a quarter of the size (quicker).
            small = cv2.resize(rgb, (layout.width // 4, layout.height // 4),
                               interpolation=cv2.INTER_AREA)
            labels = cv2.resize(region_labels(small, i, layout.classes),
                                (layout.width, layout.height), interpolation=cv2.INTER_NEAREST)
            seg_map_path = osp.join(folder, f'sample{i}.png')
            cv2.imwrite(seg_map_path, labels)
            info.update(seg_map_path=seg_map_path, label_map=None,
                        reduce_zero_label=layout.reduce_zero_label, seg_fields=[])
        elif layout.labelled:
            info.update(gt_label=(i * 389 + 7) % 1000)
        infos.append(info)
    return infos


@contextlib.contextmanager
def one_worker_thread() -> Iterator[None]:
    """torch and OpenCV on one thread, as in a data loader worker; restored afterwards."""
    torch_threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        torch.set_num_threads(torch_threads)
        cv2.setNumThreads(cv2_threads)


@contextlib.contextmanager
def seeded_random(seed: int) -> Iterator[None]:
    """Python's, NumPy's and torch's global generators (what transforms draw from) seeded with
    ``seed``; their states restored afterwards."""
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    random.seed(seed)
    np.random.seed(seed)
    torch.default_generator.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])


def transform_name(cfg: Dict) -> str:
    """A transform's type, with the types of the transforms it wraps (``ApplyToList``,
    ``MultiView``, ``RandomApply``)."""
    inner: List[str] = []

    def collect(value) -> None:
        if isinstance(value, dict) and 'type' in value:
            if value['type'] not in inner:
                inner.append(value['type'])
        elif isinstance(value, (list, tuple)):
            for item in value:
                collect(item)

    collect(cfg.get('transforms', []))
    return cfg['type'] + (f'({", ".join(inner)})' if inner else '')


def time_pipeline(group: LoaderGroup, infos: Sequence[Dict], warmup: int, repeats: int,
                  max_seconds: Optional[float] = None) -> Dict:
    """Run ``group``'s train pipeline over ``infos``: ``warmup`` untimed passes (at least one:
    the files come from the page cache), then up to ``repeats`` timed passes (at least one; with
    ``max_seconds``, no new pass starts once they have taken that long), every transform timed.

    Returns:
        dict: ``ms_per_sample`` (mean), ``transforms`` (``[name, mean ms]`` in pipeline order),
        ``samples`` (timed) and ``dropped`` (samples a transform returned None for).
    """
    from mmengine.dataset import Compose
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope(group.default_scope):
        pipeline = Compose(group.pipeline)
    names = [transform_name(t) for t in group.pipeline]
    totals = np.zeros(len(names))
    samples = dropped = 0
    with one_worker_thread(), seeded_random(0):
        for _ in range(max(warmup, 1)):
            for info in infos:
                _run(pipeline.transforms, info)
        started = time.perf_counter()
        for passes in range(max(repeats, 1)):
            if passes and max_seconds is not None and time.perf_counter() - started > max_seconds:
                break
            for info in infos:
                seconds, complete = _run(pipeline.transforms, info)
                totals += seconds
                samples += 1
                dropped += not complete
    per_sample = totals * 1e3 / samples
    return dict(ms_per_sample=float(per_sample.sum()),
                transforms=[[name, float(ms)] for name, ms in zip(names, per_sample)],
                samples=samples, dropped=dropped)


def _run(transforms, info: Dict) -> Tuple[np.ndarray, bool]:
    """Seconds of each transform on a fresh copy of ``info``; whether the sample came through."""
    seconds = np.zeros(len(transforms))
    results = dict(info, seg_fields=list(info.get('seg_fields', [])))
    for i, transform in enumerate(transforms):
        start = time.perf_counter()
        results = transform(results)
        seconds[i] = time.perf_counter() - start
        if results is None:
            return seconds, False
    return seconds, True

"""VOC unsupervised semantic segmentation by nearest-prototype retrieval.

One test pass covers both splits (see :class:`~cast_mm.datasets.PrototypeRetrievalDataset`):
samples tagged ``retrieval_role='memory'`` (VOC train+) build the labelled prototype memory,
samples tagged ``'query'`` (VOC val) are scored. Per image only the segment prototypes and the
segment-by-class pixel counts are kept, so memory and scoring both happen in
:meth:`compute_metrics`, after all ranks' results are collected.
"""
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric

from cast_mm.registry import METRICS
from ..functional import iou_per_class
from ..prototypes import PrototypeMemory, segment_label_counts

ROLES = ('memory', 'query')


@METRICS.register_module()
class PrototypeRetrievalMetric(BaseMetric):
    """mIoU of segments labelled by the majority label of their nearest memory prototypes.

    Each data sample (from :class:`~cast_mm.models.HierarchySegmentor` with
    ``prototype_level`` set) carries ``pred_hierarchy`` (segment maps of the levels
    ``hierarchy_levels``), ``segment_prototypes`` of level ``prototype_level``, ``gt_sem_seg``
    and ``retrieval_role``. The mIoU averages the classes present in ground truth or
    prediction of the query images (as mmseg's ``IoUMetric``).

    Args:
        num_classes (int, optional): classes, background included; defaults to the number of
            ``classes`` of the dataset meta (21 for VOC).
        top_k (int): retrieved prototypes per segment. Defaults to 20.
        ignore_index (int): unlabelled ground truth. Defaults to 255.
        device (str): where the retrieval runs (``'cuda'`` for the full VOC memory of ~420k
            prototypes). Defaults to ``'cpu'``.
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to ``'cpu'``.
        prefix (str, optional): metric name prefix. Defaults to ``'retrieval'``.
    """
    default_prefix = 'retrieval'

    def __init__(self,
                 num_classes: Optional[int] = None,
                 top_k: int = 20,
                 ignore_index: int = 255,
                 device: str = 'cpu',
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if top_k < 1:
            raise ValueError(f'top_k must be >= 1, got {top_k}')
        self._num_classes = num_classes
        self.top_k = top_k
        self.ignore_index = ignore_index
        self.device = device

    @property
    def num_classes(self) -> int:
        """Number of classes, from the argument or the dataset meta."""
        if self._num_classes is not None:
            return self._num_classes
        if not self.dataset_meta or 'classes' not in self.dataset_meta:
            raise ValueError('PrototypeRetrievalMetric needs num_classes or a dataset meta '
                             'with classes')
        return len(self.dataset_meta['classes'])

    def process(self, data_batch, data_samples: Sequence[Dict]) -> None:
        for sample in data_samples:
            role = sample.get('retrieval_role')
            if role not in ROLES:
                raise ValueError(f'sample {sample.get("img_path")} has retrieval_role {role!r}; '
                                 f'expected one of {ROLES} (use PrototypeRetrievalDataset)')
            level = sample['prototype_level']
            segments = sample['pred_hierarchy']['data'][sample['hierarchy_levels'].index(level)]
            prototypes = sample['segment_prototypes']
            counts = segment_label_counts(segments.cpu(), sample['gt_sem_seg']['data'][0].cpu(),
                                          prototypes.shape[0], self.num_classes,
                                          self.ignore_index)
            self.results.append(dict(role=role, prototypes=prototypes.cpu().float(),
                                     counts=counts))

    def compute_metrics(self, results: List[Dict]) -> Dict[str, float]:
        by_role = {role: [r for r in results if r['role'] == role] for role in ROLES}
        for role, items in by_role.items():
            if not items:
                raise ValueError(f'no {role} images were evaluated; the retrieval protocol '
                                 'needs both splits (PrototypeRetrievalDataset)')
        memory = PrototypeMemory.from_counts([r['prototypes'] for r in by_role['memory']],
                                             [r['counts'] for r in by_role['memory']])
        memory = PrototypeMemory(memory.prototypes.to(self.device),
                                 memory.labels.to(self.device))
        queries = torch.cat([r['prototypes'] for r in by_role['query']])
        counts = torch.cat([r['counts'] for r in by_role['query']])
        labels = memory.retrieve(queries, self.top_k, self.num_classes).cpu()
        # Every pixel of a segment takes the segment's label: rows ground truth, columns label.
        confusion = (counts.T.double() @ F.one_hot(labels, self.num_classes).double()).numpy()
        return dict(mIoU=float(np.nanmean(iou_per_class(confusion)) * 100),
                    aAcc=float(np.trace(confusion) / max(confusion.sum(), 1) * 100),
                    num_memory_prototypes=int(memory.labels.numel()))

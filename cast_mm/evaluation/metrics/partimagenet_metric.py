"""PartImageNet object and part segmentation from the CAST hierarchy."""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from cast_mm.registry import METRICS
from ..functional import mean_jaccard
from ..open_vocab import OpenVocabSegmentLabeler


@METRICS.register_module()
class PartImageNetMetric(BaseMetric):
    """Per-image Jaccard index of object and part maps, averaged over images.

    Each data sample (from :class:`~cast_mm.models.HierarchySegmentor`) carries
    ``pred_hierarchy`` (segment maps of the levels ``hierarchy_levels``) and ``gt_sem_seg``
    (the part map of :class:`~cast_mm.datasets.LoadPartImageNetMasks`, at the same size). The
    segments of ``object_level`` are labelled as objects, those of ``part_level`` as parts, by
    :class:`OpenVocabSegmentLabeler` on the image of ``data_batch['inputs']``; the object
    ground truth is the part map sent through the dataset meta's ``part_to_object``. Each
    image's Jaccard index averages the classes present in its prediction or ground truth.

    An image whose evaluation fails is logged with its error and counted in ``num_failed``;
    the averages cover the others, and the evaluation fails when no image succeeded.

    Args:
        labeler (dict): arguments of :class:`OpenVocabSegmentLabeler` other than the classes
            (``model_name``, ``pretrained``, ``prompt``, ``device``, ...), which come from the
            dataset meta.
        object_level (int): hierarchy level of the objects. Defaults to 4.
        part_level (int): hierarchy level of the parts. Defaults to 3.
        bgr_to_rgb (bool): whether ``data_batch['inputs']`` are BGR (mmcv loading) and must be
            flipped for CLIP. Defaults to True.
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to ``'cpu'``.
        prefix (str, optional): metric name prefix. Defaults to ``'partimagenet'``.
    """
    default_prefix = 'partimagenet'

    def __init__(self,
                 labeler: Dict,
                 object_level: int = 4,
                 part_level: int = 3,
                 bgr_to_rgb: bool = True,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.labeler_cfg = dict(labeler)
        self.object_level = object_level
        self.part_level = part_level
        self.bgr_to_rgb = bgr_to_rgb
        self._labeler: Optional[OpenVocabSegmentLabeler] = None

    @property
    def labeler(self) -> OpenVocabSegmentLabeler:
        """The open-vocabulary labeler, built on first use from the dataset meta."""
        if self._labeler is None:
            meta = self.dataset_meta or {}
            missing = [k for k in ('object_classes', 'part_classes', 'part_to_object')
                       if k not in meta]
            if missing:
                raise ValueError(f'PartImageNetMetric needs the dataset meta keys {missing} '
                                 '(use PartImageNetDataset)')
            self._labeler = OpenVocabSegmentLabeler(
                meta['object_classes'], meta['part_classes'], meta['part_to_object'],
                **self.labeler_cfg)
        return self._labeler

    def score(self, object_map: np.ndarray, part_map: np.ndarray,
              gt_part_map: np.ndarray) -> Tuple[float, float]:
        """``(object Jaccard, part Jaccard)`` (x100) of one image's labelled maps."""
        part_to_object = np.asarray(self.dataset_meta['part_to_object'])
        num_objects, num_parts = len(self.dataset_meta['object_classes']), len(part_to_object)
        gt_part_map = np.asarray(gt_part_map).astype(np.int64)
        return (mean_jaccard(object_map, part_to_object[gt_part_map], num_objects),
                mean_jaccard(part_map, gt_part_map, num_parts))

    def _evaluate(self, labeler: OpenVocabSegmentLabeler, image: np.ndarray,
                  sample: Dict) -> Tuple[float, float]:
        levels = list(sample['hierarchy_levels'])
        segments = sample['pred_hierarchy']['data'].cpu().numpy()
        coarse = segments[levels.index(self.object_level)]
        fine = segments[levels.index(self.part_level)]
        object_map, part_map = labeler(image, coarse, fine)
        return self.score(object_map, part_map, sample['gt_sem_seg']['data'][0].cpu().numpy())

    def process(self, data_batch: Dict, data_samples: Sequence[Dict]) -> None:
        labeler = self.labeler  # set-up errors (no open_clip, no weights) are not per image
        for inputs, sample in zip(data_batch['inputs'], data_samples):
            name = sample.get('img_path', len(self.results))
            try:
                image = inputs.cpu().numpy().transpose(1, 2, 0)
                if self.bgr_to_rgb:
                    image = image[..., ::-1]
                scores = self._evaluate(labeler, np.ascontiguousarray(image), sample)
                self.results.append(dict(name=name, scores=scores))
            except Exception as err:  # noqa: BLE001 - reported and counted in compute_metrics
                self.results.append(dict(name=name, error=f'{type(err).__name__}: {err}'))

    def compute_metrics(self, results: List[Dict]) -> Dict[str, float]:
        logger = MMLogger.get_current_instance()
        failed = [r for r in results if 'error' in r]
        for r in failed:
            logger.error(f'PartImageNet evaluation failed on {r["name"]}: {r["error"]}')
        scores = np.array([r['scores'] for r in results if 'error' not in r]).reshape(-1, 2)
        if not len(scores):
            raise RuntimeError(f'PartImageNet evaluation failed on all {len(results)} images; '
                               f'first error: {failed[0]["error"] if failed else "no images"}')
        if failed:
            logger.warning(f'PartImageNet: {len(failed)} of {len(results)} images failed and '
                           'are left out of the averages')
        return dict(object_jaccard=float(scores[:, 0].mean()),
                    part_jaccard=float(scores[:, 1].mean()),
                    num_images=len(scores), num_failed=len(failed))

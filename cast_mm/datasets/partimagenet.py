"""PartImageNet (COCO-format part annotations) for the hierarchy evaluation.

On disk (the PartImageNet / PartImageNet_OOD release)::

    PartImageNet/
        annotations/{train,val,test}.json
        images/{train,val,test}/<file_name of the json>

The json is COCO: one category per part (``name`` e.g. ``'Quadruped Head'``,
``supercategory`` its object, e.g. ``'Quadruped'``) and polygon segmentations. Objects are the
union of their parts. ``file_name`` may include the synset folder.

Labels: index 0 is the background; parts ``1..P`` in the order of the json's categories,
objects ``1..O`` in order of first appearance among them.
"""
import json
import os.path as osp
from typing import Dict, List, Sequence

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.dataset import BaseDataset
from skimage.draw import polygon as polygon_pixels

from cast_mm.registry import DATASETS, TRANSFORMS


def load_coco_parts(ann_file: str) -> Dict:
    """Read a PartImageNet COCO json, checking the keys the dataset relies on."""
    with open(ann_file) as f:
        coco = json.load(f)
    missing = [key for key in ('images', 'annotations', 'categories') if key not in coco]
    if missing:
        raise ValueError(f'{ann_file} is not a COCO annotation file (missing {missing})')
    for cat in coco['categories']:
        if 'supercategory' not in cat:
            raise ValueError(f'{ann_file}: category {cat.get("name")!r} has no supercategory '
                             '(the object a PartImageNet part belongs to)')
    return coco


@DATASETS.register_module()
class PartImageNetDataset(BaseDataset):
    """PartImageNet images with their part polygons.

    Each data item holds ``img_path``, ``img_id``, ``height``, ``width`` and ``parts``, a list
    of ``(part_label, polygons)``; :class:`LoadPartImageNetMasks` rasterises them. The meta
    holds ``object_classes``, ``part_classes`` (both with ``'background'`` first) and
    ``part_to_object`` (object label of each part label).

    Args:
        ann_file (str): the COCO json, e.g. ``'annotations/val.json'``.
        data_prefix (dict): ``dict(img_path='images/val')``.
        **kwargs: other :class:`mmengine.dataset.BaseDataset` arguments.
    """

    def __init__(self, ann_file: str, data_prefix: Dict = dict(img_path=''), **kwargs) -> None:
        super().__init__(ann_file=ann_file, data_prefix=data_prefix, **kwargs)

    def load_data_list(self) -> List[Dict]:
        coco = load_coco_parts(self.ann_file)
        categories = coco['categories']
        objects = list(dict.fromkeys(c['supercategory'] for c in categories))
        part_label = {c['id']: i + 1 for i, c in enumerate(categories)}
        self._metainfo.update(
            object_classes=tuple(['background'] + objects),
            part_classes=tuple(['background'] + [c['name'] for c in categories]),
            part_to_object=tuple([0] + [objects.index(c['supercategory']) + 1
                                        for c in categories]))
        parts: Dict[int, List] = {}
        for ann in coco['annotations']:
            if ann['category_id'] not in part_label:
                raise ValueError(f'{self.ann_file}: annotation {ann.get("id")} has unknown '
                                 f'category_id {ann["category_id"]}')
            parts.setdefault(ann['image_id'], []).append(
                (part_label[ann['category_id']], ann['segmentation']))
        return [dict(img_path=osp.join(self.data_prefix['img_path'], img['file_name']),
                     img_id=img['id'], height=img['height'], width=img['width'],
                     parts=parts.get(img['id'], []))
                for img in sorted(coco['images'], key=lambda i: i['id'])]


@TRANSFORMS.register_module()
class LoadPartImageNetMasks(BaseTransform):
    """Rasterise the part polygons of a :class:`PartImageNetDataset` item into ``gt_seg_map``.

    The part map goes under mmseg's ``gt_seg_map`` key, so every mmseg / mmcv geometric
    transform (resize, crop, flip) handles it; the object map is the part map sent through
    the dataset meta's ``part_to_object``. Later annotations paint over earlier ones. A pixel
    ``(x, y)`` covers ``[x, x + 1) x [y, y + 1)`` (COCO) and belongs to a polygon when its
    centre lies inside.

    Required keys: ``height``, ``width``, ``parts``. Added keys: ``gt_seg_map`` (``H x W``
    uint8, 0 background), ``seg_fields``.
    """

    def transform(self, results: Dict) -> Dict:
        part_map = np.zeros((results['height'], results['width']), dtype=np.uint8)
        for label, segmentation in results['parts']:
            for points in self.polygons(segmentation, results.get('img_path')):
                rows, cols = polygon_pixels(points[:, 1] - 0.5, points[:, 0] - 0.5,
                                            part_map.shape)
                part_map[rows, cols] = label
        results['gt_seg_map'] = part_map
        results.setdefault('seg_fields', []).append('gt_seg_map')
        return results

    @staticmethod
    def polygons(segmentation: Sequence, img_path: str) -> List[np.ndarray]:
        """``(N, 2)`` ``(x, y)`` point arrays of a COCO polygon segmentation.

        As in pycocotools (``annToMask``, used by the official evaluation), a segmentation
        whose first entry has 4 numbers is a list of ``[x, y, w, h]`` boxes; polygons with
        fewer than 3 points are empty.
        """
        if not isinstance(segmentation, list):
            raise ValueError(f'{img_path}: only polygon segmentations are supported, got '
                             f'{type(segmentation).__name__} (RLE)')
        if segmentation and len(segmentation[0]) == 4:
            segmentation = [[x, y, x + w, y, x + w, y + h, x, y + h]
                            for x, y, w, h in segmentation]
        return [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in segmentation
                if len(p) >= 6]

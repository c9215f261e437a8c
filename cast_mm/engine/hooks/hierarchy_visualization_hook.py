"""Draw the segmentation hierarchy of fixed probe images during training and testing."""
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from cast_mm.apis.hierarchy import HierarchyExtractor, load_rgb_image
from cast_mm.registry import HOOKS
from cast_mm.visualization import HierarchyVisualizer


@HOOKS.register_module()
class HierarchyVisualizationHook(Hook):
    """Draw the hierarchy the model currently gives to a few probe images.

    The runner's visualizer must be a :class:`HierarchyVisualizer`, e.g.
    ``visualizer=dict(type='cast_mm.HierarchyVisualizer', vis_backends=[...])``. Panels go to
    the visualizer's backends (key: the image file stem, step = training iteration) and,
    with ``out_dir``, every picture is also written under ``work_dir/out_dir/<stage>_<step>``.

    Args:
        image_paths (Sequence[str]): probe images.
        interval (int): draw every ``interval`` training iterations; 0 draws only after
            validation and testing. Defaults to 0.
        draw_after (Sequence[str]): among ``'val'`` and ``'test'``, after which loops to draw.
            Defaults to both.
        out_dir (str, optional): folder (relative to the work dir) for the pictures.
        extractor_cfg (dict, optional): ``mean``, ``std``, ``superpixel_cfg`` of
            :class:`HierarchyExtractor`.
    """
    priority = 'LOW'

    def __init__(self,
                 image_paths: Sequence[str],
                 interval: int = 0,
                 draw_after: Sequence[str] = ('val', 'test'),
                 out_dir: Optional[str] = None,
                 extractor_cfg: Optional[Dict] = None) -> None:
        if not image_paths:
            raise ValueError('HierarchyVisualizationHook needs at least one probe image')
        if interval < 0:
            raise ValueError(f'interval must be >= 0, got {interval}')
        unknown = set(draw_after) - {'val', 'test'}
        if unknown:
            raise ValueError(f"draw_after accepts 'val' and 'test', got {sorted(unknown)}")
        self.image_paths = list(image_paths)
        self.interval = interval
        self.draw_after = tuple(draw_after)
        self.out_dir = out_dir
        self.extractor_cfg = extractor_cfg or {}
        self._images: List[np.ndarray] = []

    def before_run(self, runner) -> None:
        if not isinstance(runner.visualizer, HierarchyVisualizer):
            raise TypeError('HierarchyVisualizationHook needs visualizer='
                            "dict(type='cast_mm.HierarchyVisualizer', ...), got "
                            f'{type(runner.visualizer).__name__}')
        self._images = [load_rgb_image(path) for path in self.image_paths]

    def _draw(self, runner, stage: str) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        hierarchies = HierarchyExtractor(model, **self.extractor_cfg)(self._images)
        out_dir = None
        if self.out_dir is not None:
            out_dir = osp.join(runner.work_dir, self.out_dir, f'{stage}_{runner.iter}')
        for path, image, hierarchy in zip(self.image_paths, self._images, hierarchies):
            stem = osp.splitext(osp.basename(path))[0]
            runner.visualizer.add_hierarchy(stem, image, hierarchy, step=runner.iter,
                                            out_dir=out_dir)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.interval and self.every_n_train_iters(runner, self.interval):
            self._draw(runner, 'train')

    def after_val_epoch(self, runner, metrics=None) -> None:
        if 'val' in self.draw_after:
            self._draw(runner, 'val')

    def after_test_epoch(self, runner, metrics=None) -> None:
        if 'test' in self.draw_after:
            self._draw(runner, 'test')

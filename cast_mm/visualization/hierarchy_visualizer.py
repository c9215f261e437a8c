"""An MMEngine visualizer that draws CAST segmentation hierarchies."""
from typing import Optional, Sequence

import numpy as np
from mmengine.visualization import Visualizer

from cast_mm.models.segment_hierarchy import SegmentHierarchy
from cast_mm.registry import VISUALIZERS
from .drawing import HierarchyDrawing, draw_hierarchy, save_drawing


@VISUALIZERS.register_module()
class HierarchyVisualizer(Visualizer):
    """Draw the levels of a :class:`SegmentHierarchy` and send the panel to the backends.

    Config: ``visualizer=dict(type='cast_mm.HierarchyVisualizer',
    vis_backends=[dict(type='LocalVisBackend')])``.

    Args:
        name (str): instance name. Defaults to ``'visualizer'``.
        alpha (float): weight of the segment colours. Defaults to 0.5.
        boundary_color (Sequence[int]): RGB colour of segment boundaries. Defaults to white.
        palette_seed (int): seed of the segment colours. Defaults to 0.
        **kwargs: other :class:`mmengine.visualization.Visualizer` arguments
            (``vis_backends``, ``save_dir``).
    """

    def __init__(self,
                 name: str = 'visualizer',
                 alpha: float = 0.5,
                 boundary_color: Sequence[int] = (255, 255, 255),
                 palette_seed: int = 0,
                 **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.alpha = alpha
        self.boundary_color = tuple(boundary_color)
        self.palette_seed = palette_seed

    def add_hierarchy(self,
                      name: str,
                      image: np.ndarray,
                      hierarchy: SegmentHierarchy,
                      step: int = 0,
                      show: bool = False,
                      wait_time: float = 0.,
                      out_dir: Optional[str] = None) -> HierarchyDrawing:
        """Draw ``hierarchy`` over ``image``, log the panel and optionally save every picture.

        Args:
            name (str): image identifier (backend key, file stem; no ``/``).
            image (np.ndarray): ``H x W x 3`` uint8 RGB image.
            hierarchy (SegmentHierarchy): its hierarchy.
            step (int): global step for the backends. Defaults to 0.
            show (bool): display the panel in a window. Defaults to False.
            wait_time (float): display time in seconds. Defaults to 0.
            out_dir (str, optional): also write ``{name}_level{k}.png`` and
                ``{name}_panel.png`` there.

        Returns:
            HierarchyDrawing: the pictures.
        """
        drawing = draw_hierarchy(image, hierarchy, self.alpha, self.boundary_color,
                                 self.palette_seed)
        self.set_image(drawing.panel)
        if show:
            self.show(drawing.panel, win_name=name, wait_time=wait_time)
        self.add_image(name, drawing.panel, step)
        if out_dir is not None:
            save_drawing(drawing, out_dir, name)
        return drawing

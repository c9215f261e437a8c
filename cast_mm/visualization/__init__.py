"""Pictures of CAST segmentation hierarchies (functions and an MMEngine visualizer)."""
from .drawing import (HierarchyDrawing, compose_panel, draw_hierarchy, draw_segments, level_names,
                      save_drawing, segment_palette)
from .hierarchy_visualizer import HierarchyVisualizer

__all__ = [
    'HierarchyDrawing', 'HierarchyVisualizer', 'compose_panel', 'draw_hierarchy',
    'draw_segments', 'level_names', 'save_drawing', 'segment_palette'
]

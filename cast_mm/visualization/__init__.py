"""Pictures of CAST segmentation hierarchies (functions and an MMEngine visualizer)."""
from .drawing import (HierarchyDrawing, caption_bar_height, compose_panel, draw_hierarchy,
                      draw_segments, level_names, save_drawing, segment_palette)
from .hierarchy_view import HierarchyView, SegmentOnPath
from .hierarchy_visualizer import HierarchyVisualizer
from .nested_palette import hierarchy_palettes, nested_palettes, shade_children

__all__ = [
    'HierarchyDrawing', 'HierarchyView', 'HierarchyVisualizer', 'SegmentOnPath',
    'caption_bar_height', 'compose_panel', 'draw_hierarchy', 'draw_segments',
    'hierarchy_palettes', 'level_names', 'nested_palettes', 'save_drawing', 'segment_palette',
    'shade_children'
]

"""MMEngine hooks of cast_mm."""
from .hierarchy_visualization_hook import HierarchyVisualizationHook

__all__ = ['HierarchyVisualizationHook']

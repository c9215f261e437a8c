"""Training and testing machinery of cast_mm (hooks)."""
from .hooks import HierarchyVisualizationHook

__all__ = ['HierarchyVisualizationHook']

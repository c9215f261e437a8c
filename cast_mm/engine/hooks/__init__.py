"""MMEngine hooks of cast_mm."""
from .atomic_checkpoint_hook import AtomicCheckpointHook
from .hierarchy_visualization_hook import HierarchyVisualizationHook

__all__ = ['AtomicCheckpointHook', 'HierarchyVisualizationHook']

"""MMEngine hooks of cast_mm."""
from .atomic_checkpoint_hook import AtomicCheckpointHook
from .hierarchy_visualization_hook import HierarchyVisualizationHook
from .preemption_checkpoint_hook import PREEMPTED_EXIT_CODE, PreemptionCheckpointHook

__all__ = [
    'AtomicCheckpointHook', 'HierarchyVisualizationHook', 'PREEMPTED_EXIT_CODE',
    'PreemptionCheckpointHook'
]

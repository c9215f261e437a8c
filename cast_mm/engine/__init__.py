"""Training and testing machinery of cast_mm: hooks, resumable samplers and loops."""
from .hooks import AtomicCheckpointHook, HierarchyVisualizationHook
from .loops import ResumableEpochBasedTrainLoop, ResumableIterBasedTrainLoop
from .resume import find_resumable_checkpoint, torch_file_problem
from .rng import get_rng_states, preserved_rng_states, set_rng_states
from .samplers import (ResumableDefaultSampler, ResumableInfiniteSampler, ResumableRepeatAugSampler,
                       ResumableSamplerMixin)

__all__ = [
    'AtomicCheckpointHook', 'HierarchyVisualizationHook', 'ResumableEpochBasedTrainLoop',
    'ResumableIterBasedTrainLoop', 'torch_file_problem', 'find_resumable_checkpoint',
    'get_rng_states', 'preserved_rng_states', 'set_rng_states', 'ResumableDefaultSampler',
    'ResumableInfiniteSampler', 'ResumableRepeatAugSampler', 'ResumableSamplerMixin'
]

"""Training and testing machinery of cast_mm: hooks, resumable samplers and loops."""
from .hooks import (PREEMPTED_EXIT_CODE, AtomicCheckpointHook, HierarchyVisualizationHook,
                    PreemptionCheckpointHook)
from .loops import ResumableEpochBasedTrainLoop, ResumableIterBasedTrainLoop
from .resume import find_resumable_checkpoint, restart_count
from .rng import get_rng_states, preserved_rng_states, set_rng_states
from .sample_seeded_dataset import SampleSeededDataset, seed_sample_rngs
from .samplers import (ResumableDefaultSampler, ResumableInfiniteSampler, ResumableRepeatAugSampler,
                       ResumableSamplerMixin, SampledIndex)

__all__ = [
    'AtomicCheckpointHook', 'HierarchyVisualizationHook', 'PREEMPTED_EXIT_CODE',
    'PreemptionCheckpointHook', 'ResumableEpochBasedTrainLoop', 'ResumableIterBasedTrainLoop',
    'find_resumable_checkpoint', 'restart_count', 'get_rng_states',
    'preserved_rng_states', 'set_rng_states', 'SampleSeededDataset', 'seed_sample_rngs',
    'ResumableDefaultSampler', 'ResumableInfiniteSampler', 'ResumableRepeatAugSampler',
    'ResumableSamplerMixin', 'SampledIndex'
]

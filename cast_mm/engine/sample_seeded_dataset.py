"""Data augmentation that is a function of the sample, not of the worker process that loads it.

A data loader worker draws its random crops, flips and colour changes from the process's global
generators (Python ``random``, numpy, torch), seeded once when the worker starts and advanced by
every sample it loads. Which worker loads which sample, and how far its generators have advanced,
depends on the number of workers and on when the run was last started; a resumed run starts fresh
workers, so its augmentations differ from those of the run that was killed.

:class:`SampleSeededDataset` seeds those generators from (the sampler's seed, the sample's
position in the run's sample order) right before the data pipeline runs on each sample, so every
random draw of the pipeline is a pure function of both: the same with 0, 1 or 8 workers, before
and after a resume, and different on every rank (ranks draw different positions).
"""
import random
from typing import Any, Union

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from ..registry import DATASETS
from .rng import preserved_rng_states
from .samplers import SampledIndex


def seed_sample_rngs(seed: int, position: int) -> None:
    """Seed Python's ``random``, numpy's global generator, torch's CPU generator and OpenCV's
    generator of this thread from a hash of ``(seed, position)``.

    Args:
        seed (int): The run's sampler seed.
        position (int): The sample's global position in the run's sample order.
    """
    if position < 0:
        raise ValueError(f'a sample position is a non-negative int, got {position}')
    words = np.random.SeedSequence([int(seed) % 2**64, int(position)]).generate_state(4)
    random.seed(int(words[0]) << 32 | int(words[1]))
    np.random.seed(words[:2])
    # The CPU generator only: torch.manual_seed would also seed (and initialise) CUDA.
    torch.default_generator.manual_seed(int(words[2]) << 32 | int(words[3]))
    try:
        import cv2
    except ImportError:  # pragma: no cover - OpenCV is a dependency of the data pipelines
        return
    cv2.setRNGSeed(int(words[3]) & 0x7FFFFFFF)


@DATASETS.register_module()
class SampleSeededDataset(Dataset):
    """A dataset whose data pipeline draws its random numbers from a per-sample seed.

    For an index drawn by a cast_mm resumable sampler (a
    :class:`~cast_mm.engine.SampledIndex`), the global random generators are seeded from the
    sampler's seed and the index's position in the run's sample order
    (:func:`seed_sample_rngs`) before the wrapped dataset prepares the sample. In the main
    process (``num_workers=0``) the generators are put back afterwards, so dropout and the rest
    of the training draw the same numbers with and without loader workers. A plain ``int``
    index is passed through unchanged (the worker seeding of MMEngine applies).

    :class:`~cast_mm.engine.ResumableIterBasedTrainLoop` and
    :class:`~cast_mm.engine.ResumableEpochBasedTrainLoop` wrap their train dataset in it (their
    ``seed_per_sample`` argument), so configs keep their ``train_dataloader.dataset`` as is.

    Args:
        dataset (Dataset | dict): The dataset, or its config.
    """

    def __init__(self, dataset: Union[Dataset, dict]):
        if isinstance(dataset, dict):
            dataset = DATASETS.build(dataset)
        self.dataset = dataset

    @property
    def metainfo(self) -> dict:
        """The meta information of the wrapped dataset."""
        return getattr(self.dataset, 'metainfo', {})

    def full_init(self) -> None:
        """Fully initialise the wrapped dataset (where it initialises lazily)."""
        if hasattr(self.dataset, 'full_init'):
            self.dataset.full_init()

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: Union[int, SampledIndex]) -> Any:
        if not isinstance(index, SampledIndex):
            return self.dataset[index]
        if get_worker_info() is not None:
            # A loader worker: nothing else draws from its generators.
            seed_sample_rngs(index.seed, index.position)
            return self.dataset[int(index)]
        with preserved_rng_states():
            seed_sample_rngs(index.seed, index.position)
            return self.dataset[int(index)]

    def __getattr__(self, name: str) -> Any:
        # Attributes the wrapper does not have are those of the wrapped dataset (as for
        # MMEngine's dataset wrappers, e.g. ``CLASSES`` or ``data_list``).
        if name == 'dataset':  # not set yet (unpickling)
            raise AttributeError(name)
        return getattr(self.dataset, name)

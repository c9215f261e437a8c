"""Training samplers that can start at any position of their index stream.

A resumed run asks its sampler to skip the samples that were already trained on: the skipped
positions are dropped from the index stream (a few integers each), so no image is loaded, and the
remaining indices are exactly those an uninterrupted run would have drawn. The sampler's seed and
layout go into the checkpoint, so the order also survives a run started without a fixed seed.

Each index is yielded as a :class:`SampledIndex`: an ``int`` that also carries the sampler's seed
and the sample's position in the run's sample order, from which
:class:`~cast_mm.engine.SampleSeededDataset` seeds the data pipeline of that sample.
"""
import itertools
from typing import Iterator, Optional

from mmengine.dataset import DefaultSampler, InfiniteSampler
from mmpretrain.datasets.samplers import RepeatAugSampler

from ..registry import DATA_SAMPLERS


class SampledIndex(int):
    """A dataset index that also says where in the run's sample order it was drawn.

    It is an ``int`` (datasets that do not look further index with it as usual) with two more
    attributes, kept when it is pickled to a data loader worker.

    Args:
        index (int): The dataset index.
        seed (int): The seed of the sampler that drew it (shared by all ranks).
        position (int): The global sample number: the place of this draw in the sample order of
            the whole run, counted from the start of training over all ranks (rank ``r`` of
            ``w`` draws positions ``r``, ``r + w``, ``r + 2w``, ...; an epoch of a finite sampler
            starts at ``epoch * samples_per_epoch``).
    """

    def __new__(cls, index: int, seed: int, position: int) -> 'SampledIndex':
        obj = super().__new__(cls, index)
        obj.seed = int(seed)
        obj.position = int(position)
        return obj

    def __reduce__(self):
        return SampledIndex, (int(self), self.seed, self.position)


class ResumableSamplerMixin:
    """Skip-by-index and a checkpointable state for a sampler with ``seed`` and ``world_size``."""

    _skip: Optional[int] = None

    def skip_next(self, num_samples: int) -> None:
        """Make the next ``iter(sampler)`` start ``num_samples`` indices (of this rank) later.

        Args:
            num_samples (int): Indices of this rank to drop from the start of the next pass.
        """
        if num_samples < 0:
            raise ValueError(f'cannot skip a negative number of samples ({num_samples})')
        self._skip = int(num_samples)

    def _take_skip(self) -> int:
        skip, self._skip = self._skip or 0, None
        return skip

    def _sampled(self, indices: Iterator[int], first_position: int) -> Iterator[SampledIndex]:
        """``indices`` of this rank as :class:`SampledIndex` es, the first at ``first_position``
        of the run's sample order."""
        seed, rank, world_size = int(self.seed), self.rank, self.world_size
        for count, index in enumerate(indices):
            yield SampledIndex(index, seed, first_position + rank + count * world_size)

    def _epoch_start(self) -> int:
        """The global sample number of the first sample of the current epoch."""
        return int(getattr(self, 'epoch', 0)) * int(self.total_size)

    def state_dict(self) -> dict:
        """The seed and layout that determine the index stream."""
        return dict(type=type(self).__name__, seed=int(self.seed), shuffle=bool(self.shuffle),
                    world_size=int(self.world_size), epoch=int(getattr(self, 'epoch', 0)))

    def load_state_dict(self, state: dict) -> None:
        """Take the seed of a checkpointed sampler (the layout is checked by the loop).

        Args:
            state (dict): The output of :meth:`state_dict`.
        """
        self.seed = int(state['seed'])


@DATA_SAMPLERS.register_module()
class ResumableInfiniteSampler(ResumableSamplerMixin, InfiniteSampler):
    """MMEngine's ``InfiniteSampler`` that can resume its stream at any position.

    Args:
        dataset (Sized): The dataset.
        shuffle (bool): Whether to shuffle the indices of each pass. Defaults to True.
        seed (int, optional): Seed of the shuffle; a seed shared by all ranks when None.
    """

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.indices = self._indices_of_rank()

    def _indices_of_rank(self) -> Iterator[SampledIndex]:
        return self._sampled(super()._indices_of_rank(), 0)

    def __iter__(self) -> Iterator[int]:
        if self._skip is not None:
            # A fresh stream from position 0 of this seed: indices an earlier iterator
            # prefetched do not count.
            self.indices = itertools.islice(self._indices_of_rank(), self._take_skip(), None)
        return self._continue()

    def _continue(self) -> Iterator[int]:
        yield from self.indices


@DATA_SAMPLERS.register_module()
class ResumableDefaultSampler(ResumableSamplerMixin, DefaultSampler):
    """MMEngine's ``DefaultSampler`` that can start an epoch part-way through.

    Args:
        dataset (Sized): The dataset.
        shuffle (bool): Whether to shuffle the indices of each epoch. Defaults to True.
        seed (int, optional): Seed of the shuffle; a seed shared by all ranks when None.
        round_up (bool): Whether to pad the indices to a multiple of the world size.
            Defaults to True.
    """

    def __iter__(self) -> Iterator[SampledIndex]:
        return itertools.islice(self._sampled(super().__iter__(), self._epoch_start()),
                                self._take_skip(), None)


@DATA_SAMPLERS.register_module()
class ResumableRepeatAugSampler(ResumableSamplerMixin, RepeatAugSampler):
    """MMPretrain's ``RepeatAugSampler`` (DeiT's repeated augmentation) that can start an epoch
    part-way through.

    Args:
        dataset (Sized): The dataset.
        shuffle (bool): Whether to shuffle the indices of each epoch. Defaults to True.
        num_repeats (int): How many augmented copies of each sample an epoch holds.
            Defaults to 3.
        seed (int, optional): Seed of the shuffle; a seed shared by all ranks when None.
    """

    def __iter__(self) -> Iterator[SampledIndex]:
        return itertools.islice(self._sampled(super().__iter__(), self._epoch_start()),
                                self._take_skip(), None)

"""Training loops that resume without replaying data and with the RNG states of the killed run.

MMEngine's iteration-based loop resumes at iteration N by drawing N batches through the whole data
pipeline and throwing them away; its epoch-based loop restarts a part-done epoch from its first
batch. These loops instead tell the sampler how many of its indices were already trained on
(:class:`~cast_mm.engine.ResumableSamplerMixin`), so resuming loads no data for the trained part,
and then restore the per-rank random-number states saved by
:class:`~cast_mm.engine.AtomicCheckpointHook`, so dropout, drop path and main-process
augmentations continue exactly as in an uninterrupted run.

Validation inside training leaves the training RNG states untouched (it would otherwise consume
random numbers that a resumed run, which does not repeat the validation, never draws).

Both loops wrap their train dataset in :class:`~cast_mm.engine.SampleSeededDataset`
(``seed_per_sample=True``), so the random augmentations that data loader workers draw are a
function of the sample's position in the run, and a resumed run with workers is exact too.
"""
import logging
from typing import Optional, Union

import torch
from mmengine.dataset import InfiniteSampler
from mmengine.dist import get_rank, get_world_size
from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop
from mmengine.runner.loops import _InfiniteDataloaderIterator
from torch.utils.data import DataLoader

from ..registry import LOOPS
from .hooks.atomic_checkpoint_hook import AtomicCheckpointHook
from .hooks.preemption_checkpoint_hook import PreemptionCheckpointHook
from .rng import preserved_rng_states, set_rng_states
from .samplers import ResumableSamplerMixin


class ResumableLoopMixin:
    """What both resumable loops share: the per-sample seeded train data, sampler positioning
    and RNG restoration."""

    def __init__(self, runner, dataloader: Union[DataLoader, dict], *args,
                 seed_per_sample: bool = True, **kwargs):
        if isinstance(dataloader, dict):
            dataloader = self._build_train_dataloader(runner, dataloader, seed_per_sample)
        self.seed_per_sample = seed_per_sample
        super().__init__(runner, dataloader, *args, **kwargs)

    @staticmethod
    def _build_train_dataloader(runner, cfg: dict, seed_per_sample: bool) -> DataLoader:
        """Build the train data loader as MMEngine's loops do, with the dataset wrapped in
        ``SampleSeededDataset`` and loader workers that leave preemption signals to the main
        process."""
        cfg = dict(cfg)
        if seed_per_sample:
            cfg['dataset'] = dict(type='cast_mm.SampleSeededDataset', dataset=cfg['dataset'])
        # As mmengine.runner.BaseLoop builds it (the only place MMEngine keeps diff_rank_seed).
        diff_rank_seed = runner._randomness_cfg.get('diff_rank_seed', False)
        dataloader = runner.build_dataloader(cfg, seed=runner.seed, diff_rank_seed=diff_rank_seed)
        for hook in runner.hooks:
            if isinstance(hook, PreemptionCheckpointHook):
                hook.shield_loader_workers(dataloader)
        return dataloader

    def _sampler(self):
        sampler = getattr(self.dataloader, 'sampler', None)
        batch_sampler = getattr(self.dataloader, 'batch_sampler', None)
        if not isinstance(sampler, ResumableSamplerMixin) and batch_sampler is not None:
            sampler = getattr(batch_sampler, 'sampler', sampler)
        return sampler

    def _batch_size(self) -> int:
        batch_sampler = getattr(self.dataloader, 'batch_sampler', None)
        size = getattr(batch_sampler, 'batch_size', None) or self.dataloader.batch_size
        if not size:
            raise ValueError('cannot resume by index: the train dataloader has no batch size')
        return int(size)

    def sampler_state(self) -> Optional[dict]:
        """The sampler's checkpointable state (None for samplers that cannot resume)."""
        sampler = self._sampler()
        if not isinstance(sampler, ResumableSamplerMixin):
            return None
        return dict(sampler.state_dict(), batch_size=self._batch_size())

    def _take_resume_state(self) -> dict:
        """The ``resume_state`` the checkpoint hook read from the checkpoint ({} if none)."""
        for hook in self.runner.hooks:
            if isinstance(hook, AtomicCheckpointHook):
                return hook.pop_loaded_resume_state()
        return {}

    def _position_sampler(self, num_samples: int, state: dict) -> bool:
        """Make the sampler skip ``num_samples`` indices of this rank; False if it cannot."""
        sampler = self._sampler()
        if not isinstance(sampler, ResumableSamplerMixin):
            print_log(
                f'The train sampler {type(sampler).__name__} cannot skip by index, so the '
                'trained batches are drawn through the data pipeline again. '
                'cast_mm.ResumableInfiniteSampler / ResumableDefaultSampler skip them for free.',
                logger='current', level=logging.WARNING)
            return False
        saved = state.get('sampler')
        if saved is not None:
            if saved['world_size'] != get_world_size():
                print_log(
                    f'The checkpoint was trained with {saved["world_size"]} processes and this '
                    f'run has {get_world_size()}: the data order after resuming differs from the '
                    'uninterrupted run.', logger='current', level=logging.WARNING)
            if saved['batch_size'] != self._batch_size():
                print_log(
                    f'The checkpoint was trained with batch size {saved["batch_size"]} and this '
                    f'run has {self._batch_size()}: resuming skips {num_samples} samples per '
                    'process, as this run counts them.', logger='current', level=logging.WARNING)
            sampler.load_state_dict(saved)
        sampler.skip_next(num_samples)
        return True

    def _restore_rng(self, state: dict) -> None:
        states = state.get('rng')
        if not states:
            print_log('The resumed checkpoint holds no RNG states (it was not written by '
                      'cast_mm.AtomicCheckpointHook): random layers continue from fresh states.',
                      logger='current', level=logging.WARNING)
            return
        rank = get_rank()
        if len(states) != get_world_size():
            print_log(f'The checkpoint holds RNG states of {len(states)} processes and this run '
                      f'has {get_world_size()}.', logger='current', level=logging.WARNING)
        set_rng_states(states[rank % len(states)])

    def _validate(self) -> None:
        with preserved_rng_states():
            self.runner.val_loop.run()


@LOOPS.register_module()
class ResumableIterBasedTrainLoop(ResumableLoopMixin, IterBasedTrainLoop):
    """MMEngine's ``IterBasedTrainLoop`` that resumes by index instead of replaying batches.

    Args:
        runner (Runner): The runner.
        dataloader (DataLoader or dict): The train dataloader or its config.
        max_iters (int): Total training iterations.
        val_begin (int): The iteration validation starts at. Defaults to 1.
        val_interval (int): Validation interval in iterations. Defaults to 1000.
        dynamic_intervals (list[tuple[int, int]], optional): ``(milestone, interval)`` pairs
            that change the validation interval from the milestone on.
        seed_per_sample (bool): Wrap the train dataset (given as a config) in
            :class:`~cast_mm.engine.SampleSeededDataset`, so data augmentation does not depend
            on the loader workers or on interruptions. Defaults to True.
    """

    def run(self) -> torch.nn.Module:
        """Train from the current iteration (0, or the resumed one) to ``max_iters``."""
        self.runner.call_hook('before_train')
        self.runner.call_hook('before_train_epoch')
        if self._iter > 0:
            self._resume_data()
        while self._iter < self._max_iters and not self.stop_training:
            self.runner.model.train()
            data_batch = next(self.dataloader_iterator)
            self.run_iter(data_batch)
            self._decide_current_val_interval()
            if (self.runner.val_loop is not None and self._iter >= self.val_begin
                    and (self._iter % self.val_interval == 0 or self._iter == self._max_iters)):
                self._validate()
        self.runner.call_hook('after_train_epoch')
        self.runner.call_hook('after_train')
        return self.runner.model

    def _resume_data(self) -> None:
        state = self._take_resume_state()
        samples = self._iter * self._batch_size()
        sampler = self._sampler()
        epoch = 0
        if not isinstance(sampler, InfiniteSampler):
            # A finite sampler restarts every len(dataloader) batches with the next epoch.
            epoch, batches = divmod(self._iter, len(self.dataloader))
            samples = batches * self._batch_size()
            if hasattr(sampler, 'set_epoch'):
                sampler.set_epoch(epoch)
        if self._position_sampler(samples, state):
            print_log(f'Resuming at iteration {self._iter}: the sampler skips {samples} samples '
                      'per process by index, no data is loaded for them.', logger='current')
            self.dataloader_iterator = _InfiniteDataloaderIterator(self.dataloader)
            self.dataloader_iterator._epoch = epoch
        else:
            for _ in range(self._iter):
                next(self.dataloader_iterator)
        self._restore_rng(state)


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(ResumableLoopMixin, EpochBasedTrainLoop):
    """MMEngine's ``EpochBasedTrainLoop`` that resumes part-way through an epoch by index.

    Args:
        runner (Runner): The runner.
        dataloader (DataLoader or dict): The train dataloader or its config.
        max_epochs (int): Total training epochs.
        val_begin (int): The epoch validation starts at. Defaults to 1.
        val_interval (int): Validation interval in epochs. Defaults to 1.
        dynamic_intervals (list[tuple[int, int]], optional): ``(milestone, interval)`` pairs
            that change the validation interval from the milestone on.
        seed_per_sample (bool): Wrap the train dataset (given as a config) in
            :class:`~cast_mm.engine.SampleSeededDataset`, so data augmentation does not depend
            on the loader workers or on interruptions. Defaults to True.
    """

    _resume_state: Optional[dict] = None
    _resume_start = 0

    def run(self) -> torch.nn.Module:
        """Train from the current epoch (0, or the resumed one) to ``max_epochs``."""
        self.runner.call_hook('before_train')
        if self._iter > 0:
            self._resume_state = self._take_resume_state()
            self._resume_start = self._iter - self._epoch * len(self.dataloader)
            if self._resume_start == len(self.dataloader):
                # Saved after the last batch of an epoch, before that epoch ended.
                self._epoch += 1
                self._resume_start = 0
            if not 0 <= self._resume_start < len(self.dataloader):
                raise ValueError(
                    f'cannot resume iteration {self._iter} in epoch {self._epoch}: an epoch has '
                    f'{len(self.dataloader)} batches (did the dataset or batch size change?)')
        while self._epoch < self._max_epochs and not self.stop_training:
            self.run_epoch()
            self._decide_current_val_interval()
            if (self.runner.val_loop is not None and self._epoch >= self.val_begin
                    and (self._epoch % self.val_interval == 0
                         or self._epoch == self._max_epochs)):
                self._validate()
        self.runner.call_hook('after_train')
        return self.runner.model

    def run_epoch(self) -> None:
        """Train one epoch, from the resumed batch when the run resumed inside it."""
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        state, self._resume_state = self._resume_state, None
        start, skipped = 0, False
        # Making an iterator draws a seed from torch's generator, except when persistent
        # workers are reused (every epoch after the first of an uninterrupted run). With
        # per-sample seeding the workers' seeds do not matter, and the iterator is made with
        # the generators put back, so 0 workers and persistent ones draw the same numbers.
        reused = bool(self.seed_per_sample or (self.dataloader.persistent_workers
                                               and self.dataloader.num_workers > 0))
        if state is not None:
            start = self._resume_start
            if start == 0 and not reused:
                # Saved at the end of an epoch, before the next epoch's iterator was made.
                self._restore_rng(state)
            elif self._position_sampler(start * self._batch_size(), state):
                print_log(f'Resuming at batch {start} of epoch {self._epoch + 1}: the sampler '
                          'skips the trained batches by index, no data is loaded for them.',
                          logger='current')
                skipped = True
        if self.seed_per_sample:
            with preserved_rng_states():
                iterator = iter(self.dataloader)
        else:
            iterator = iter(self.dataloader)
        if start > 0:
            if not skipped:
                for _ in range(start):
                    next(iterator)
            # Saved inside an epoch, after its iterator was made.
            self._restore_rng(state)
        elif state is not None and reused:
            # The uninterrupted run reused its workers here and drew nothing.
            self._restore_rng(state)
        for idx, data_batch in enumerate(iterator, start):
            self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1

"""Checkpoint and exit when the cluster announces that it will stop the job."""
import logging
import os
import signal
import sys
import threading
import time
from typing import Callable, Optional, Sequence

import torch
from mmengine.dist import all_reduce, is_distributed
from mmengine.hooks import Hook
from mmengine.logging import print_log
from torch.utils.data import DataLoader

from ...registry import HOOKS
from ...utils import close_distributed
from .atomic_checkpoint_hook import PREEMPTION_FILENAME_TMPL, AtomicCheckpointHook

#: Exit status of a process that stopped on a preemption signal after writing its checkpoint
#: (``EX_TEMPFAIL`` of sysexits.h: a temporary failure, to be retried).
PREEMPTED_EXIT_CODE = 75


def _signal_number(name) -> int:
    if isinstance(name, int):
        return int(signal.Signals(name))
    number = getattr(signal, str(name), None)
    if not str(name).startswith('SIG') or not isinstance(number, signal.Signals):
        raise ValueError(f'PreemptionCheckpointHook: {name!r} is not a signal name such as '
                         "'SIGTERM' or 'SIGUSR1'")
    if number in (signal.SIGKILL, signal.SIGSTOP):
        raise ValueError(f'PreemptionCheckpointHook: {name} cannot be caught')
    return int(number)


def _ignore_all_but_the_parents(signals: Sequence[int], parent: int) -> None:
    """Consume ``signals`` sent to this process; exit on one that ``parent`` sent."""
    while True:
        info = signal.sigwaitinfo(signals)
        if info.si_pid == parent:
            # As torch's own SIGTERM handler of loader workers does for their parent's
            # SIGTERM: exit with status 0. The main process's SIGCHLD check reports a worker
            # that ended by a signal as failed ("DataLoader worker ... is killed by signal"),
            # also when multiprocessing stops its workers at interpreter exit.
            os._exit(0)


class _ShieldedWorkerInit:
    """A data loader ``worker_init_fn`` that keeps ``signals`` from ending the worker, then
    calls ``init_fn``.

    The signals are blocked and consumed by a thread of the worker, except those the main
    process sends itself: Python's multiprocessing ends daemonic workers with ``SIGTERM``
    when the main process exits, and that one still ends the worker, with exit status 0.
    """

    def __init__(self, signals: Sequence[int], init_fn: Optional[Callable]):
        self.signals = tuple(signals)
        self.init_fn = init_fn

    def __call__(self, worker_id: int) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, self.signals)
        threading.Thread(target=_ignore_all_but_the_parents, args=(self.signals, os.getppid()),
                         name='preemption-signal-shield', daemon=True).start()
        if self.init_fn is not None:
            self.init_fn(worker_id)


@HOOKS.register_module()
class PreemptionCheckpointHook(Hook):
    """Write a checkpoint and exit when a preemption signal arrives.

    Clusters announce the end of a job with a signal: Slurm sends ``SIGTERM`` when it preempts
    a job or its time is up, and a chosen signal ahead of the time limit with ``--signal``
    (``tools/slurm_train.sh`` asks for ``SIGUSR1``); ``torchrun`` passes a ``SIGTERM`` it gets on
    to its workers. On one of ``signals`` this hook lets the current iteration finish; at the
    end of the iteration all ranks agree (a one-number all-reduce, any rank's signal counts),
    the checkpoint hook (:class:`~cast_mm.engine.AtomicCheckpointHook`) writes
    ``preempted_iter_<N>.pth`` with the RNG states of every rank and the sampler's state, and
    every process exits with status ``exit_code`` (``SystemExit`` in a single process; a
    distributed process closes its group and ends at once, skipping interpreter teardown).
    ``tools/train.py --resume`` (or an automatic restart, see docs/reliability.md) continues
    from it exactly where the run stopped.

    Data loader workers of the cast_mm resumable loops ignore these signals unless their main
    process sends them (it stops them itself); a worker killed by a cluster's signal would
    otherwise fail the iteration.

    Args:
        signals (Sequence[str]): Names of the signals to react to; empty: the hook does
            nothing. Defaults to ``('SIGTERM', 'SIGUSR1')``.
        exit_code (int): Exit status after the checkpoint. Defaults to 75 (``EX_TEMPFAIL``).
        interval (int): Check for a signal every ``interval`` iterations (the check is an
            all-reduce of one number in distributed runs). Defaults to 1.
    """

    priority = 'LOWEST'  # after the checkpoint hook: no second file when it has just saved

    def __init__(self, signals: Sequence[str] = ('SIGTERM', 'SIGUSR1'),
                 exit_code: int = PREEMPTED_EXIT_CODE, interval: int = 1):
        if isinstance(signals, (str, int)):
            signals = (signals, )
        self.signals = tuple(_signal_number(name) for name in signals)
        if not isinstance(exit_code, int) or not 0 < exit_code < 128:
            raise ValueError(f'PreemptionCheckpointHook: exit_code must be an int in 1..127 '
                             f'(128 and above mean "killed by a signal"), got {exit_code!r}')
        if not isinstance(interval, int) or interval < 1:
            raise ValueError(f'PreemptionCheckpointHook: interval must be a positive int, '
                             f'got {interval!r}')
        self.exit_code = exit_code
        self.interval = interval
        self._received: Optional[int] = None
        self._received_at: Optional[float] = None
        self._previous = {}

    def shield_loader_workers(self, dataloader: DataLoader) -> None:
        """Make the loader's worker processes ignore this hook's signals.

        Args:
            dataloader (DataLoader): A data loader whose workers have not started yet.
        """
        if dataloader.num_workers > 0:
            dataloader.worker_init_fn = _ShieldedWorkerInit(self.signals,
                                                            dataloader.worker_init_fn)

    def _handle(self, signum, frame) -> None:
        if self._received is None:
            self._received, self._received_at = signum, time.monotonic()

    def before_train(self, runner) -> None:
        if not self.signals:
            return
        if threading.current_thread() is not threading.main_thread():
            print_log('PreemptionCheckpointHook: training runs outside the main thread, where '
                      'no signal handler can be installed; preemption signals are not caught.',
                      logger='current', level=logging.WARNING)
            return
        self._checkpoint_hook(runner)  # fail now, not when the signal comes
        for number in self.signals:
            self._previous[number] = signal.signal(number, self._handle)

    def after_train(self, runner) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}

    @staticmethod
    def _checkpoint_hook(runner) -> AtomicCheckpointHook:
        for hook in runner.hooks:
            if isinstance(hook, AtomicCheckpointHook):
                return hook
        raise ValueError('PreemptionCheckpointHook writes its checkpoint through '
                         'cast_mm.AtomicCheckpointHook; set default_hooks.checkpoint to '
                         "dict(type='cast_mm.AtomicCheckpointHook', ...)")

    def _agreed_signal(self) -> int:
        """The signal any rank received (0 for none); collective in distributed runs."""
        flag = torch.tensor([self._received or 0], dtype=torch.int64)
        if is_distributed():
            all_reduce(flag, op='max')
        return int(flag.item())

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not self._previous or not self.every_n_train_iters(runner, self.interval):
            return
        number = self._agreed_signal()
        if not number:
            return
        trained = runner.iter + 1
        if trained >= runner.max_iters:
            return  # the last iteration: training ends (and saves) as usual
        name = signal.Signals(number).name
        hook = self._checkpoint_hook(runner)
        start = time.monotonic()
        if hook.saved_iters == trained:
            path = hook.last_ckpt
        else:
            hook.save_checkpoint_now(runner, PREEMPTION_FILENAME_TMPL.format(trained),
                                     dict(epoch=runner.epoch, iter=trained))
            path = hook.last_ckpt
        waited = '' if self._received_at is None else (
            f', {time.monotonic() - self._received_at:.2f} s after the signal reached this '
            'process')
        print_log(f'{name}: stopped after iteration {trained}, checkpoint {path} '
                  f'(written in {time.monotonic() - start:.2f} s{waited}); exiting with status '
                  f'{self.exit_code}. Resume with tools/train.py --resume.', logger='current',
                  level=logging.WARNING)
        self.after_train(runner)
        if not is_distributed():
            raise SystemExit(self.exit_code)
        close_distributed()
        # Interpreter teardown after a group was closed mid-training can abort a gloo process
        # (SIGABRT instead of the exit status); the checkpoint is complete, so end here.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(self.exit_code)

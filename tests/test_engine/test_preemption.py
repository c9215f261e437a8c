"""Checkpoint on a preemption signal, restart after a dead rank, and the interruption matrix
{SIGKILL, SIGTERM} x {1, 2 processes} x {iteration-, epoch-based} x {0, 2 loader workers}: every
interrupted run resumes to weights bit-equal to an uninterrupted run's, with the same losses.

The default run takes four cells of the matrix (a SIGTERM and a SIGKILL, of one process and of
two processes); ``--interruption-matrix`` runs all sixteen (docs/reliability.md).
"""
import json
import multiprocessing
import os
import os.path as osp
import random
import re
import signal
import subprocess
import sys
import time
from typing import NamedTuple

import pytest
import torch
from helpers import CONFIGS, assert_bit_equal, cpu_training_env, free_port, load_config, run_checked
from helpers.training import make_runner
from mmengine.hooks import Hook

from cast_mm.checkpoints import read_checkpoint
from cast_mm.engine import PREEMPTED_EXIT_CODE, PreemptionCheckpointHook
from cast_mm.engine.hooks.atomic_checkpoint_hook import PREEMPTION_FILENAME_TMPL


class SignalSelfHook(Hook):
    """Sends ``signum`` to this process when iteration ``index`` (0-based) starts."""

    def __init__(self, index, signum=signal.SIGTERM):
        self.index, self.signum = index, signum

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter == self.index:
            os.kill(os.getpid(), self.signum)


@pytest.mark.parametrize('kwargs, message', [
    (dict(signals=('SIGNOPE', )), 'not a signal name'),
    (dict(signals=('SIGKILL', )), 'cannot be caught'),
    (dict(exit_code=137), 'exit_code'),
    (dict(interval=0), 'interval'),
])
def test_hook_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PreemptionCheckpointHook(**kwargs)


@pytest.mark.parametrize('by_epoch, signum', [(False, signal.SIGTERM), (True, signal.SIGUSR1)])
def test_signal_checkpoints_after_the_iteration_and_resume_is_exact(tmp_path, by_epoch, signum):
    total = 3 if by_epoch else 6  # epochs of 4 batches, or iterations
    expected = make_runner(tmp_path / 'full', max_iters=total, by_epoch=by_epoch)
    expected.train()
    split = tmp_path / 'split'
    runner = make_runner(split, max_iters=total, by_epoch=by_epoch, interval=4)
    runner.register_hook(SignalSelfHook(index=4 if by_epoch else 2, signum=signum))
    handler = signal.getsignal(signum)
    with pytest.raises(SystemExit) as stopped:
        runner.train()
    assert stopped.value.code == PREEMPTED_EXIT_CODE
    # The iteration that was running when the signal came (5th / 3rd) finished and was saved.
    trained = 5 if by_epoch else 3
    name = PREEMPTION_FILENAME_TMPL.format(trained)
    assert (split / 'last_checkpoint').read_text() == str(split / name)
    assert read_checkpoint(str(split / name))['meta']['iter'] == trained
    assert signal.getsignal(signum) == handler  # the handler of before training is back
    resumed = make_runner(split, max_iters=total, by_epoch=by_epoch, interval=4, resume=True,
                          load_from=str(split / name))
    resumed.train()
    assert_bit_equal(resumed.model.state_dict(), expected.model.state_dict())
    # A later regular checkpoint supersedes the preemption one only with max_keep_ckpts.
    assert (split / name).exists()


def test_preemption_checkpoint_is_removed_by_a_later_kept_checkpoint(tmp_path):
    runner = make_runner(tmp_path, max_iters=6, interval=4, max_keep_ckpts=2)
    runner.register_hook(SignalSelfHook(index=1))
    with pytest.raises(SystemExit):
        runner.train()
    assert (tmp_path / 'preempted_iter_2.pth').exists()
    make_runner(tmp_path, max_iters=6, interval=4, max_keep_ckpts=2, resume=True,
                load_from=str(tmp_path / 'preempted_iter_2.pth')).train()
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['iter_4.pth', 'iter_6.pth']


def test_hook_needs_the_atomic_checkpoint_hook(tmp_path):
    runner = make_runner(tmp_path, max_iters=2, stock=True)
    runner.register_hook(PreemptionCheckpointHook())
    with pytest.raises(ValueError, match='AtomicCheckpointHook'):
        runner.train()


class WorkerPids(torch.utils.data.Dataset):
    """Each item is the pid of the process that loads it."""

    def __len__(self):
        return 16

    def __getitem__(self, index):
        return os.getpid()


def test_shielded_loader_worker_ignores_other_senders_and_ends_cleanly_when_stopped():
    """A loader worker consumes a cluster's SIGTERM and exits with status 0 on its main
    process's (multiprocessing stops workers so at interpreter exit; a worker that ends by a
    signal makes the main process report "DataLoader worker ... is killed by signal")."""
    loader = torch.utils.data.DataLoader(WorkerPids(), num_workers=1, persistent_workers=True)
    PreemptionCheckpointHook().shield_loader_workers(loader)
    batches = iter(loader)
    pid = int(next(batches))
    worker = next(p for p in multiprocessing.active_children() if p.pid == pid)
    subprocess.run(['kill', '-TERM', str(pid)], check=True)  # another process: the cluster
    assert [int(batch) for batch in batches] == [pid] * (len(loader) - 1)
    assert worker.is_alive()
    worker.terminate()  # SIGTERM from the main process, as at interpreter exit
    worker.join(timeout=30)
    assert worker.exitcode == 0


# --- the matrix -------------------------------------------------------------------------------

#: Iterations of an iteration-based run; epochs of an epoch-based one (8 samples, batch 2:
#: 4 iterations per epoch in one process, 2 per rank in two).
ITERS, EPOCHS = 8, 3
INTERVAL = 2  # regular checkpoints every 2 iterations (a SIGKILL resumes from the last one)
#: Seed of the interruption points (the iteration after which the signal is sent, and the
#: moment inside the next one); each cell draws from ``random.Random(f'{seed}:{cell}')``.
SEED = int(os.environ.get('CAST_MM_INTERRUPTION_SEED', '0'))
_references = {}


class Cell(NamedTuple):
    """One case of the matrix."""
    signum: signal.Signals
    nproc: int
    by_epoch: bool
    workers: int

    @property
    def name(self) -> str:
        return (f'{self.signum.name}-{self.nproc}p-{"epoch" if self.by_epoch else "iter"}-'
                f'{self.workers}w')


#: The cells of the default run: SIGTERM and SIGKILL, one process and two, in pairs that share
#: an uninterrupted reference run. The SIGTERM of one process goes to its loader workers too;
#: the SIGKILL of one of two processes makes torchrun restart the group. What the other cells
#: add (the epoch loop in one process, the iteration loop in two, workers everywhere) the
#: in-process tests of test_resume.py and test_sample_seeding.py show.
DEFAULT_CELLS = ('SIGTERM-1p-iter-2w', 'SIGKILL-1p-iter-0w', 'SIGTERM-2p-epoch-0w',
                 'SIGKILL-2p-epoch-0w')


def matrix(full: bool):
    """Every cell with ``full``, else :data:`DEFAULT_CELLS`."""
    cells = [Cell(signum, nproc, by_epoch, workers)
             for signum in (signal.SIGTERM, signal.SIGKILL) for nproc in (1, 2)
             for by_epoch in (False, True) for workers in (0, 2)]
    return [cell for cell in cells if full or cell.name in DEFAULT_CELLS]


def pytest_generate_tests(metafunc):
    if 'cell' in metafunc.fixturenames:
        cells = matrix(metafunc.config.getoption('interruption_matrix'))
        metafunc.parametrize('cell', cells, ids=[cell.name for cell in cells])


def total_iters(nproc, by_epoch):
    return EPOCHS * 4 // nproc if by_epoch else ITERS


def command(work_dir, nproc, by_epoch, workers, *extra, restarts=0):
    """One process started directly, or ``nproc`` processes under torchrun (gloo), training
    with :mod:`helpers.training`."""
    args = [str(work_dir), str(EPOCHS if by_epoch else ITERS), '--record', '--sleep', '0.05',
            '--workers', str(workers), '--interval', str(INTERVAL),
            *(['--by-epoch'] if by_epoch else []), *extra]
    if nproc == 1:
        return [sys.executable, '-m', 'helpers.training', *args]
    log_dir = f'{work_dir}_torchrun_logs_{time.monotonic_ns()}'
    # The rendezvous of tools/dist_train.sh (with TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1, see
    # run_env).
    return [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', str(nproc),
            '--rdzv-backend', 'c10d', '--rdzv-endpoint', f'127.0.0.1:{free_port()}',
            '--max-restarts', str(restarts), '--log-dir', log_dir, '--redirects', '3',
            '-m', 'helpers.training', *args, '--launcher', 'pytorch']


def run_env():
    """The environment of tools/dist_train.sh: a restarted group gets a store of its own."""
    return cpu_training_env(TORCH_DISABLE_SHARE_RDZV_TCP_STORE='1')


def read_losses(work_dir):
    """Rank 0's losses by process: ``[(pid, {iteration: loss}), ...]`` in start order."""
    runs = {}
    path = osp.join(work_dir, 'losses.jsonl')
    if osp.exists(path):
        with open(path) as f:
            for line in f:
                record = json.loads(line)
                runs.setdefault(record['pid'], {})[record['iter']] = record['loss']
    return list(runs.items())


def reference(tmp_path_factory, nproc, by_epoch):
    """Weights and losses of an uninterrupted run (0 workers: the worker count does not matter,
    test_sample_seeding shows it), once per module."""
    key = (nproc, by_epoch)
    if key not in _references:
        work_dir = tmp_path_factory.mktemp(f'reference_{nproc}_{int(by_epoch)}')
        run_checked(command(work_dir, nproc, by_epoch, 0), run_env(), timeout=300)
        (pid, losses), = read_losses(work_dir)
        assert sorted(losses) == list(range(1, total_iters(nproc, by_epoch) + 1))
        _references[key] = (torch.load(work_dir / 'final_weights.pth', weights_only=True),
                            losses)
    return _references[key]


def wait_for_iteration(work_dir, proc, iteration, timeout=240):
    deadline = time.monotonic() + timeout
    while True:
        runs = read_losses(work_dir)
        if runs and max(runs[-1][1]) >= iteration:
            return runs[-1][0]
        assert proc.poll() is None, f'the training exited ({proc.returncode}) too early'
        assert time.monotonic() < deadline, f'the training did not reach iteration {iteration}'
        time.sleep(0.02)


def report(case, **numbers):
    """Print the case's numbers; append them to $CAST_MM_PREEMPTION_REPORT when set."""
    line = json.dumps(dict(case=case, **numbers))
    print(line)
    if os.environ.get('CAST_MM_PREEMPTION_REPORT'):
        with open(os.environ['CAST_MM_PREEMPTION_REPORT'], 'a') as f:
            f.write(line + '\n')


def test_default_cells_are_cells_of_the_matrix():
    names = [cell.name for cell in matrix(full=True)]
    assert len(names) == len(set(names)) == 16 and set(DEFAULT_CELLS) <= set(names)
    default = matrix(full=False)
    assert {cell.signum for cell in default} == {signal.SIGTERM, signal.SIGKILL}
    assert {(cell.signum, cell.nproc) for cell in default} == {
        (signum, nproc) for signum in (signal.SIGTERM, signal.SIGKILL) for nproc in (1, 2)}


@pytest.mark.slow
def test_interrupted_run_resumes_bit_equal(tmp_path, tmp_path_factory, cell):
    """Start a run, interrupt it at a seeded moment after a seeded iteration, resume it.

    SIGTERM: one process gets it with its loader workers (its process group, as Slurm signals a
    job); of two processes only rank 1 gets it, and both stop after the same iteration. The run
    writes ``preempted_iter_N.pth`` and exits with status 75; ``--resume`` continues.
    SIGKILL: one process is killed and started again with ``--resume``; of two processes
    rank 1 is killed and torchrun (``--max-restarts 1``) restarts the group, which resumes from
    the last complete checkpoint by itself.
    """
    signum, nproc, by_epoch, workers = cell
    case = f'{cell.name} (CAST_MM_INTERRUPTION_SEED={SEED})'
    expected_weights, expected_losses = reference(tmp_path_factory, nproc, by_epoch)
    total = total_iters(nproc, by_epoch)
    work_dir = tmp_path / 'run'
    restarts = 1 if signum == signal.SIGKILL and nproc == 2 else 0
    rng = random.Random(f'{SEED}:{cell.name}')
    at = rng.randint(INTERVAL + 1, total - 3)
    log = tmp_path / 'interrupted_run.log'
    with open(log, 'w') as output:
        proc = subprocess.Popen(command(work_dir, nproc, by_epoch, workers, restarts=restarts),
                                env=run_env(), stdout=output, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        first_pid = wait_for_iteration(work_dir, proc, at)
        time.sleep(rng.uniform(0, 0.05))  # a moment inside the next iteration
        target = int((work_dir / f'pid_rank{nproc - 1}').read_text())
        sent = time.monotonic()
        if nproc == 1:
            os.killpg(proc.pid, signum)  # the process and its loader workers
        else:
            os.kill(target, signum)
        if signum == signal.SIGTERM:
            code = proc.wait(timeout=120)
            stopped = time.monotonic() - sent
            if nproc == 1:
                assert code == PREEMPTED_EXIT_CODE, log.read_text()[-3000:]
            else:  # torchrun reports its workers' exit status
                assert code != 0 and f'exitcode  : {PREEMPTED_EXIT_CODE}' in log.read_text()
            stopped_runs = read_losses(work_dir)
            trained = max(stopped_runs[-1][1])
            checkpoint = (work_dir / 'last_checkpoint').read_text()
            # Nothing trained is lost: the checkpoint holds the last finished iteration.
            assert checkpoint.endswith((PREEMPTION_FILENAME_TMPL.format(trained),
                                        f'iter_{trained}.pth')), (case, checkpoint, trained)
            run_checked(command(work_dir, nproc, by_epoch, workers, '--resume'), run_env(),
                        timeout=300)
            assert min(read_losses(work_dir)[-1][1]) == trained + 1  # nothing trained again
        else:
            if nproc == 1:
                assert proc.wait(timeout=60) == -signal.SIGKILL
                stopped = None
                run_checked(command(work_dir, nproc, by_epoch, workers, '--resume'), run_env(),
                            timeout=300)
            else:
                assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]
                stopped = None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    runs = read_losses(work_dir)
    assert len(runs) == 2 and runs[0][0] == first_pid, (case, [pid for pid, _ in runs])
    (_, before), (_, after) = runs
    resumed_from = min(after) - 1
    assert resumed_from >= INTERVAL and max(after) == total, case
    for losses in (before, after):  # the same losses as the uninterrupted run, to the bit
        assert {i: expected_losses[i] for i in losses} == losses, case
    assert_bit_equal(torch.load(work_dir / 'final_weights.pth', weights_only=True),
                     expected_weights)
    # Every rank's RNG states and the sampler's world size travel in the checkpoints.
    state = read_checkpoint((work_dir / 'last_checkpoint').read_text())['resume_state']
    assert len(state['rng']) == nproc and state['sampler']['world_size'] == nproc
    if nproc == 2:
        assert not torch.equal(state['rng'][0]['torch'], state['rng'][1]['torch'])
    # The hook's own account (one process: its log): checkpoint time, signal to saved.
    saved = re.search(r'written in ([\d.]+) s, ([\d.]+) s after the signal', log.read_text())
    report(case, signal_after_iteration=at, killed_run_trained=max(before),
           resumed_from=resumed_from,
           signal_to_exit_s=None if stopped is None else round(stopped, 2),
           checkpoint_write_s=saved and float(saved.group(1)),
           signal_to_checkpoint_s=saved and float(saved.group(2)))


def test_every_shipped_training_config_has_the_guarantees():
    """Resumable loop and sampler (per-sample seeded augmentation), atomic checkpoints, the
    preemption hook and a process-group timeout of minutes, in every config that trains."""
    import glob
    trained = 0
    for path in sorted(glob.glob(osp.join(CONFIGS, '*.py'))):
        cfg = load_config(path)
        if not cfg.get('train_cfg') or not cfg.get('train_dataloader'):
            continue  # evaluation-only configs
        trained += 1
        name = osp.basename(path)
        assert cfg.train_cfg.type.startswith('cast_mm.Resumable'), name
        assert cfg.train_cfg.get('seed_per_sample', True), name
        assert cfg.train_dataloader.sampler.type.startswith('cast_mm.Resumable'), name
        assert cfg.default_hooks.checkpoint.type == 'cast_mm.AtomicCheckpointHook', name
        assert cfg.default_hooks.preemption.type == 'cast_mm.PreemptionCheckpointHook', name
        assert 60 <= cfg.env_cfg.dist_cfg.timeout <= 900, name
    assert trained >= 20

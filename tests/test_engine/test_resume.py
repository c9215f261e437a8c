"""Resumption: no replay of trained batches, the same batches and RNG states as an
uninterrupted run (bit-equal weights with dropout and drop path on), safe loading."""
import glob
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import TESTS
from resume_helpers import RandomImages, free_port, make_runner

from cast_mm.checkpoints import read_checkpoint
from cast_mm.engine import (ResumableDefaultSampler, ResumableInfiniteSampler, get_rng_states,
                            preserved_rng_states, set_rng_states)

HELPER = osp.join(TESTS, 'resume_helpers.py')


def assert_bit_equal(state, expected):
    assert state.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(state[key], value), f'{key} differs'


def run_checked(command, env, timeout=600, log_dir=None):
    """Run ``command``; when it fails, the assertion shows the tail of its output and of the
    per-process logs ``torch.distributed.run`` wrote under ``log_dir``."""
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        children = ''
        if log_dir is not None:
            for log in sorted(glob.glob(osp.join(str(log_dir), '**', 'stderr.log'),
                                        recursive=True)):
                with open(log, errors='replace') as f:
                    children += f'\n--- {log} (tail)\n{f.read()[-4000:]}'
        raise AssertionError(
            f'{" ".join(map(str, command))} exited with {proc.returncode}\n'
            f'--- stdout (tail)\n{proc.stdout[-2000:]}\n--- stderr (tail)\n'
            f'{proc.stderr[-3000:]}{children}')
    return proc


def cpu_env():
    """The environment of a CPU training subprocess (also on machines with GPUs, which may have
    fewer devices than the test starts processes)."""
    return dict(os.environ, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')


def train(work_dir, **kwargs):
    runner = make_runner(work_dir, **kwargs)
    runner.train()
    return runner


@pytest.mark.parametrize('by_epoch, stop, total', [
    (False, 3, 6),   # iteration-based, resumed at iteration 3
    (True, 1, 3),    # epoch-based, resumed at an epoch end
])
def test_resume_finishes_like_an_uninterrupted_run(tmp_path, by_epoch, stop, total):
    expected = train(tmp_path / 'full', max_iters=total, by_epoch=by_epoch).model.state_dict()
    train(tmp_path / 'split', max_iters=stop, by_epoch=by_epoch)
    resumed = train(tmp_path / 'split', max_iters=total, by_epoch=by_epoch, resume=True)
    assert resumed.iter == (total if not by_epoch else total * 4)
    assert_bit_equal(resumed.model.state_dict(), expected)


def test_epoch_loop_resumes_inside_an_epoch(tmp_path):
    # 4 batches per epoch, checkpoints every 3 iterations: iter_6 is batch 2 of epoch 2.
    expected = train(tmp_path / 'full', max_iters=3, by_epoch=True, interval=3).model.state_dict()
    split = tmp_path / 'split'
    train(split, max_iters=3, by_epoch=True, interval=3)
    for name in ('iter_9.pth', 'iter_12.pth', 'epoch_3.pth'):
        if (split / name).exists():
            (split / name).unlink()
    RandomImages.loaded.clear()
    resumed = make_runner(split, max_iters=3, by_epoch=True, interval=3,
                          load_from=str(split / 'iter_6.pth'), resume=True)
    resumed.train()
    assert resumed.iter == 12
    assert len(RandomImages.loaded) == (12 - 6) * 2  # no trained sample is loaded again
    assert_bit_equal(resumed.model.state_dict(), expected)


def test_resume_loads_no_trained_batch(tmp_path):
    train(tmp_path, max_iters=4)
    RandomImages.loaded.clear()
    train(tmp_path, max_iters=6, resume=True)
    assert len(RandomImages.loaded) == (6 - 4) * 2

    # MMEngine's own loop draws the 4 trained batches through the pipeline again.
    stock = tmp_path / 'stock'
    train(stock, max_iters=4, stock=True)
    RandomImages.loaded.clear()
    train(stock, max_iters=6, resume=True, stock=True)
    assert len(RandomImages.loaded) == 6 * 2


@pytest.mark.slow
@pytest.mark.parametrize('by_epoch, stop, total', [(False, 2, 6), (True, 1, 3)])
def test_resume_with_loader_workers_is_bit_equal(tmp_path, by_epoch, stop, total):
    """2 persistent loader workers drawing augmentations: the resumed run's workers are new
    processes, yet every sample gets the augmentation of the uninterrupted run (it is seeded by
    the sample's position), and the main process does not draw again for reused workers."""
    kwargs = dict(num_workers=2, persistent_workers=True, by_epoch=by_epoch)
    expected = train(tmp_path / 'full', max_iters=total, **kwargs).model.state_dict()
    train(tmp_path / 'split', max_iters=stop, **kwargs)
    resumed = train(tmp_path / 'split', max_iters=total, resume=True, **kwargs)
    assert_bit_equal(resumed.model.state_dict(), expected)


@pytest.mark.slow
def test_checkpoint_carries_rng_and_sampler_state(tmp_path):
    train(tmp_path, max_iters=2)
    checkpoint = read_checkpoint(str(tmp_path / 'iter_2.pth'))  # still safe to load
    state = checkpoint['resume_state']
    assert len(state['rng']) == 1 and set(state['rng'][0]) >= {'torch', 'numpy', 'python'}
    assert state['sampler'] == dict(type='ResumableInfiniteSampler', seed=state['sampler']['seed'],
                                    shuffle=True, world_size=1, epoch=0, batch_size=2)


@pytest.mark.slow
def test_killed_training_resumes_bit_equal(tmp_path):
    """SIGKILL a real training process in iteration 6 (checkpoints every 2 iterations), resume
    it, and compare with an uninterrupted process: the weights are equal to the last bit."""
    env = cpu_env()
    full, split = tmp_path / 'full', tmp_path / 'split'
    run_checked([sys.executable, HELPER, str(full), '8'], env, timeout=300)
    proc = subprocess.Popen([sys.executable, HELPER, str(split), '8', '--hang-before', '5'],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not (split / 'hanging').exists():
            assert proc.poll() is None, 'the training exited before iteration 6'
            assert time.monotonic() < deadline, 'the training did not reach iteration 6'
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        proc.kill()
    assert (split / 'last_checkpoint').read_text().endswith('iter_4.pth')
    run_checked([sys.executable, HELPER, str(split), '8', '--resume'], env, timeout=300)
    expected = torch.load(full / 'final_weights.pth', weights_only=True)
    assert_bit_equal(torch.load(split / 'final_weights.pth', weights_only=True), expected)


@pytest.mark.slow
@pytest.mark.parametrize('by_epoch', [False, True])
def test_two_process_resume_is_bit_equal(tmp_path, by_epoch):
    """DDP on CPU (gloo, 2 processes), each rank with its own RNG states and data shard; the
    resumed run finishes like one that was never stopped.

    Iteration-based: 6 iterations, stopped at 3. Epoch-based: 3 epochs of 2 batches per rank,
    resumed from ``iter_3.pth``, i.e. inside the second epoch (checkpoints every 3 iterations).
    """
    env = cpu_env()

    def run(work_dir, iters, *extra):
        # A port free now, not a fixed one: other tests and runs on the machine may hold any.
        # Each process's stdout and stderr go to its own file under log_dir (-r 3).
        log_dir = tmp_path / 'torchrun_logs' / f'{work_dir.name}_{iters}'
        mode = ['--by-epoch', '--interval', '3'] if by_epoch else []
        run_checked([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
                     '--master_addr', '127.0.0.1', '--master_port', str(free_port()),
                     '--log-dir', str(log_dir), '--redirects', '3', HELPER, str(work_dir),
                     str(iters), '--launcher', 'pytorch', *mode, *extra], env, log_dir=log_dir)

    full, split = tmp_path / 'full', tmp_path / 'split'
    run(full, 3 if by_epoch else 6)
    run(split, 2 if by_epoch else 3)
    if by_epoch:  # resume from the checkpoint inside epoch 2, not the one at its end
        (split / 'iter_4.pth').unlink()
        (split / 'last_checkpoint').write_text(str(split / 'iter_3.pth'))
    checkpoint = read_checkpoint(str(split / 'iter_3.pth'))
    states = checkpoint['resume_state']['rng']
    assert len(states) == 2 and not torch.equal(states[0]['torch'], states[1]['torch'])
    assert checkpoint['resume_state']['sampler']['world_size'] == 2
    run(split, 3 if by_epoch else 6, '--resume')
    assert_bit_equal(torch.load(split / 'final_weights.pth', weights_only=True),
                     torch.load(full / 'final_weights.pth', weights_only=True))


@pytest.mark.parametrize('sampler_type', [ResumableInfiniteSampler, ResumableDefaultSampler])
@pytest.mark.parametrize('world_size', [1, 2])
def test_sampler_skips_by_index(monkeypatch, sampler_type, world_size):
    dataset = list(range(10))
    for rank in range(world_size):
        monkeypatch.setattr('mmengine.dataset.sampler.get_dist_info',
                            lambda rank=rank: (rank, world_size))
        reference = sampler_type(dataset, shuffle=True, seed=3)
        stream = list(zip(range(25), reference))
        sampler = sampler_type(dataset, shuffle=True, seed=3)
        first = iter(sampler)
        next(first)  # an iterator made before resuming (and its prefetch) does not count
        sampler.skip_next(3)
        assert [i for _, i in zip(range(len(stream) - 3), sampler)] == [i for _, i in stream[3:]]


def test_sampler_state_restores_the_seed(monkeypatch):
    dataset = list(range(10))
    first = ResumableInfiniteSampler(dataset, shuffle=True, seed=11)
    other = ResumableInfiniteSampler(dataset, shuffle=True, seed=12)
    other.load_state_dict(first.state_dict())
    assert [i for _, i in zip(range(20), other)] == [i for _, i in zip(range(20), first)]
    with pytest.raises(ValueError, match='negative'):
        other.skip_next(-1)


def test_rng_states_round_trip():
    import random

    import numpy as np
    states = get_rng_states()
    draws = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_states(states)
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(draws[0], again[0]) and (draws[1] == again[1]).all()
    assert draws[2] == again[2]
    set_rng_states(states)
    with preserved_rng_states():
        torch.rand(5), np.random.rand(5), random.random()
    assert torch.equal(torch.rand(3), draws[0]) and (np.random.rand(3) == draws[1]).all()
    with pytest.raises(ValueError, match='lack'):
        set_rng_states({'torch': states['torch']})


def test_load_from_reads_mmengine_checkpoint(tmp_path):
    first = train(tmp_path / 'a', max_iters=2)
    runner = make_runner(tmp_path / 'b', max_iters=2, load_from=str(tmp_path / 'a' / 'iter_2.pth'))
    runner.load_or_resume()
    for key, value in first.model.state_dict().items():
        torch.testing.assert_close(runner.model.state_dict()[key], value, msg=key)

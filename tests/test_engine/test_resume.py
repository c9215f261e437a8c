"""Resumption: no replay of trained batches, the same batches and RNG states as an
uninterrupted run (bit-equal weights with dropout and drop path on), safe loading."""
import pytest
import torch
from helpers import assert_bit_equal
from helpers.training import RandomImages, make_runner, train

from cast_mm.checkpoints import read_checkpoint
from cast_mm.engine import (ResumableDefaultSampler, ResumableInfiniteSampler, get_rng_states,
                            preserved_rng_states, set_rng_states)


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

"""Augmentation as a function of (run seed, sample position): independent of the number of data
loader workers and of interruptions, different on every rank."""
import pickle
import random

import numpy as np
import pytest
import torch
from helpers import assert_bit_equal
from helpers.training import RandomImages, make_runner
from mmengine.dataset import worker_init_fn as mmengine_worker_init_fn

from cast_mm.engine import (ResumableDefaultSampler, ResumableInfiniteSampler, SampledIndex,
                            SampleSeededDataset, seed_sample_rngs)


def samplers_of_ranks(monkeypatch, sampler_type, world_size, **kwargs):
    samplers = []
    for rank in range(world_size):
        monkeypatch.setattr('mmengine.dataset.sampler.get_dist_info',
                            lambda rank=rank: (rank, world_size))
        samplers.append(sampler_type(list(range(10)), seed=3, **kwargs))
    return samplers


def test_sampled_index_is_an_int_that_survives_pickling():
    index = SampledIndex(4, seed=7, position=123)
    copy = pickle.loads(pickle.dumps(index))
    assert copy == 4 and [10, 11, 12, 13, 14][copy] == 14
    assert (copy.seed, copy.position) == (7, 123)


@pytest.mark.parametrize('sampler_type', [ResumableInfiniteSampler, ResumableDefaultSampler])
@pytest.mark.parametrize('world_size', [1, 2])
def test_positions_are_the_global_sample_numbers(monkeypatch, sampler_type, world_size):
    samplers = samplers_of_ranks(monkeypatch, sampler_type, world_size, shuffle=True)
    drawn = [[i for _, i in zip(range(5), sampler)] for sampler in samplers]
    positions = sorted(i.position for stream in drawn for i in stream)
    assert positions == list(range(5 * world_size))  # each position on exactly one rank
    for rank, stream in enumerate(drawn):
        assert [i.position for i in stream] == list(range(rank, 5 * world_size, world_size))
        assert {i.seed for i in stream} == {3}
    # A resumed sampler gives the skipped stream the positions of the uninterrupted one.
    resumed = sampler_type(list(range(10)), seed=3, shuffle=True)  # the last rank
    resumed.skip_next(2)
    assert [(int(i), i.position) for _, i in zip(range(3), resumed)] == [
        (int(i), i.position) for i in drawn[-1][2:]]


def test_epochs_continue_the_positions(monkeypatch):
    sampler, = samplers_of_ranks(monkeypatch, ResumableDefaultSampler, 1, shuffle=False)
    sampler.set_epoch(2)
    assert [i.position for i in sampler] == list(range(20, 30))


def augmentation_of(dataset, index):
    """The augmentation noise of a sample (the image minus the image without augmentation)."""
    return dataset[index]['inputs'] - RandomImages(augment=False)[int(index)]['inputs']


def test_augmentation_is_a_function_of_seed_and_position():
    dataset = SampleSeededDataset(RandomImages())
    first = augmentation_of(dataset, SampledIndex(3, seed=5, position=17))
    torch.rand(10), np.random.rand(10), random.random()  # other draws in between change nothing
    assert torch.equal(augmentation_of(dataset, SampledIndex(3, seed=5, position=17)), first)
    assert not torch.equal(augmentation_of(dataset, SampledIndex(3, seed=5, position=18)), first)
    assert not torch.equal(augmentation_of(dataset, SampledIndex(3, seed=6, position=17)), first)
    with pytest.raises(ValueError, match='non-negative'):
        seed_sample_rngs(5, -1)


def test_main_process_generators_are_left_as_they_were():
    dataset = SampleSeededDataset(RandomImages())
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    dataset[SampledIndex(2, seed=1, position=9)]
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(got[0], expected[0]) and (got[1] == expected[1]).all()
    assert got[2] == expected[2]


def test_plain_indices_and_attributes_pass_through():
    inner = RandomImages(size=5)
    dataset = SampleSeededDataset(inner)
    assert len(dataset) == 5 and dataset.size == 5 and dataset.metainfo == {}
    assert dataset[1]['labels'] == 1


def test_two_ranks_draw_different_augmentations(monkeypatch):
    dataset = SampleSeededDataset(RandomImages(size=10))
    rank0, rank1 = samplers_of_ranks(monkeypatch, ResumableInfiniteSampler, 2, shuffle=True)
    # The same dataset index, as each rank draws it first: different augmentations.
    first0 = next(i for i in rank0 if i == 4)
    first1 = next(i for i in rank1 if i == 4)
    assert first0.position != first1.position
    assert not torch.equal(augmentation_of(dataset, first0), augmentation_of(dataset, first1))


def test_loops_wrap_the_train_dataset_unless_told_not_to(tmp_path):
    runner = make_runner(tmp_path / 'a', num_workers=2)
    loader = runner.train_loop.dataloader
    assert isinstance(loader.dataset, SampleSeededDataset)
    # Loader workers ignore the preemption signals, then get MMEngine's seeding.
    assert loader.worker_init_fn.init_fn.func is mmengine_worker_init_fn
    plain = make_runner(tmp_path / 'b', num_workers=2, seed_per_sample=False)
    assert isinstance(plain.train_loop.dataloader.dataset, RandomImages)
    assert plain.train_loop.dataloader.worker_init_fn.init_fn.func is mmengine_worker_init_fn


@pytest.mark.slow
@pytest.mark.parametrize('by_epoch', [False, True])
def test_loader_workers_do_not_change_the_weights(tmp_path, by_epoch):
    """0, 1 and 2 data loader workers (persistent) give bit-equal weights, augmentation on."""
    weights = []
    for workers in (0, 1, 2):
        runner = make_runner(tmp_path / str(workers), max_iters=2 if by_epoch else 6,
                             by_epoch=by_epoch, num_workers=workers, persistent_workers=True)
        runner.train()
        weights.append(runner.model.state_dict())
    assert_bit_equal(weights[1], weights[0])
    assert_bit_equal(weights[2], weights[0])

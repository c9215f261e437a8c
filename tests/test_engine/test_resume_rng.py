"""Resuming puts back every random-number generator of the process that the checkpoint holds
(``get_rng_states``: torch, numpy and Python random), so data drawn from the global generators
continues as in the uninterrupted run."""
import random

import numpy as np
import torch
from helpers.training import make_runner


def _draws():
    return torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)]


def test_resume_restores_torch_numpy_and_python_generators(tmp_path):
    # Without per-sample seeding the images' augmentation draws from the main process's torch,
    # numpy and Python generators: all three have moved when iteration 2 is checkpointed.
    make_runner(tmp_path, max_iters=2, seed_per_sample=False).train()
    expected = _draws()  # the generators as the checkpoint of iteration 2 holds them
    # The resumed runner seeds every generator afresh, then resumes at iteration 2 of 2:
    # it restores the checkpoint's generators and trains nothing.
    make_runner(tmp_path, max_iters=2, resume=True, seed_per_sample=False).train()
    torch_draws, numpy_draws, python_draws = _draws()
    assert torch.equal(torch_draws, expected[0]), "torch's generator was not restored"
    assert np.array_equal(numpy_draws, expected[1]), "numpy's generator was not restored"
    assert python_draws == expected[2], "Python's generator was not restored"

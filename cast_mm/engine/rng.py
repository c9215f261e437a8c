"""Random-number states of one process, as plain checkpoint-safe objects.

The states hold only tensors, ints, floats, strings, tuples and dicts, so a checkpoint that
carries them still loads with torch's weights-only unpickler.
"""
import contextlib
import random
from typing import Iterator

import numpy as np
import torch


def get_rng_states() -> dict:
    """The torch (CPU and current CUDA device), numpy and Python random states of this process."""
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    states = dict(
        torch=torch.get_rng_state(),
        numpy=dict(kind=kind, keys=torch.from_numpy(keys.astype(np.int64)), pos=int(pos),
                   has_gauss=int(has_gauss), cached_gaussian=float(cached_gaussian)),
        python=random.getstate())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states['cuda'] = torch.cuda.get_rng_state()
    return states


def set_rng_states(states: dict) -> None:
    """Restore the states :func:`get_rng_states` returned.

    Args:
        states (dict): The output of :func:`get_rng_states` (its tensors may have been moved to
            another device by checkpoint loading).
    """
    missing = {'torch', 'numpy', 'python'} - set(states)
    if missing:
        raise ValueError(f'RNG states lack {sorted(missing)}; got keys {sorted(states)}')
    torch.set_rng_state(states['torch'].cpu())
    state = states['numpy']
    np.random.set_state((state['kind'], state['keys'].cpu().numpy().astype(np.uint32),
                         state['pos'], state['has_gauss'], state['cached_gaussian']))
    version, internal, gauss_next = states['python']
    random.setstate((version, tuple(internal), gauss_next))
    if 'cuda' in states and torch.cuda.is_available():
        torch.cuda.set_rng_state(states['cuda'].cpu())


@contextlib.contextmanager
def preserved_rng_states() -> Iterator[None]:
    """Leave every random-number state as it was on entry when the block ends."""
    states = get_rng_states()
    try:
        yield
    finally:
        set_rng_states(states)

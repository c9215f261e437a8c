"""What deterministic training needs from the environment before any CUDA work starts."""
import os
from typing import Mapping

#: cuBLAS workspace setting under which torch's deterministic mode allows CUDA matmuls
#: (``torch.use_deterministic_algorithms`` raises on the first matmul without it).
CUBLAS_DETERMINISTIC_WORKSPACE = ':4096:8'
_CUBLAS_DETERMINISTIC_VALUES = (':4096:8', ':16:8')


def prepare_deterministic_environment(cfg: Mapping) -> bool:
    """Set ``CUBLAS_WORKSPACE_CONFIG`` when the config asks for deterministic training.

    MMEngine turns ``randomness=dict(deterministic=True)`` into
    ``torch.use_deterministic_algorithms(True)`` but leaves the environment alone, and torch
    then refuses cuBLAS matmuls unless ``CUBLAS_WORKSPACE_CONFIG`` is ``:4096:8`` or
    ``:16:8``. Call this before the runner is built (``tools/train.py`` and ``tools/test.py``
    do); a value the user set that torch accepts is kept.

    Args:
        cfg: the config (``cfg.randomness.deterministic`` is read).

    Returns:
        bool: whether the config asks for deterministic training.
    """
    randomness = cfg.get('randomness') or {}
    if not randomness.get('deterministic', False):
        return False
    if os.environ.get('CUBLAS_WORKSPACE_CONFIG') not in _CUBLAS_DETERMINISTIC_VALUES:
        os.environ['CUBLAS_WORKSPACE_CONFIG'] = CUBLAS_DETERMINISTIC_WORKSPACE
    return True

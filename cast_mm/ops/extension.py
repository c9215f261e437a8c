"""The compiled CPU operators of cast_mm: ``cast_mm/ops/csrc``, built by ``setup.py``.

``pip install -e .`` (``tools/install.sh``) compiles the C++ sources into the module
``cast_mm.ops._C`` with ``torch.utils.cpp_extension``, as mmcv and detectron2 build theirs
(``CAST_MM_WITH_OPS=0`` skips it; ``python setup.py build_ext --inplace`` builds it in a
checkout). Importing that module registers torch operators; this module registers their fake
(meta) implementations, so ``torch.compile`` and ``torch.export`` trace them:
``torch.ops.cast_mm.fps_cpu(points, num_samples, start_idx, slices)``, DGL's farthest point
sampling, bitwise, on torch's CPU thread pool (:mod:`cast_mm.ops.farthest_point_sampling`).

Without the extension DGL's kernel runs instead, and :func:`status` says why.
"""
import functools

import torch


@functools.lru_cache(maxsize=None)
def _load() -> str:
    try:
        from . import _C  # noqa: F401  (registers torch.ops.cast_mm.*_cpu)
    except ImportError as err:
        return f'not built ({err}; build it with `pip install -e .`)'

    @torch.library.register_fake('cast_mm::fps_cpu')
    def _fps_cpu_fake(points, num_samples, start_idx, slices):
        return points.new_empty((points.shape[0], num_samples), dtype=torch.long)

    return 'built'


def available() -> bool:
    """Whether the compiled operators are registered (the extension is built and loads)."""
    return _load() == 'built'


def status() -> str:
    """``'built'``, or why the compiled operators are unavailable."""
    return _load()

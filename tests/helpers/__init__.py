"""What tests share: paths, the tiny CAST, synthetic images, loading a tool, subprocesses.

The one helpers package of the test suite (tests import helpers from here, never from another
test module or from ``conftest.py``, which holds fixtures and hooks only). Its submodules carry
the heavier helpers, each one concern: :mod:`helpers.seg` (segmentation configs shrunk for CPU,
tiny datasets in mmseg layouts), :mod:`helpers.cls` (the same for the mmpretrain configs),
:mod:`helpers.training` (a tiny resumable training, also run as a script by the resume and
preemption tests) and :mod:`helpers.hub` (a loopback stand-in for the weights' host, checkpoints
in the official layouts). ``pytest.ini`` puts ``tests/`` on the path; a subprocess gets the same
path from :func:`subprocess_env`.
"""
import copy
import functools
import glob
import importlib.util
import os
import os.path as osp
import socket
import subprocess
import sys
import types
from typing import Dict, List, Optional

import numpy as np
import torch

#: The tests folder and the repository.
TESTS = osp.dirname(osp.dirname(osp.abspath(__file__)))
REPO = osp.dirname(TESTS)
#: The shipped configs.
CONFIGS = osp.join(REPO, 'configs', 'cast')
#: The shared folder sits beside the repository (CI clones main with shared/ next to it).
SHARED = osp.join(osp.dirname(REPO), 'shared')
PUBLIC_FIXTURE = osp.join(SHARED, 'fixtures', 'official_parity_public.pt')
#: The folders of ``pytest.ini``'s ``pythonpath`` (this package; the analysis tools' library).
PYTHONPATH = (TESTS, osp.join(REPO, 'tools', 'analysis'))

#: A CAST small enough for CPU tests.
TINY_ARCH = dict(embed_dims=48, depths=(1, 1, 1, 1), num_heads=4)
TINY_CLUSTERS = (16, 8, 4, 2)


@functools.lru_cache(maxsize=None)
def _read_config(path: str, import_custom_modules: bool):
    from mmengine.config import Config
    return Config.fromfile(path, import_custom_modules=import_custom_modules)


def load_config(name: str, import_custom_modules: bool = True):
    """``Config.fromfile`` of a shipped config (``name``: a file of configs/cast) or of a path,
    read once per session (reading one takes about 0.1 s, and tests read each many times); each
    call returns a copy of its own, which the caller may change."""
    path = osp.abspath(name if osp.sep in name else osp.join(CONFIGS, name))
    return copy.deepcopy(_read_config(path, import_custom_modules))


def tiny_cast(mode: str = 'classification', init: bool = True, **kwargs):
    """A tiny CAST (:data:`TINY_ARCH`, 64 x 64 positions), built after seeding torch with 0;
    with ``init`` its weights are initialised and it is in eval mode. ``kwargs`` go to CAST."""
    from cast_mm.models import CAST
    torch.manual_seed(0)
    model = CAST(arch=TINY_ARCH, mode=mode, num_clusters=TINY_CLUSTERS, img_size=64, **kwargs)
    if not init:
        return model
    model.init_weights()
    return model.eval()


def write_tiny_backbone(root) -> tuple:
    """A bare tiny CAST config and a checkpoint of random weights (``backbone.*`` keys), as
    ``tools/visualize_hierarchy.py IMAGE CONFIG CHECKPOINT`` takes them: (config, checkpoint,
    the model holding those weights)."""
    config = root / 'tiny.py'
    config.write_text(f"model = dict(type='cast_mm.CAST', arch={TINY_ARCH!r}, "
                      f"num_clusters={TINY_CLUSTERS!r}, img_size=64, pos_embed='sincos', "
                      "mask_padding=True)\n")
    model = tiny_cast(init=False, pos_embed='sincos', mask_padding=True)
    checkpoint = root / 'tiny.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in model.state_dict().items()}},
               checkpoint)
    return config, checkpoint, model


def photo(height: int = 64, width: int = 64) -> np.ndarray:
    """A BGR uint8 photograph (scikit-image's astronaut) resized to ``height x width``."""
    import cv2
    from skimage import data
    return cv2.resize(data.astronaut()[..., ::-1], (width, height))


def blurred_noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth random uint8 image ``height x width x 3`` (Gaussian-blurred noise)."""
    import cv2
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 255, (height, width, 3), dtype=np.uint8), (5, 5), 2)


def grid_superpixels(batch: int, height: int, width: int, cell: int = 8) -> torch.Tensor:
    """Square-cell superpixel maps ``(B, H, W)``: ids row-major over ``cell x cell`` blocks."""
    rows = torch.arange(height).div(cell, rounding_mode='floor')
    cols = torch.arange(width).div(cell, rounding_mode='floor')
    ids = rows[:, None] * ((width + cell - 1) // cell) + cols[None, :]
    return ids.expand(batch, height, width).clone()


def assert_bit_equal(state: Dict[str, torch.Tensor], expected: Dict[str, torch.Tensor]) -> None:
    """Two state dicts hold the same tensors to the last bit."""
    assert state.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(state[key], value), f'{key} differs'


def run_test(cfg):
    """``Runner.from_cfg(cfg).test()`` without leaving its default scope behind for later
    tests; the metrics."""
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        return Runner.from_cfg(cfg).test()


def load_tool(path: str) -> types.ModuleType:
    """``tools/<path>.py`` (``path`` like ``'hierarchy_explorer'`` or ``'analysis/benchmark'``)
    imported as a module named after its file, not run as ``__main__``, so that a test calls its
    functions and ``main(argv)`` in-process: the one way tests load a tool. The analysis tools
    import their library, ``cast_analysis``, from their own folder, which ``pytest.ini`` puts on
    the path as running the script does."""
    file = osp.join(REPO, 'tools', f'{path}.py')
    name = osp.splitext(osp.basename(file))[0]
    module = sys.modules.get(name)
    if module is not None and getattr(module, '__file__', None) == file:
        return module
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def subprocess_env(**overrides: str) -> Dict[str, str]:
    """The environment of a Python subprocess of a test: it imports what the test process
    imports (this repository's ``cast_mm`` first, then ``helpers`` and ``cast_analysis`` from
    the folders of ``pytest.ini``), so a script runs ``from helpers import ...`` or
    ``python -m helpers.training`` without touching ``sys.path``; ``overrides`` are added."""
    inherited = [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]
    path = os.pathsep.join(dict.fromkeys([REPO, *PYTHONPATH, *inherited]))
    return dict(os.environ, PYTHONPATH=path, **overrides)


def cpu_training_env(**overrides: str) -> Dict[str, str]:
    """:func:`subprocess_env` of a CPU training subprocess: one thread per process (tests start
    several on a small machine), no GPU (also on machines with fewer GPUs than processes)."""
    return subprocess_env(OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='', **overrides)


def run_checked(command: List[str], env: Dict[str, str], timeout: float = 600,
                log_dir: Optional[str] = None, cwd: Optional[str] = None):
    """Run ``command``; when it fails, the assertion shows the tail of its output and of the
    per-process logs ``torch.distributed.run`` wrote under ``log_dir``."""
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=cwd)
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


def free_port() -> int:
    """A TCP port of localhost that no process listens on now (for ``--master_port``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]

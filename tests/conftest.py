"""Fixtures and hooks of the whole suite (helpers live in the ``helpers`` package)."""
import os.path as osp

import pytest
import torch
from helpers import PUBLIC_FIXTURE


def pytest_addoption(parser):
    parser.addoption(
        '--interruption-matrix', action='store_true',
        help='run every case of the interruption matrix (tests/test_engine/test_preemption.py: '
        '{SIGTERM, SIGKILL} x {1, 2 processes} x {iteration-, epoch-based} x {0, 2 loader '
        'workers}); without it a few cases run (docs/reliability.md)')


@pytest.fixture(scope='session')
def public_fixture():
    if not osp.exists(PUBLIC_FIXTURE):
        pytest.skip(f'official parity fixture not found at {PUBLIC_FIXTURE} (the shared folder '
                    'beside the repository is absent, as in a user clone)')
    return torch.load(PUBLIC_FIXTURE, map_location='cpu', weights_only=False)


@pytest.fixture(scope='session', autouse=True)
def cast_mm_environment():
    """Tests run as cast_mm's tools and configs do: with :func:`cast_mm.setup_env` applied
    (that ``import cast_mm`` alone applies nothing is checked in fresh processes,
    ``test_compat.py``)."""
    import cast_mm
    cast_mm.setup_env()


@pytest.fixture(scope='session', autouse=True)
def one_torch_thread():
    """Tests run tiny models, whose operators are too small to gain from intra-op threads; on a
    busy machine a second thread mostly waits for a core, and every operator waits for it (a
    20-iteration tiny training took 145 s with 2 threads and 15 s with 1 on a 2-core machine
    at load 7). Tests that are about threads set their own count and restore this one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='session')
def tiny_seg_model_cfg(tmp_path_factory):
    """The model config of ``cast-s_ade20k.py`` shrunk to a tiny CAST (a fresh copy per use is
    the caller's: ``cfg.copy()``)."""
    from helpers import load_config
    from helpers.seg import shrink_seg_config
    cfg = load_config('cast-s_ade20k.py')
    return shrink_seg_config(cfg, str(tmp_path_factory.mktemp('work'))).model


@pytest.fixture(autouse=True)
def restore_default_scope():
    """Runners set MMEngine's process-wide default scope; no test leaks its own to the next."""
    from mmengine.registry import DefaultScope
    saved = dict(DefaultScope._instance_dict)
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(saved)


@pytest.fixture
def mmpretrain_scope():
    """Build in the mmpretrain scope, as runners of mmpretrain configs do (an mmseg runner
    earlier in the process leaves its scope as the default one)."""
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` are skipped, with the reason, where no CUDA device is visible."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason='needs a CUDA device (marked gpu)')
    for item in items:
        if item.get_closest_marker('gpu') is not None:
            item.add_marker(skip)

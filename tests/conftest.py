import importlib.util
import os.path as osp
import sys
import types

import numpy as np
import pytest
import torch

#: The tests folder (shared helpers and this conftest live here; tests sit in sub-folders that
#: mirror the package, configs and repository-level tests at the top).
TESTS = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(TESTS)
#: The shared folder sits beside the repository (CI clones main with shared/ next to it).
SHARED = osp.join(osp.dirname(REPO), 'shared')
PUBLIC_FIXTURE = osp.join(SHARED, 'fixtures', 'official_parity_public.pt')

#: A CAST small enough for CPU tests.
TINY_ARCH = dict(embed_dims=48, depths=(1, 1, 1, 1), num_heads=4)
TINY_CLUSTERS = (16, 8, 4, 2)


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


def load_tool(path: str) -> types.ModuleType:
    """``tools/<path>.py`` (``path`` like ``'hierarchy_explorer'`` or ``'analysis/benchmark'``)
    imported as a module named after its file, not run as ``__main__``, so that a test calls its
    functions and ``main(argv)`` in-process. The analysis tools import their library,
    ``cast_analysis``, from their own folder, which ``pytest.ini`` puts on the path as running
    the script does."""
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


@pytest.fixture(scope='session')
def tiny_seg_model_cfg(tmp_path_factory):
    """The model config of ``cast-s_ade20k.py`` shrunk to a tiny CAST (a fresh copy per use is
    the caller's: ``cfg.copy()``)."""
    from mmengine.config import Config
    from seg_helpers import CONFIGS, shrink_seg_config
    cfg = Config.fromfile(osp.join(CONFIGS, 'cast-s_ade20k.py'))
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

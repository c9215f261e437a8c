import os.path as osp
import runpy

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


def grid_superpixels(batch: int, height: int, width: int, cell: int = 8) -> torch.Tensor:
    """Square-cell superpixel maps ``(B, H, W)``: ids row-major over ``cell x cell`` blocks."""
    rows = torch.arange(height).div(cell, rounding_mode='floor')
    cols = torch.arange(width).div(cell, rounding_mode='floor')
    ids = rows[:, None] * ((width + cell - 1) // cell) + cols[None, :]
    return ids.expand(batch, height, width).clone()


def analysis_tool(name: str) -> dict:
    """The globals of ``tools/analysis/<name>.py`` run as a module (not as ``__main__``), so a
    test can call its ``main(argv)``; the tool imports its building blocks from
    :mod:`cast_mm.analysis`."""
    return runpy.run_path(osp.join(REPO, 'tools', 'analysis', f'{name}.py'), run_name=name)


def write_tiny_backbone(root) -> tuple:
    """A bare tiny CAST config and a checkpoint of random weights (``backbone.*`` keys), as
    ``tools/visualize_hierarchy.py IMAGE CONFIG CHECKPOINT`` takes them: (config, checkpoint,
    the model holding those weights)."""
    from cast_mm.models import CAST
    config = root / 'tiny.py'
    config.write_text(f"model = dict(type='cast_mm.CAST', arch={TINY_ARCH!r}, "
                      f"num_clusters={TINY_CLUSTERS!r}, img_size=64, pos_embed='sincos', "
                      "mask_padding=True)\n")
    torch.manual_seed(0)
    model = CAST(arch=TINY_ARCH, num_clusters=TINY_CLUSTERS, img_size=64, pos_embed='sincos',
                 mask_padding=True)
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

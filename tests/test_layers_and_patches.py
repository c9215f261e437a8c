"""House rules: imports point one way, the MMEngine workarounds are still needed, one set of
level fusion only where a head reads it."""
import ast
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from conftest import REPO, TINY_ARCH, TINY_CLUSTERS, grid_superpixels
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmseg.registry import MODELS
from seg_helpers import CONFIGS, shrink_seg_config

import cast_mm
from cast_mm.models import CAST

PACKAGE = osp.dirname(cast_mm.__file__)
#: What each layer may not import: ``ops`` (plain torch) -> ``models`` -> ``datasets`` /
#: ``evaluation`` -> ``apis`` -> tools.
FORBIDDEN = {
    'ops': ('cast_mm.models', 'cast_mm.datasets', 'cast_mm.evaluation', 'cast_mm.apis',
            'cast_mm.visualization', 'cast_mm.engine', 'mmengine', 'mmcv', 'mmseg',
            'mmpretrain'),
    'models': ('cast_mm.datasets', 'cast_mm.evaluation', 'cast_mm.apis',
               'cast_mm.visualization', 'cast_mm.engine'),
    'datasets': ('cast_mm.apis', 'cast_mm.visualization', 'cast_mm.engine'),
    'evaluation': ('cast_mm.apis', 'cast_mm.visualization', 'cast_mm.engine'),
}


def _imports(path: str):
    """Absolute names of the modules a file imports (relative imports resolved)."""
    package = osp.relpath(osp.dirname(path), osp.dirname(PACKAGE)).replace(os.sep, '.')
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit('.', node.level - 1)[0] if node.level else ''
            yield '.'.join(part for part in (base, node.module) if part)


@pytest.mark.parametrize('layer', sorted(FORBIDDEN))
def test_layers_import_downwards_only(layer):
    wrong = []
    for root, _, files in os.walk(osp.join(PACKAGE, layer)):
        for name in files:
            if name.endswith('.py'):
                path = osp.join(root, name)
                wrong += [f'{osp.relpath(path, REPO)} imports {module}'
                          for module in _imports(path)
                          if module.startswith(FORBIDDEN[layer])]
    assert not wrong, wrong


def test_the_editable_install_workaround_is_still_needed(tmp_path):
    """A PEP 660 editable install: the distribution's metadata in site-packages, the package
    elsewhere. MMEngine 0.10.7 then answers with a folder that holds no package."""
    site = tmp_path / 'site-packages'
    info = site / 'cast_mm-0.1.0.dist-info'
    info.mkdir(parents=True)
    (info / 'METADATA').write_text('Metadata-Version: 2.1\nName: cast_mm\nVersion: 0.1.0\n')
    (info / 'top_level.txt').write_text('cast_mm\n')
    code = ('import os.path as osp; from mmengine.utils import get_installed_path; '
            "print(osp.isfile(osp.join(get_installed_path('cast_mm'), '__init__.py')))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), REPO]))
    found = subprocess.run([sys.executable, '-c', code], env=env, cwd=str(tmp_path),
                           capture_output=True, text=True, timeout=300, check=True).stdout
    assert found.strip() == 'False', (
        'MMEngine finds an editable install by itself now: remove '
        'cast_mm/utils/editable_install.py')
    from cast_mm.utils import editable_install
    assert editable_install.installed_path('cast_mm') == PACKAGE


def test_the_surrounding_scope_lookup_is_still_needed(tmp_path):
    config = tmp_path / 'mine.py'
    config.write_text("_base_ = ['cast_mm::cast/cast-s_ade20k.py']\n")
    cfg = Config.fromfile(str(config))
    # MMEngine builds inherited configs in the cast_mm scope, where mmseg's names are unknown.
    assert cfg.train_dataloader.dataset.get('_scope_') == 'cast_mm', (
        'MMEngine no longer tags configs inherited with cast_mm:: by their scope: the '
        'surrounding-scope lookup of cast_mm.registry.CastRegistry can go')
    with DefaultScope.overwrite_default_scope('mmseg'):
        from cast_mm.registry import TRANSFORMS
        with DefaultScope.overwrite_default_scope('cast_mm'):
            assert TRANSFORMS.get('LoadAnnotations').__module__.startswith('mmseg')


@pytest.mark.slow
def test_cast_mm_types_need_no_custom_imports():
    assert 'custom_imports' not in Config.fromfile(
        osp.join(REPO, 'configs', '_base_', 'default_runtime.py'))
    code = ('import sys; from mmengine.registry import init_default_scope; '
            "init_default_scope('mmseg'); from mmseg.registry import MODELS; "
            "assert 'cast_mm' not in sys.modules; "
            "assert MODELS.get('cast_mm.CAST').__name__ == 'CAST'")
    subprocess.run([sys.executable, '-c', code], check=True, cwd=str(REPO), timeout=300)


@pytest.fixture(scope='module')
def segformer_cfg(tmp_path_factory):
    cfg = Config.fromfile(osp.join(CONFIGS, 'cast-s_segformer-head_ade20k.py'))
    return shrink_seg_config(cfg, str(tmp_path_factory.mktemp('work')))


def test_level_fusion_is_built_only_for_heads_that_read_it(segformer_cfg, tmp_path):
    assert segformer_cfg.find_unused_parameters is False
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(segformer_cfg.model)
        mask_cfg = shrink_seg_config(Config.fromfile(osp.join(CONFIGS, 'cast-s_ade20k.py')),
                                     str(tmp_path))
        with_fusion = MODELS.build(mask_cfg.model)
    assert not model.backbone.fuse_levels and not hasattr(model.backbone, 'fusion')
    assert with_fusion.backbone.fuse_levels and hasattr(with_fusion.backbone, 'fusion')
    model.init_weights()
    model.train()
    x = torch.randn(2, 3, 64, 64)
    superpixels = grid_superpixels(2, 64, 64)
    feats = model.extract_feat(x, superpixels)
    assert feats.fused_tokens is None
    model.decode_head.forward(feats).square().mean().backward()
    # What DDP with find_unused_parameters=False needs: every trained parameter has a gradient.
    missing = [name for name, p in model.named_parameters()
               if p.requires_grad and p.grad is None]
    assert not missing, missing


def test_a_backbone_without_fusion_says_what_forward_cannot_return():
    backbone = CAST(arch=TINY_ARCH, mode='segmentation', num_clusters=TINY_CLUSTERS,
                    img_size=64, pool_num_heads=4, fuse_levels=False)
    assert backbone.freeze_last_pool
    with pytest.raises(ValueError, match='forward_features'):
        backbone(torch.randn(1, 3, 32, 32), grid_superpixels(1, 32, 32))
    with pytest.raises(ValueError, match="needs mode='segmentation'"):
        CAST(arch=TINY_ARCH, num_clusters=TINY_CLUSTERS, pool_num_heads=4, fuse_levels=True)

"""House rules: cast_mm types need no custom_imports, level fusion only where a head reads it.
(Layering: test_package_layers.py; the upstream workarounds: test_compat.py; the fast / literal
switches: test_models/test_execution_profile.py.)"""
import os.path as osp
import subprocess
import sys

import pytest
import torch
from helpers import REPO, TINY_ARCH, TINY_CLUSTERS, grid_superpixels
from helpers.seg import CONFIGS, shrink_seg_config
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmseg.registry import MODELS

from cast_mm.models import CAST


@pytest.mark.slow
def test_cast_mm_types_need_no_custom_imports():
    # The configs' custom_imports only applies cast_mm.setup_env (test_compat.py).
    runtime = Config.fromfile(osp.join(REPO, 'configs', '_base_', 'default_runtime.py'),
                              import_custom_modules=False)
    assert runtime.custom_imports.imports == ['cast_mm.env']
    code = ('import sys; from mmengine.registry import init_default_scope; '
            "init_default_scope('mmseg'); from mmseg.registry import MODELS; "
            "assert 'cast_mm' not in sys.modules; "
            "assert MODELS.get('cast_mm.CAST').__name__ == 'CAST'")
    subprocess.run([sys.executable, '-c', code], check=True, cwd=str(REPO), timeout=300)


@pytest.fixture(scope='module')
def segformer_cfg(tmp_path_factory):
    cfg = Config.fromfile(osp.join(CONFIGS, 'cast-s_hierarchy-mlp-head_ade20k.py'))
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

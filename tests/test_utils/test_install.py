"""The installed stack and the cast_mm registry scope."""
import cv2
import pytest


def test_opencv_is_the_contrib_build_with_seeds():
    assert hasattr(cv2, 'ximgproc'), 'cv2.ximgproc missing: run bash tools/install.sh'
    assert hasattr(cv2.ximgproc, 'createSuperpixelSEEDS')


@pytest.mark.parametrize('registry_module', ['mmseg.registry', 'mmpretrain.registry',
                                             'mmengine.registry'])
def test_cast_mm_types_resolve_from_other_scopes(registry_module):
    import importlib
    models = importlib.import_module(registry_module).MODELS
    from cast_mm.models import CAST
    assert models.get('cast_mm.CAST') is CAST


def test_cast_registries_are_children_of_mmengine_roots():
    from mmengine.registry import MODELS, TRANSFORMS

    import cast_mm.registry as reg
    assert reg.MODELS.parent is MODELS and reg.TRANSFORMS.parent is TRANSFORMS
    assert reg.MODELS.scope == 'cast_mm'
    assert TRANSFORMS.get('cast_mm.SEEDSSuperpixels').__name__ == 'SEEDSSuperpixels'


def test_mmcv_ops_and_dgl_import():
    import dgl.geometry  # noqa: F401
    import mmcv.ops  # noqa: F401

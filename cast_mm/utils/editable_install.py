"""Let MMEngine find cast_mm's configs in an editable install (works around mmengine 0.10.7).

``_base_ = 'cast_mm::cast/...'`` makes MMEngine look for the configs under
``mmengine.utils.get_installed_path('cast_mm')``, which joins the distribution's location with
the package name. For a PEP 660 editable install (``pip install -e .``, as
``tools/install.sh`` does) that location is site-packages, which holds no ``cast_mm`` folder,
so every inherited config fails with FileNotFoundError (mmengine 0.10.7,
``mmengine/utils/package_utils.py``). MMEngine offers no hook for it; :func:`apply` replaces
the function its config module calls by one that answers with this package's folder for
``cast_mm`` when the upstream answer holds no package, and defers to upstream otherwise.
"""
import os.path as osp

import mmengine.config.config as mmengine_config_module
from mmengine.utils import get_installed_path as upstream_get_installed_path

#: The folder of the cast_mm package (where ``.mim/configs`` is exposed).
PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))


def installed_path(package: str) -> str:
    """``mmengine.utils.get_installed_path`` that also finds an editable install of cast_mm."""
    path = upstream_get_installed_path(package)
    if package == 'cast_mm' and not osp.isfile(osp.join(path, '__init__.py')):
        return PACKAGE_DIR
    return path


def apply() -> None:
    """Make MMEngine's config loading use :func:`installed_path` (idempotent)."""
    mmengine_config_module.get_installed_path = installed_path

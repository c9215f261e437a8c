"""Config loading shared by ``tools/train.py`` and ``tools/test.py`` (mmseg's CLI semantics)."""
import os.path as osp
from typing import Optional

from mmengine.config import Config

from .determinism import prepare_deterministic_environment


def load_tool_config(config: str,
                     launcher: str = 'none',
                     cfg_options: Optional[dict] = None,
                     work_dir: Optional[str] = None) -> Config:
    """Read ``config`` and apply the command line's launcher, overrides and work directory.

    Args:
        config (str): config file path.
        launcher (str): ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.
        cfg_options (dict, optional): ``--cfg-options`` overrides, merged into the config.
        work_dir (str, optional): ``--work-dir``; without it the config's ``work_dir`` is kept,
            or ``./work_dirs/<config name>`` is used.

    Returns:
        Config: the config, ready for ``Runner.from_cfg``; with
        ``randomness=dict(deterministic=True)`` the environment is prepared for it
        (:func:`~cast_mm.utils.determinism.prepare_deterministic_environment`).
    """
    cfg = Config.fromfile(config)
    cfg.launcher = launcher
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])
    prepare_deterministic_environment(cfg)
    return cfg

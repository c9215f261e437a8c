"""Config loading shared by the tools and :func:`cast_mm.apis.init_model`."""
import os.path as osp
from typing import Optional, Union

from mmengine.config import Config

from .determinism import prepare_deterministic_environment

#: What to do when MMEngine does not find a config that ``cast_mm::`` names.
MISSING_CAST_MM_CONFIG_HINT = (
    "configs inherited as 'cast_mm::...' are read from cast_mm/.mim/configs, which installing "
    'cast_mm creates (pip install -e . or pip install .; in a source checkout used through '
    'PYTHONPATH: python setup.py build_ext --inplace); check the name against configs/ too')


def read_config(config: Union[str, Config], cfg_options: Optional[dict] = None) -> Config:
    """``Config.fromfile(config)`` (a copy of a given Config) with ``cfg_options`` merged.

    Raises:
        FileNotFoundError: no such config, or a ``cast_mm::`` base MMEngine cannot find; the
            message says how to make it findable.
    """
    if isinstance(config, Config):
        cfg = config.copy()
    else:
        try:
            cfg = Config.fromfile(config)
        except FileNotFoundError as err:
            if '.mim' not in str(err):
                raise
            raise FileNotFoundError(f'{err} (reading {config}): {MISSING_CAST_MM_CONFIG_HINT}'
                                    ) from err
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


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
    cfg = read_config(config, cfg_options)
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])
    prepare_deterministic_environment(cfg)
    return cfg

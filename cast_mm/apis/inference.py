"""Build a cast_mm model from a config, a ``cast_mm::`` config or a model name, with weights."""
import logging
import os.path as osp
from typing import Optional, Union

import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import CheckpointLoader
from mmengine.runner.checkpoint import load_state_dict

from cast_mm.checkpoints import check_cast_weights, model_info
from cast_mm.checkpoints.model_index import index_location
from cast_mm.utils.tool_config import MISSING_CAST_MM_CONFIG_HINT, read_config
from .hierarchy import get_cast_backbone


def drop_pretrained(cfg):
    """Remove ``Pretrained`` entries from every ``init_cfg`` of a model config (in place), so
    that building and initialising the model downloads nothing."""
    if isinstance(cfg, dict):
        init = cfg.get('init_cfg')
        if isinstance(init, dict) and init.get('type') == 'Pretrained':
            cfg['init_cfg'] = None
        elif isinstance(init, (list, tuple)):
            kept = [c for c in init if not (isinstance(c, dict) and c.get('type') == 'Pretrained')]
            cfg['init_cfg'] = kept or None
        for value in cfg.values():
            drop_pretrained(value)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            drop_pretrained(value)
    return cfg


def load_weights(model: nn.Module, checkpoint: str) -> dict:
    """Load ``checkpoint`` (path or URL, official files converted) into ``model``, refusing
    weights that are not its CAST's; return the checkpoint's ``meta`` (or ``{}``).

    ``module.`` prefixes are removed; a bare backbone takes the ``backbone.*`` weights of a
    whole model's checkpoint.
    """
    backbone = get_cast_backbone(model)
    prefix = next(name for name, module in model.named_modules() if module is backbone)
    prefix = prefix + '.' if prefix else ''
    loaded = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    state = loaded.get('state_dict', loaded) if isinstance(loaded, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f'checkpoint {checkpoint} holds no state dict')
    state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
    if not prefix and any(k.startswith('backbone.') for k in state):
        state = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    check_cast_weights(backbone, state, prefix)
    load_state_dict(model, state)
    meta = loaded.get('meta') if isinstance(loaded, dict) else None
    return meta if isinstance(meta, dict) else {}


def _is_model_name(config: str) -> bool:
    return '::' not in config and not config.endswith('.py') and not osp.exists(config)


def init_model(config_or_name: Union[str, Config],
               checkpoint: Optional[str] = None,
               device: str = 'cpu',
               cfg_options: Optional[dict] = None) -> nn.Module:
    """A cast_mm model in eval mode, carrying its config as ``model.cfg`` (as
    ``mmseg.apis.init_model`` leaves it; also as ``model._config``, as ``mmpretrain.get_model``
    does, so that mmpretrain's inferencers take the model).

    Args:
        config_or_name (str | Config): a config file, a ``cast_mm::cast/...`` config, a Config,
            or a model name of ``configs/cast/metafile.yml`` (e.g. ``cast-s_deit_in1k``).
        checkpoint (str, optional): a checkpoint path or URL (official CAST files are converted
            when loaded, through MMEngine's loaders). For a model name, None loads its official
            weights (downloaded on first use, then cached); otherwise, and for a name without
            weights, the model gets its default initialisation (seed torch first for the same
            weights every time). ``Pretrained`` entries of ``init_cfg`` are never run, so
            nothing else is downloaded.
        device (str): where the model runs. Defaults to ``'cpu'``.
        cfg_options (dict, optional): overrides merged into the config.

    Raises:
        ValueError: an unknown model name (the message lists the names).
    """
    if isinstance(config_or_name, str) and _is_model_name(config_or_name):
        info = model_info(config_or_name)
        config = info['config']
        if checkpoint is None:
            checkpoint = info['weights']
    elif isinstance(config_or_name, str) and config_or_name.startswith('cast_mm::'):
        config = osp.join(index_location()[1], 'configs', config_or_name.partition('::')[2])
        if not osp.isfile(config):
            raise FileNotFoundError(f'{config_or_name}: no such config ({config}); '
                                    f'{MISSING_CAST_MM_CONFIG_HINT}')
    else:
        config = config_or_name
    cfg = read_config(config, cfg_options)
    init_default_scope(cfg.get('default_scope', 'cast_mm'))
    model_cfg = drop_pretrained(cfg.model.copy())
    if cfg.get('data_preprocessor') is not None:  # as MMEngine's runner and mmpretrain build
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    if checkpoint is None:
        logger = MMLogger.get_current_instance()
        level = logger.level
        logger.setLevel(logging.WARNING)  # not a line per initialised parameter
        try:
            model.init_weights()
        finally:
            logger.setLevel(level)
    else:
        meta = load_weights(model, checkpoint)
        if meta.get('dataset_meta'):
            model.dataset_meta = meta['dataset_meta']
    model.cfg = cfg
    model._config = cfg  # where mmpretrain's inferencers read a given model's config
    return model.to(device).eval()

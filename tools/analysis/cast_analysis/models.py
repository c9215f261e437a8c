"""The benchmarked models: names, configs, ``--cfg-options`` and how they are built.

Every model is built from a config users train and test with (``configs/cast/cast-s_ade20k.py``,
``configs/cast/cast-s_8xb128_in1k.py``, mmseg's Segmenter ViT-S and mmpretrain's DeiT-S configs)
and a few overrides in ``--cfg-options`` form, so a printed model line can be pasted into
``tools/train.py`` or ``tools/test.py``.
"""
import copy
import dataclasses
import logging
import os.path as osp
from typing import Any, Dict, List, Optional, Tuple

import torch

#: The repository this library lives in (``tools/analysis/cast_analysis``); configs are read
#: from its ``configs`` folder.
REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
CLS_CONFIG = osp.join(REPO, 'configs', 'cast', 'cast-s_8xb128_in1k.py')
SEG_CONFIG = osp.join(REPO, 'configs', 'cast', 'cast-s_ade20k.py')
DEIT_CONFIG = 'mmpretrain::deit/deit-small_4xb256_in1k.py'
SEGMENTER_CONFIG = 'mmseg::segmenter/segmenter_vit-s_mask_8xb1-160k_ade20k-512x512.py'
UPERNET_CONFIG = osp.join(REPO, 'configs', 'cast', 'cast-s_upernet_ade20k.py')
DEIT_UPERNET_CONFIG = 'mmseg::vit/vit_deit-s16_upernet_8xb2-160k_ade20k-512x512.py'

#: Image size and batch of each task (the superpixel budget comes from the config's preset).
TASK_SIZES = dict(cls=(224, 8), seg=(512, 2))
#: Smoke settings: tiny images and batches, to check that everything runs.
SMOKE_TASK_SIZES = dict(cls=(64, 2), seg=(64, 1))
#: Smoke settings: 16 superpixels at 64x64 cannot feed 320 clusters.
SMOKE_TASK_OPTIONS = dict(cls={}, seg={'model.backbone.num_clusters': (8, 4, 2, 1)})
#: Smoke settings of the UPerNet models: training batches not padded to 512, and no 1 x 1
#: pooling, whose BatchNorm has one value per channel in a batch of one image.
SMOKE_UPERNET_OPTIONS = {'model.data_preprocessor.size': (64, 64),
                         'model.decode_head.pool_scales': (2, 3, 6)}

NO_CHECKPOINT = {'model.backbone.init_cfg': None}
WHOLE_INFERENCE = {'model.test_cfg': dict(mode='whole')}
WITH_CP = {'model.backbone.with_cp': True}
#: Mixed precision as ``tools/train.py --amp`` sets it (float16 autocast, dynamic loss scale).
AMP_OPTIONS = {'optim_wrapper.type': 'AmpOptimWrapper', 'optim_wrapper.loss_scale': 'dynamic'}

#: Inference groups: task and models (literal CAST, fast CAST, reference), in table order.
INFERENCE_GROUPS = dict(
    classification=('cls', ('cast_cls_literal', 'cast_cls_fast', 'deit_s')),
    segmentation=('seg', ('cast_seg_literal', 'cast_seg_fast', 'segmenter_vit_s')))
#: The ``upernet`` section: CAST-S and mmseg's DeiT-S under the same UPerNet (task, models).
UPERNET_GROUP = ('seg', ('cast_s_upernet', 'deit_s_upernet'))
#: Train-step groups: as inference, with activation checkpointing variants.
TRAIN_GROUPS = dict(
    classification=('cls', ('cast_cls_literal', 'cast_cls_fast', 'cast_cls_literal+cp',
                            'cast_cls_fast+cp', 'deit_s')),
    segmentation=('seg', ('cast_seg_literal', 'cast_seg_fast', 'cast_seg_literal+cp',
                          'cast_seg_fast+cp', 'segmenter_vit_s')))


@dataclasses.dataclass(frozen=True)
class Settings:
    """What every measurement of a run shares; passed explicitly (also to child processes).

    Args:
        device (str): ``'cpu'`` or ``'cuda[:i]'``.
        threads (int, optional): torch CPU threads; None keeps torch's default.
        smoke (bool): tiny images and batches (:data:`SMOKE_TASK_SIZES`).
    """
    device: str = 'cpu'
    threads: Optional[int] = None
    smoke: bool = False

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    def task_size(self, task: str) -> Tuple[int, int]:
        """``(image size, batch)`` of ``task`` (``'cls'`` or ``'seg'``)."""
        return (SMOKE_TASK_SIZES if self.smoke else TASK_SIZES)[task]

    def task_options(self, task: str) -> Dict:
        """Extra ``--cfg-options`` of every CAST model of ``task``."""
        return dict(SMOKE_TASK_OPTIONS[task]) if self.smoke else {}

    def apply(self) -> None:
        """Set this process's torch threads (a child process calls it first)."""
        if self.threads is not None:
            torch.set_num_threads(self.threads)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A benchmarked model: its task, config (path or ``package::path``) and overrides."""
    task: str
    config: str
    options: Dict

    def command_line(self) -> str:
        """The config and overrides as ``tools/train.py`` takes them."""
        config = osp.relpath(self.config, REPO) if osp.isabs(self.config) else self.config
        shown = ' '.join(f'{k}={v!r}'.replace(' ', '') for k, v in self.options.items())
        return config + (f' --cfg-options {shown}' if shown else '')


def literal_cfg_options(task: str) -> Dict:
    """``--cfg-options`` that make a shipped CAST config of ``task`` compute as the official code.

    The options of :data:`cast_mm.models.execution_profile.LITERAL` for the task (the one place
    the fast/literal switches are named): the backbone's literal switches and DGL's farthest
    point sampling; for ``task='seg'`` also the decode head's explicit attention and mmseg's
    loss on pixel logits, and mmseg's per-pixel prediction.

    Args:
        task (str): ``'cls'`` or ``'seg'``.

    Returns:
        dict: dotted config keys and their values.
    """
    from cast_mm.models.execution_profile import cfg_options
    if task not in ('cls', 'seg'):
        raise ValueError(f"task must be 'cls' or 'seg', got {task!r}")
    return cfg_options('literal', task)


def profile_switches(task: str) -> List[Tuple[str, Any, Dict]]:
    """Every switch of the execution profile that changes a CAST model of ``task``.

    A switch is a ``(component, argument)`` of :mod:`cast_mm.models.execution_profile` whose
    :data:`FAST` and :data:`LITERAL` values differ; those of components the task's models do not
    have (the decoder in classification) are left out.

    Args:
        task (str): ``'cls'`` or ``'seg'``.

    Returns:
        list: ``('component.argument', literal value, --cfg-options)``: the options that set
        that one argument to its literal value in the fast model.
    """
    from cast_mm.models.execution_profile import FAST, LITERAL, cfg_options
    fast = cfg_options('fast', task)
    switches = []
    for component, arguments in LITERAL.items():
        for argument, value in arguments.items():
            if FAST.get(component, {}).get(argument, value) == value:
                continue
            profile = copy.deepcopy(FAST)
            profile[component][argument] = value
            changed = {key: option for key, option in cfg_options(profile, task).items()
                       if key not in fast or fast[key] != option}
            if changed:
                switches.append((f'{component}.{argument}', value, changed))
    return switches


def model_specs(settings: Settings) -> Dict[str, ModelSpec]:
    """Name -> :class:`ModelSpec` of every benchmarked model."""
    cls = dict(NO_CHECKPOINT, **settings.task_options('cls'))
    seg = dict(NO_CHECKPOINT, **WHOLE_INFERENCE, **settings.task_options('seg'))
    cls_lit, seg_lit = literal_cfg_options('cls'), literal_cfg_options('seg')
    upernet_smoke = SMOKE_UPERNET_OPTIONS if settings.smoke else {}
    return {
        'cast_cls_literal': ModelSpec('cls', CLS_CONFIG, dict(cls, **cls_lit)),
        'cast_cls_fast': ModelSpec('cls', CLS_CONFIG, cls),
        'cast_cls_literal+cp': ModelSpec('cls', CLS_CONFIG, dict(cls, **cls_lit, **WITH_CP)),
        'cast_cls_fast+cp': ModelSpec('cls', CLS_CONFIG, dict(cls, **WITH_CP)),
        'deit_s': ModelSpec('cls', DEIT_CONFIG, {}),
        'cast_seg_literal': ModelSpec('seg', SEG_CONFIG, dict(seg, **seg_lit)),
        'cast_seg_fast': ModelSpec('seg', SEG_CONFIG, seg),
        'cast_seg_literal+cp': ModelSpec('seg', SEG_CONFIG, dict(seg, **seg_lit, **WITH_CP)),
        'cast_seg_fast+cp': ModelSpec('seg', SEG_CONFIG, dict(seg, **WITH_CP)),
        'segmenter_vit_s': ModelSpec('seg', SEGMENTER_CONFIG,
                                     {'model.pretrained': None, **WHOLE_INFERENCE}),
        'cast_s_upernet': ModelSpec('seg', UPERNET_CONFIG,
                                    dict(NO_CHECKPOINT, **settings.task_options('seg'),
                                         **upernet_smoke)),
        'deit_s_upernet': ModelSpec('seg', DEIT_UPERNET_CONFIG,
                                    {'model.pretrained': None, **upernet_smoke}),
    }


def model_spec(name: str, settings: Settings) -> ModelSpec:
    """The spec of ``name``; a ValueError names the known ones."""
    specs = model_specs(settings)
    if name not in specs:
        raise ValueError(f'unknown model {name!r}; choose from {sorted(specs)}')
    return specs[name]


def quiet_logs() -> None:
    """Keep MMEngine's per-parameter initialisation report and warnings out of the tables."""
    import warnings

    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    logger.setLevel(logging.ERROR)
    for handler in logger.handlers:
        handler.setLevel(logging.ERROR)
    warnings.filterwarnings('ignore', category=UserWarning)


def load_config(config: str, options: Dict):
    """The config with ``options`` merged as ``--cfg-options`` would (``model.test_cfg`` is
    replaced, not merged, so that slide-inference keys do not stay)."""
    from mmengine.config import Config
    from mmengine.hub import get_config

    # 'package::path' names a config shipped inside an installed OpenMMLab package.
    cfg = get_config(config) if '::' in config else Config.fromfile(config)
    options = dict(options)
    test_cfg = options.pop('model.test_cfg', None)
    cfg.merge_from_dict(options)
    if test_cfg is not None:
        cfg.model.test_cfg = test_cfg
    return cfg


def build_model(cfg, device):
    """The model of ``cfg``, built in the config's default scope, seeded, on ``device``."""
    from mmengine.registry import MODELS, DefaultScope

    import cast_mm  # noqa: F401  (registers the cast_mm scope)
    model_cfg = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:  # as the Runner hands it to the model
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmseg')):
        model = MODELS.build(model_cfg)
        model.init_weights()
    return model.to(device)


def build_optim_wrapper(cfg, model):
    """The config's optimiser wrapper around ``model``."""
    from mmengine.optim import build_optim_wrapper as build
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmseg')):
        return build(model, copy.deepcopy(cfg.optim_wrapper))

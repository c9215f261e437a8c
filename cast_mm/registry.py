"""The ``cast_mm`` registry scope.

Every registry here is a child of MMEngine's root registry of the same kind, so a config in any
OpenMMLab scope (``default_scope='mmseg'`` or ``'mmpretrain'``) can name our modules as
``type='cast_mm.CAST'``: MMEngine imports ``cast_mm.registry`` (and with it the package, which
registers every module) when it meets the ``cast_mm.`` prefix, no ``custom_imports`` needed.

Configs inherited as ``_base_ = 'cast_mm::cast/...'`` are built in the ``cast_mm`` scope (MMEngine
tags them with ``_scope_='cast_mm'``), yet they name mmseg / mmpretrain modules without a prefix
(``LoadAnnotations``, ``ADE20KDataset``). A name this scope does not register is therefore looked
up in the scope around it first: the most recent default scope other than ``cast_mm`` (the
runner's ``default_scope``), so one config works inherited both ways.
"""
from typing import Optional, Type

from mmengine.config.utils import MODULE2PACKAGE
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import DefaultScope, Registry

SCOPE = 'cast_mm'
# Importing the package registers every module of every kind.
_LOCATIONS = ['cast_mm']
# ``_base_ = 'cast_mm::...'`` needs MMEngine to know where the scope's configs are (the table
# MMEngine reads for that, as its own OpenMMLab packages are listed there). MMEngine looks for
# ``.mim/configs`` in the folder of the name given here: the folder of a distribution's package,
# or, for a module name no distribution has, that of the module file. A module of this package
# names this package's folder in every kind of install (an editable install's distribution
# location holds no package folder), so inherited configs are found after ``import cast_mm``.
MODULE2PACKAGE.setdefault(SCOPE, 'cast_mm.registry')


def surrounding_scope() -> Optional[str]:
    """The most recent default scope that is not ``cast_mm`` (None if there is none).

    MMEngine (0.10.7) has no public way to list the default scopes in effect: a build with
    ``_scope_`` replaces the current one for its duration, so the runner's scope is only found
    in ``DefaultScope``'s instance table, read here and nowhere else.
    """
    for instance in reversed(list(DefaultScope._instance_dict.values())):
        if instance.scope_name != SCOPE:
            return instance.scope_name
    return None


class CastRegistry(Registry):
    """A registry of the ``cast_mm`` scope that defers unknown names to the surrounding scope.

    A name cast_mm does not register is looked up in the surrounding task scope first (so
    ``LoadAnnotations`` is mmseg's, not MMCV's root one), then in the parents as usual.
    """

    def get(self, key: str) -> Optional[Type]:
        if '.' not in key:
            self.import_from_location()
            scope = surrounding_scope()
            if key not in self._module_dict and scope is not None:
                obj = super().get(f'{scope}.{key}')
                if obj is not None:
                    return obj
        return super().get(key)


#: Backbones, layers, heads, segmentors, classifiers, data preprocessors.
MODELS = CastRegistry('model', parent=MMENGINE_MODELS, scope=SCOPE,
                      locations=_LOCATIONS)
#: Data transforms (superpixel computation and packing).
TRANSFORMS = CastRegistry('transform', parent=MMENGINE_TRANSFORMS, scope=SCOPE,
                          locations=_LOCATIONS)
#: Datasets.
DATASETS = CastRegistry('dataset', parent=MMENGINE_DATASETS, scope=SCOPE,
                        locations=_LOCATIONS)
#: Samplers.
DATA_SAMPLERS = CastRegistry('data sampler', parent=MMENGINE_DATA_SAMPLERS, scope=SCOPE,
                             locations=_LOCATIONS)
#: Metrics.
METRICS = CastRegistry('metric', parent=MMENGINE_METRICS, scope=SCOPE,
                       locations=_LOCATIONS)
#: Evaluators.
EVALUATOR = CastRegistry('evaluator', parent=MMENGINE_EVALUATOR, scope=SCOPE,
                         locations=_LOCATIONS)
#: Hooks.
HOOKS = CastRegistry('hook', parent=MMENGINE_HOOKS, scope=SCOPE, locations=_LOCATIONS)
#: Training loops.
LOOPS = CastRegistry('loop', parent=MMENGINE_LOOPS, scope=SCOPE, locations=_LOCATIONS)
#: Visualizers.
VISUALIZERS = CastRegistry('visualizer', parent=MMENGINE_VISUALIZERS, scope=SCOPE,
                           locations=_LOCATIONS)
#: Visualization backends.
VISBACKENDS = CastRegistry('vis_backend', parent=MMENGINE_VISBACKENDS, scope=SCOPE,
                           locations=_LOCATIONS)
#: Superpixel sources (:class:`cast_mm.superpixels.SuperpixelSource`), by the names the configs
#: give them (``cast_mm.SEEDSSuperpixels``): what a segmentor computes window and in-model
#: superpixels with. No MMEngine registry of this kind exists to be a child of.
SUPERPIXEL_SOURCES = Registry('superpixel source', scope=SCOPE,
                              locations=['cast_mm.superpixels'])

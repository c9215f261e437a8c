"""The ``cast_mm`` registry scope.

Every registry here is a child of MMEngine's root registry of the same kind, so a config in any
OpenMMLab scope (``default_scope='mmseg'`` or ``'mmpretrain'``) can name our modules as
``type='cast_mm.CAST'``: MMEngine imports ``cast_mm.registry`` (and with it the package, which
registers every module) when it meets the ``cast_mm.`` prefix, no ``custom_imports`` needed.
"""
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import Registry

# Importing the package registers every module of every kind.
_LOCATIONS = ['cast_mm']

#: Backbones, layers, heads, segmentors, classifiers, data preprocessors.
MODELS = Registry('model', parent=MMENGINE_MODELS, scope='cast_mm',
                  locations=_LOCATIONS)
#: Data transforms (superpixel computation and packing).
TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS, scope='cast_mm',
                      locations=_LOCATIONS)
#: Datasets.
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, scope='cast_mm',
                    locations=_LOCATIONS)
#: Samplers.
DATA_SAMPLERS = Registry('data sampler', parent=MMENGINE_DATA_SAMPLERS, scope='cast_mm',
                         locations=_LOCATIONS)
#: Metrics.
METRICS = Registry('metric', parent=MMENGINE_METRICS, scope='cast_mm',
                   locations=_LOCATIONS)
#: Evaluators.
EVALUATOR = Registry('evaluator', parent=MMENGINE_EVALUATOR, scope='cast_mm',
                     locations=_LOCATIONS)
#: Hooks.
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope='cast_mm', locations=_LOCATIONS)
#: Visualizers.
VISUALIZERS = Registry('visualizer', parent=MMENGINE_VISUALIZERS, scope='cast_mm',
                       locations=_LOCATIONS)
#: Visualization backends.
VISBACKENDS = Registry('vis_backend', parent=MMENGINE_VISBACKENDS, scope='cast_mm',
                       locations=_LOCATIONS)

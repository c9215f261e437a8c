"""Segmentation hierarchy of images: what a CAST model sees of them, and the nested segments.

:class:`HierarchyExtractor` prepares images, runs the CAST backbone once and reads the
hierarchy out of its outputs (:func:`cast_mm.models.hierarchy_from_features`). How images are
prepared depends on the model:

* **A model that carries its config** (:func:`model_config`, as :func:`cast_mm.apis.init_model`,
  ``mmseg.apis.init_model`` and ``mmpretrain.get_model`` leave it) is given images exactly as at
  test time: the config's test pipeline (``cfg.test_pipeline``, else
  ``cfg.test_dataloader.dataset.pipeline``; its annotation loaders left out) loads, resizes,
  crops and computes the superpixels with the config's SEEDS step and preset, and the model's
  data preprocessor normalises. Image, superpixels and (for classifiers) class scores equal
  those of ``mmseg.apis.inference_model`` and mmpretrain's ``ImageClassificationInferencer``.
  Segmentors are read in whole-image mode: a config whose ``test_cfg.mode`` is ``'slide'``
  still gives the hierarchy of the whole image after the test pipeline (one map of superpixels
  and one forward pass, the map the pipeline computes for whole-mode inference), not of its
  windows.
* **A bare backbone** (or a model without a config) keeps explicit arguments: the image as given
  (optionally resized), ``mean`` / ``std`` (ImageNet by default) and
  ``cast_mm.SEEDSSuperpixels`` settings (``superpixel_cfg``; the class defaults otherwise).

Arrays are RGB (as scikit-image and Pillow give them; note that mmseg and mmpretrain take BGR
arrays); files are read as ``LoadImageFromFile`` reads them. Any image is converted by the
rules of :mod:`cast_mm.utils.images`.
"""
import copy
import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import mmcv
import numpy as np
import torch
import torch.nn as nn
from mmengine.dataset import Compose, default_collate
from mmengine.registry import TRANSFORMS, DefaultScope
from torch import Tensor

from cast_mm.models.backbones.cast import CAST, CASTFeatures
from cast_mm.models.segment_hierarchy import SegmentHierarchy, hierarchy_from_features
from cast_mm.superpixels import SEEDSSource, sample_superpixels
from cast_mm.utils.images import ImageFileError, image_file_notes, uint8_three_channel_image

ImageLike = Union[str, np.ndarray]

#: ImageNet mean / std on the 0-255 scale (the OpenMMLab data-preprocessor convention).
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
#: Pipeline steps that load annotations, left out of the test pipeline for images alone.
ANNOTATION_LOADERS = ('LoadAnnotations', 'LoadPartImageNetMasks')
#: Pipeline steps that compute superpixels (what ``superpixel_cfg`` changes).
SUPERPIXEL_STEPS = ('SEEDSSuperpixels', 'SLICSuperpixels')


@dataclasses.dataclass
class HierarchyResult:
    """One image through :class:`HierarchyExtractor`.

    Attributes:
        image: ``H x W x 3`` uint8 RGB, the image the model saw (after the test pipeline).
        superpixels: ``H x W`` int64, the superpixel map the model ran with.
        hierarchy: the :class:`SegmentHierarchy` (on the CPU).
        scores: class probabilities ``(num_classes, )`` of a classifier (on the CPU), equal to
            mmpretrain's ``pred_score``; None for other models.
        notes: what loading the file changed (:func:`cast_mm.utils.images.image_file_notes`).
    """
    image: np.ndarray
    superpixels: np.ndarray
    hierarchy: SegmentHierarchy
    scores: Optional[Tensor] = None
    notes: List[str] = dataclasses.field(default_factory=list)


def get_cast_backbone(model: nn.Module) -> CAST:
    """The :class:`CAST` backbone of ``model`` (itself, or its ``.backbone``).

    Raises:
        TypeError: when ``model`` holds no CAST backbone.
    """
    if isinstance(model, CAST):
        return model
    backbone = getattr(model, 'backbone', None)
    if isinstance(backbone, CAST):
        return backbone
    raise TypeError(f'expected a cast_mm CAST backbone or a model whose .backbone is one, got '
                    f'{type(model).__name__} (backbone: {type(backbone).__name__})')


def load_rgb_image(image: ImageLike) -> np.ndarray:
    """An ``H x W x 3`` uint8 RGB array from a file (read as ``LoadImageFromFile`` reads it) or
    an RGB array, by the rules of :mod:`cast_mm.utils.images`.

    Raises:
        ImageFileError: a missing, empty or unreadable file.
        ValueError: an array the rules refuse.
    """
    if isinstance(image, str):
        image_file_notes(image)  # a clear error for a missing, empty or foreign file
        bgr = mmcv.imread(image)
        if bgr is None:
            raise ImageFileError(f'{image} cannot be decoded as an image')
        return np.ascontiguousarray(bgr[..., ::-1])
    if not isinstance(image, np.ndarray):
        raise TypeError(f'image must be a path or a numpy array, got {type(image).__name__}')
    return uint8_three_channel_image(image, 'the hierarchy extractor')


def model_config(model: nn.Module):
    """The config a model carries: ``model.cfg`` (``init_model`` of cast_mm and mmseg) or
    ``model._config`` (``mmpretrain.get_model``); None without one."""
    cfg = getattr(model, 'cfg', None)
    return cfg if cfg is not None else getattr(model, '_config', None)


def config_test_pipeline(cfg) -> Optional[list]:
    """The test pipeline of a config (``test_pipeline``, else the test data loader's), or
    None."""
    pipeline = cfg.get('test_pipeline')
    if pipeline is None:
        dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
        pipeline = dataset.get('pipeline')
    return copy.deepcopy(list(pipeline)) if pipeline else None


def _step_name(step: dict) -> str:
    return str(step.get('type', '')).rpartition('.')[2]


def resize_short_side(image: np.ndarray, short_side: int) -> np.ndarray:
    """``image`` resized so its shorter side is ``short_side`` (unchanged for 0)."""
    height, width = image.shape[:2]
    if short_side <= 0 or min(height, width) == short_side:
        return image
    scale = short_side / min(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


class HierarchyExtractor:
    """Prepare images as the model sees them, run its CAST backbone and read the hierarchy.

    Args:
        model (nn.Module): a :class:`CAST` backbone or a model holding one as ``.backbone``
            (mmpretrain classifier, MoCo-v3, mmseg segmentor), classification or segmentation
            mode. With a config (``model.cfg`` holding a test pipeline) images go through the
            config (module docstring); otherwise the arguments below say how.
        mean (Sequence[float], optional): a model without a config: per-channel RGB mean on
            the 0-255 scale. Defaults to ImageNet's.
        std (Sequence[float], optional): a model without a config: per-channel RGB std.
            Defaults to ImageNet's.
        superpixel_cfg (dict, optional): with a config: arguments that replace those of the
            pipeline's superpixel step (e.g. ``dict(num_superpixels=400,
            pixels_per_superpixel=None)``), or with a ``type`` the step itself (e.g.
            ``dict(type='cast_mm.SLICSuperpixels', num_superpixels=196)``); without one: the
            arguments of :class:`~cast_mm.superpixels.SEEDSSource`.
        short_side (int): a model without a config: resize images so the shorter side has
            this length (0, the default: as given).
    """

    def __init__(self,
                 model: nn.Module,
                 mean: Optional[Sequence[float]] = None,
                 std: Optional[Sequence[float]] = None,
                 superpixel_cfg: Optional[Dict] = None,
                 short_side: int = 0) -> None:
        self.model = model
        self.backbone = get_cast_backbone(model)
        cfg = model_config(model)
        pipeline = config_test_pipeline(cfg) if cfg is not None else None
        self.follows_config = pipeline is not None and hasattr(model, 'data_preprocessor')
        if self.follows_config:
            given = [name for name, value in (('mean', mean), ('std', std),
                                              ('short_side', short_side)) if value]
            if given:
                raise ValueError(f'{", ".join(given)}: the model carries its config, whose test '
                                 'pipeline and data preprocessor prepare the images')
            self._build_pipeline(pipeline, cfg.get('default_scope') or 'cast_mm',
                                 superpixel_cfg)
            self.seeds = None
        else:
            mean = IMAGENET_MEAN if mean is None else mean
            std = IMAGENET_STD if std is None else std
            if len(mean) != 3 or len(std) != 3:
                raise ValueError(f'mean and std need 3 values (RGB), got {mean} and {std}')
            if min(std) <= 0:
                raise ValueError(f'std must be positive, got {std}')
            if short_side < 0:
                raise ValueError(f'short_side must be >= 0, got {short_side}')
            self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
            self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
            self.short_side = short_side
            self.seeds = SEEDSSource(**dict(superpixel_cfg or {}, channel_order='rgb'))

    # ----------------------------------------------------------------------- config mode
    def _build_pipeline(self, pipeline: list, scope: str, superpixel_cfg: Optional[Dict]) -> None:
        steps = [step for step in pipeline if _step_name(step) not in ANNOTATION_LOADERS]
        if superpixel_cfg:
            found = [i for i, step in enumerate(steps) if _step_name(step) in SUPERPIXEL_STEPS]
            if not found:
                raise ValueError('superpixel_cfg given, but the test pipeline has no superpixel '
                                 f'step ({", ".join(SUPERPIXEL_STEPS)})')
            for i in found:
                steps[i] = (dict(superpixel_cfg) if 'type' in superpixel_cfg else
                            dict(steps[i], **superpixel_cfg))
        with DefaultScope.overwrite_default_scope(scope):
            built = [TRANSFORMS.build(step) for step in steps]
        # the first step loads files; arrays enter after it, as mmseg and mmpretrain do
        self.load_step = built[0] if 'Load' in _step_name(steps[0]) else None
        self.pipeline = Compose(built[1:] if self.load_step is not None else built)

    def _packed(self, image: ImageLike) -> Tuple[dict, List[str]]:
        """One image through the test pipeline: the packed sample and the loading notes."""
        notes = []
        if isinstance(image, str):
            notes = image_file_notes(image)
            if self.load_step is None:
                results = dict(img=load_rgb_image(image)[..., ::-1])
            else:
                try:
                    results = self.load_step(dict(img_path=image))
                except Exception as err:  # mmcv asserts, OpenCV may raise
                    raise ImageFileError(f'{image} cannot be decoded as an image ({err})') from err
                if results is None or results.get('img') is None:
                    raise ImageFileError(f'{image} cannot be decoded as an image')
        else:
            if not isinstance(image, np.ndarray):
                raise TypeError(f'image must be a path or a numpy array, got '
                                f'{type(image).__name__}')
            results = dict(img=load_rgb_image(image)[..., ::-1])  # the pipelines' BGR
        if 'img_shape' not in results:
            shape = results['img'].shape[:2]
            results.update(img_path=None, img_shape=shape, ori_shape=shape)
        return self.pipeline(results), notes

    def _run_config(self, images: List[ImageLike]) -> List[HierarchyResult]:
        packed, notes = zip(*[self._packed(image) for image in images])
        results: List[Optional[HierarchyResult]] = [None] * len(images)
        groups: Dict[Tuple[int, int], List[int]] = {}
        for i, sample in enumerate(packed):
            groups.setdefault(tuple(sample['inputs'].shape[-2:]), []).append(i)
        for indices in groups.values():
            data = default_collate([packed[i] for i in indices])
            with torch.no_grad():
                data = self.model.data_preprocessor(data, False)
                superpixels = torch.stack(sample_superpixels(data['data_samples'],
                                                             required=True))
                feats = self._forward(data['inputs'], superpixels)
                scores = self._class_scores(feats, data['data_samples'])
            hierarchies = hierarchy_from_features(feats, superpixels)
            for k, i in enumerate(indices):
                image = packed[i]['inputs'].permute(1, 2, 0).numpy()[..., ::-1]
                results[i] = HierarchyResult(
                    np.ascontiguousarray(image), superpixels[k].cpu().numpy(),
                    _to_cpu(hierarchies[k]), None if scores is None else scores[k],
                    list(notes[i]))
        return results

    def _class_scores(self, feats: CASTFeatures, data_samples) -> Optional[List[Tensor]]:
        """A classifier's ``pred_score`` from the backbone's class feature (its
        ``extract_feat`` + ``head.predict``), None for other models."""
        head = getattr(self.model, 'head', None)
        if (self.backbone.mode != 'classification' or self.backbone.out_type != 'cls_token'
                or not hasattr(head, 'num_classes') or not hasattr(head, 'predict')):
            return None
        outs = (feats.cls_feature, )
        if getattr(self.model, 'with_neck', False):
            outs = self.model.neck(outs)
        return [sample.pred_score.cpu() for sample in head.predict(outs, data_samples)]

    # ----------------------------------------------------------------------- explicit mode
    def superpixels(self, image: np.ndarray) -> np.ndarray:
        """SEEDS superpixels ``(H, W)`` of one RGB uint8 image (a model without a config)."""
        if self.seeds is None:
            raise TypeError('the model carries its config: its test pipeline computes the '
                            'superpixels (see HierarchyExtractor.run)')
        return self.seeds.compute(image)

    def _run_explicit(self, images: List[ImageLike],
                      superpixels: Optional[Sequence]) -> List[HierarchyResult]:
        notes = [image_file_notes(img) if isinstance(img, str) else [] for img in images]
        arrays = [resize_short_side(load_rgb_image(img), self.short_side) for img in images]
        if superpixels is None:
            maps = [self.superpixels(img) for img in arrays]
        else:
            maps = list(superpixels)
            if len(maps) != len(arrays):
                raise ValueError(f'got {len(arrays)} images but {len(maps)} superpixel maps')
        maps = [torch.as_tensor(np.asarray(m) if not isinstance(m, Tensor) else m).long()
                for m in maps]
        for img, spx in zip(arrays, maps):
            if tuple(spx.shape) != img.shape[:2]:
                raise ValueError(f'superpixel map of shape {tuple(spx.shape)} does not match '
                                 f'image of shape {img.shape[:2]}')
        results: List[Optional[HierarchyResult]] = [None] * len(arrays)
        groups: Dict[Tuple[int, int], List[int]] = {}
        for i, img in enumerate(arrays):
            groups.setdefault(img.shape[:2], []).append(i)
        for indices in groups.values():
            device = next(self.backbone.parameters()).device
            pixels = torch.from_numpy(np.stack([arrays[i] for i in indices]))
            inputs = (pixels.permute(0, 3, 1, 2).float() - self.mean) / self.std
            spx = torch.stack([maps[i] for i in indices]).to(device)
            with torch.no_grad():
                feats = self._forward(inputs.to(device), spx)
            for i, hierarchy in zip(indices, hierarchy_from_features(feats, spx)):
                results[i] = HierarchyResult(arrays[i], maps[i].numpy(), _to_cpu(hierarchy),
                                             notes=notes[i])
        return results

    # ----------------------------------------------------------------------- both
    def _forward(self, inputs: Tensor, superpixels: Tensor) -> CASTFeatures:
        if not any(module.training for module in self.backbone.modules()):
            return self.backbone.forward_features(inputs, superpixels)  # already in eval mode
        was_training = self.backbone.training
        self.backbone.eval()
        try:
            return self.backbone.forward_features(inputs, superpixels)
        finally:
            self.backbone.train(was_training)

    def run(self,
            images: Union[ImageLike, Sequence[ImageLike]],
            superpixels: Optional[Union[np.ndarray, Tensor, Sequence]] = None
            ) -> List[HierarchyResult]:
        """A :class:`HierarchyResult` per image (one image or a list; images that end up the
        same size run as one batch).

        Args:
            images: paths or ``H x W x 3`` RGB arrays (any dtype the rules of
                :mod:`cast_mm.utils.images` accept).
            superpixels: a model without a config: ``(H, W)`` integer ids per image (a list for
                a list of images), instead of SEEDS. A config computes its own.
        """
        single = isinstance(images, (str, np.ndarray))
        images = [images] if single else list(images)
        if superpixels is not None and single:
            superpixels = [superpixels]
        if self.follows_config:
            if superpixels is not None:
                raise ValueError('the model carries its config, whose test pipeline computes '
                                 'the superpixels of the image it prepares; change them with '
                                 'superpixel_cfg')
            return self._run_config(images)
        return self._run_explicit(images, superpixels)

    def __call__(
        self,
        images: Union[ImageLike, Sequence[ImageLike]],
        superpixels: Optional[Union[np.ndarray, Tensor, Sequence]] = None,
    ) -> Union[SegmentHierarchy, List[SegmentHierarchy]]:
        """The :class:`SegmentHierarchy` of one image, or a list for a list (see :meth:`run`)."""
        results = [result.hierarchy for result in self.run(images, superpixels)]
        return results[0] if isinstance(images, (str, np.ndarray)) else results


def _to_cpu(hierarchy: SegmentHierarchy) -> SegmentHierarchy:
    values = {}
    for field in dataclasses.fields(hierarchy):
        value = getattr(hierarchy, field.name)
        values[field.name] = ([t.cpu() for t in value] if isinstance(value, list)
                              else value.cpu())
    return SegmentHierarchy(**values)


def extract_hierarchy(model: nn.Module,
                      images: Union[ImageLike, Sequence[ImageLike]],
                      superpixels: Optional[Union[np.ndarray, Tensor, Sequence]] = None,
                      **kwargs) -> Union[SegmentHierarchy, List[SegmentHierarchy]]:
    """One-call form of :class:`HierarchyExtractor`: ``extract_hierarchy(model, 'cat.jpg')``.

    Args:
        model (nn.Module): a CAST backbone or a model holding one as ``.backbone``; with a
            config, images go through its test pipeline.
        images: a path or RGB array, or a list of them.
        superpixels: a model without a config: superpixel maps (see
            :meth:`HierarchyExtractor.run`).
        **kwargs: ``mean``, ``std``, ``superpixel_cfg``, ``short_side`` of
            :class:`HierarchyExtractor`.
    """
    return HierarchyExtractor(model, **kwargs)(images, superpixels)

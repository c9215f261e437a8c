"""The official CAST checkpoints: the files of the release, their layouts, and their conversion
to cast_mm's module names.

Supported layouts:

* ``deit``: supervised DeiT training (``deit/main_suppix.py``): ``{'model': ..., 'args':
  argparse.Namespace, ...}`` with ``cast_deit`` keys; also the MoCo ``convert_to_deit.py``
  output ``{'model': ...}`` with ``cast`` keys.
* ``moco``: MoCo-v3 pre-training (``moco-v3/main_moco_suppix.py``): ``{'state_dict': ...}`` with
  ``module.base_encoder.`` keys (``cast`` for ImageNet, ``cast_seg`` for COCO); the momentum
  encoder is dropped, the projector and the predictor become ``NonLinearNeck`` weights.
* ``moco_lincls``: MoCo-v3 linear probing (``main_lincls_suppix.py``): ``{'state_dict': ...}``
  with ``module.`` keys and a linear head.
* ``segmenter``: Segmenter fine-tuning (``segmenter/segm/train_cast.py``): ``{'model': ...}``
  with ``encoder.`` (``cast_seg_deit``) and ``decoder.`` keys.

:data:`OFFICIAL_FILES` lists the published files for the downloads, the backbone's
missing-checkpoint message and (through a test) ``configs/cast/metafile.yml``.
"""
import dataclasses
import re
from collections import OrderedDict
from typing import Any, Dict, Mapping, NamedTuple, Optional

from torch import Tensor

from .foreign import describe_state_dict, remember_source
from .reading import CorruptCheckpointError

#: Where the official files are published (the official README links them).
DEFAULT_WEIGHTS_BASE = 'https://huggingface.co/twke/CAST/resolve/main'


class OfficialFile(NamedTuple):
    """One file of the official release.

    Attributes:
        layout: its checkpoint layout (``'deit'`` or ``'moco'``).
        family: the official model family it holds.
        description: what it is, for messages.
        model_name: the model-zoo name that loads it.
    """
    layout: str
    family: str
    description: str
    model_name: str


#: The CAST files of the official release, by path under the base.
OFFICIAL_FILES: Dict[str, OfficialFile] = OrderedDict([
    ('snapshots/deit/imagenet1k/cast_small/best_checkpoint.pth',
     OfficialFile('deit', 'cast_deit', 'DeiT ImageNet CAST-S', 'cast-s_deit_in1k')),
    ('snapshots/moco/imagenet1k/cast_small/checkpoint_0099.pth.tar',
     OfficialFile('moco', 'cast', 'MoCo-v3 ImageNet CAST-S', 'cast-s_mocov3-100e_8xb32_in1k')),
    ('snapshots/moco/imagenet1k/cast_small_deep/checkpoint_0099.pth.tar',
     OfficialFile('moco', 'cast', 'MoCo-v3 ImageNet CAST-SD', 'cast-sd_mocov3-100e_8xb32_in1k')),
    ('snapshots/moco/imagenet1k/cast_base/checkpoint_0099.pth.tar',
     OfficialFile('moco', 'cast', 'MoCo-v3 ImageNet CAST-B', 'cast-b_mocov3-100e_8xb32_in1k')),
    ('snapshots/moco/coco/cast_small/checkpoint_0149.pth.tar',
     OfficialFile('moco', 'cast_seg', 'MoCo-v3 COCO CAST-S, epoch 150', 'cast-s_voc-retrieval')),
    ('snapshots/moco/coco/cast_small/checkpoint_0399.pth.tar',
     OfficialFile('moco', 'cast_seg', 'MoCo-v3 COCO CAST-S, epoch 400',
                  'cast-s_mocov3-400e_8xb32_coco')),
])

LAYOUTS = ('deit', 'moco', 'moco_lincls', 'segmenter')


class UnknownCheckpointLayout(ValueError):
    """The file is not one of the official CAST checkpoint layouts."""


@dataclasses.dataclass
class ConvertedCheckpoint:
    """An official checkpoint in cast_mm names.

    Attributes:
        layout: which official layout the file had (one of ``LAYOUTS``).
        family: which official model file the encoder came from (``cast``, ``cast_deit``,
            ``cast_seg`` or ``cast_seg_deit``).
        backbone: state dict of :class:`cast_mm.models.CAST`.
        arch: backbone settings read off the weights (``embed_dims``, ``depths``,
            ``mlp_ratio``, ``pos_embed``, ``mode``, and ``pos_grid``, the side of a square
            position grid: the training size divided by the stem stride).
        head: ``weight``/``bias`` of a linear classifier, if the file has one.
        decoder: Segmenter decoder weights (official names, ``decoder.`` stripped), if any.
        neck: the MoCo-v3 projector as mmpretrain ``NonLinearNeck`` weights (``fc0``,
            ``bn0``, ...), if the file has one.
        predictor: the MoCo-v3 predictor, ``NonLinearNeck`` names, if the file has one.
    """
    layout: str
    family: str
    backbone: 'OrderedDict[str, Tensor]'
    arch: Dict[str, Any]
    head: Optional[Dict[str, Tensor]] = None
    decoder: Optional['OrderedDict[str, Tensor]'] = None
    neck: Optional['OrderedDict[str, Tensor]'] = None
    predictor: Optional['OrderedDict[str, Tensor]'] = None

    def state_dict(self) -> 'OrderedDict[str, Tensor]':
        """Whole-model state dict (``backbone.*``, ``head.fc.*``, ``decode_head.decoder.*``)."""
        out = OrderedDict(('backbone.' + k, v) for k, v in self.backbone.items())
        if self.head is not None:
            out.update(('head.fc.' + k, v) for k, v in self.head.items())
        if self.decoder is not None:
            out.update(('decode_head.decoder.' + k, v) for k, v in self.decoder.items())
        if self.neck is not None:
            out.update(('neck.' + k, v) for k, v in self.neck.items())
        if self.predictor is not None:
            out.update(('head.predictor.' + k, v) for k, v in self.predictor.items())
        return out

    def to_mmengine(self, dataset_meta: Optional[Dict] = None) -> Dict[str, Any]:
        """MMEngine checkpoint dict (``state_dict`` + ``meta``, as ``init_model`` needs)."""
        meta: Dict[str, Any] = dict(
            cast_mm=dict(source_layout=self.layout, official_family=self.family,
                         arch=self.arch))
        if dataset_meta is not None:
            meta['dataset_meta'] = dataset_meta
        return dict(state_dict=self.state_dict(), meta=meta)


def detect_layout(checkpoint: Mapping[str, Any]) -> str:
    """Name the official layout of a loaded checkpoint, or raise ``UnknownCheckpointLayout``."""
    if not isinstance(checkpoint, Mapping):
        raise UnknownCheckpointLayout(
            f'unknown checkpoint layout: expected a dict, got {type(checkpoint).__name__}')
    state = checkpoint.get('state_dict')
    if isinstance(state, Mapping):
        keys = list(state)
        if any(k.startswith('module.base_encoder.') for k in keys):
            return 'moco'
        if 'module.cls_token' in state and 'module.head.weight' in state:
            return 'moco_lincls'
        if any(k.startswith('backbone.') for k in keys):
            what = describe_state_dict(state)
            if what.endswith(', not CAST'):  # a known model of another kind
                raise UnknownCheckpointLayout(f'this is {what}')
            raise UnknownCheckpointLayout(
                'this is already a cast_mm (MMEngine) checkpoint: its state_dict has '
                "'backbone.' keys; load it directly")
    model = checkpoint.get('model')
    if isinstance(model, Mapping):
        keys = list(model)
        if any(k.startswith('encoder.') for k in keys) and any(
                k.startswith('decoder.') for k in keys):
            return 'segmenter'
        if 'cls_token' in model and 'patch_embed.proj.0.weight' in model:
            return 'deit'
    found = next((v for v in (state, model) if isinstance(v, Mapping)), checkpoint)
    what = describe_state_dict(found)
    raise UnknownCheckpointLayout(
        f'unknown checkpoint layout ({what}): expected an official CAST checkpoint (DeiT '
        "{'model'}, MoCo-v3 {'state_dict': module.base_encoder.*}, linear probe "
        "{'state_dict': module.*}, or Segmenter {'model': encoder.*/decoder.*}); the file's "
        f'top-level keys are {sorted(map(str, checkpoint))}')


def _strip(state: Mapping[str, Tensor], prefix: str) -> 'OrderedDict[str, Tensor]':
    return OrderedDict((k[len(prefix):], v) for k, v in state.items() if k.startswith(prefix))


def _encoder_family(encoder: Mapping[str, Tensor]) -> str:
    has_fusion = any(k.startswith('block_fusion.') for k in encoder)
    has_global_blocks = any(k.startswith('blocks.') for k in encoder)
    if has_fusion:
        return 'cast_seg_deit' if has_global_blocks else 'cast_seg'
    # MoCo-convention files (fixed sin-cos table) carry a pe_token; DeiT-convention ones do not.
    return 'cast' if 'pe_token' in encoder else 'cast_deit'


def _stage_depths(encoder: Mapping[str, Tensor]) -> list:
    """Blocks per stage, read off the keys: stage N holds ``blocksN.*`` and ends in the graph
    pooling ``poolN.*``."""
    stages = {int(m.group(1)) for k in encoder for m in [re.match(r'^pool(\d+)\.pool_block\.', k)]
              if m}
    depths = []
    for stage in range(1, max(stages, default=1) + 1):
        ids = {int(m.group(1)) for k in encoder for m in [re.match(rf'^blocks{stage}\.(\d+)\.', k)]
               if m}
        if not ids or not stages:
            missing = f'blocks{stage}' if stages else 'pool1.pool_block'
            raise UnknownCheckpointLayout(f'encoder has no {missing}.* keys: not a CAST model')
        depths.append(len(ids))
    return depths


def convert_encoder(encoder: Mapping[str, Tensor]) -> ConvertedCheckpoint:
    """Convert an official encoder state dict (no wrapper prefixes) to cast_mm names."""
    family = _encoder_family(encoder)
    depths = _stage_depths(encoder)
    starts = [sum(depths[:i]) for i in range(len(depths))]
    embed_dims = encoder['cls_token'].shape[-1]
    learned = family in ('cast_deit', 'cast_seg_deit')
    grid_tokens = encoder['pos_embed'].shape[1] - (1 if learned else 0)
    side = int(round(grid_tokens**0.5))
    segmentation = family in ('cast_seg', 'cast_seg_deit')

    out: 'OrderedDict[str, Tensor]' = OrderedDict()
    head: Dict[str, Tensor] = {}
    cls_token = encoder['cls_token'].clone()
    if 'pe_token' in encoder:  # a fixed additive term of the class token: fold it in, exactly
        cls_token = cls_token + encoder['pe_token']
    out['cls_token'] = cls_token
    out['pos_embed'] = encoder['pos_embed']
    for key, value in encoder.items():
        if key.startswith('patch_embed.proj.'):
            out['stem.' + key[len('patch_embed.'):]] = value
        elif key.startswith('blocks.'):
            out[key] = value
        elif family == 'cast_seg' and re.match(r'^blocks\d+\.', key):
            stage, local, rest = re.match(r'^blocks(\d+)\.(\d+)\.(.*)$', key).groups()
            out[f'blocks.{starts[int(stage) - 1] + int(local)}.{rest}'] = value
        elif key.startswith('pool'):
            stage, rest = re.match(r'^pool(\d+)\.pool_block\.(.*)$', key).groups()
            out[f'pools.{int(stage) - 1}.{rest}'] = value
        elif key.startswith('norm.') and not segmentation:
            out[key] = value
        elif key.startswith('block_fusion.proj_blocks.0.norm.'):
            out['fusion.norm.' + key[len('block_fusion.proj_blocks.0.norm.'):]] = value
        elif key.startswith('block_fusion.proj_blocks.2.'):
            out['fusion.proj.' + key[len('block_fusion.proj_blocks.2.'):]] = value
        elif key in ('head.weight', 'head.bias') and encoder['head.weight'].dim() == 2:
            head[key[len('head.'):]] = value
        # Remaining keys: blocks1-4 aliases of blocks.* (same tensors), the MoCo projector
        # (head.N.*), zero pe_token (folded), the unused final norm of segmentation models.
    arch = dict(
        embed_dims=embed_dims,
        depths=depths,
        mlp_ratio=encoder['blocks.0.mlp.fc1.weight'].shape[0] / embed_dims
        if 'blocks.0.mlp.fc1.weight' in encoder else
        encoder['blocks1.0.mlp.fc1.weight'].shape[0] / embed_dims,
        pos_embed='learned' if learned else 'sincos',
        mode='segmentation' if segmentation else 'classification',
    )
    if side * side == grid_tokens:  # a square grid: the training size over the stem stride
        arch['pos_grid'] = side
    return ConvertedCheckpoint(layout='', family=family, backbone=out, arch=arch,
                               head=head or None)


def _neck_weights(state: Mapping[str, Tensor],
                  prefix: str) -> Optional['OrderedDict[str, Tensor]']:
    """An official ``nn.Sequential`` MLP (Linear, BN, ReLU, ...) as ``NonLinearNeck`` weights.

    The ``i``-th linear layer becomes ``fc{i}`` and the BatchNorm right after it ``bn{i}``.
    Returns None if ``state`` has no such MLP under ``prefix`` (e.g. a linear classifier).
    """
    layers: Dict[int, Dict[str, Tensor]] = {}
    for key, value in state.items():
        match = re.match(rf'^{re.escape(prefix)}(\d+)\.(.+)$', key)
        if match:
            layers.setdefault(int(match.group(1)), {})[match.group(2)] = value
    if not layers:
        return None
    out: 'OrderedDict[str, Tensor]' = OrderedDict()
    linear = -1
    for index in sorted(layers):
        params = layers[index]
        if 'running_mean' in params:
            if linear < 0:
                raise UnknownCheckpointLayout(f'{prefix}{index} is a BatchNorm before any Linear')
            out.update((f'bn{linear}.{k}', v) for k, v in params.items())
        else:
            linear += 1
            out.update((f'fc{linear}.{k}', v) for k, v in params.items())
    return out


def convert_official_checkpoint(checkpoint: Mapping[str, Any],
                                layout: Optional[str] = None) -> ConvertedCheckpoint:
    """Convert a loaded official checkpoint (any supported layout) to cast_mm names.

    Args:
        checkpoint: the dict ``torch.load`` returned.
        layout: force a layout instead of detecting it (one of ``LAYOUTS``).
    """
    if layout is None:
        layout = detect_layout(checkpoint)
    elif layout not in LAYOUTS:
        raise ValueError(f'unknown layout {layout!r}; choose one of {LAYOUTS}')
    decoder = None
    neck = predictor = None
    if layout == 'moco':
        encoder = _strip(checkpoint['state_dict'], 'module.base_encoder.')
        neck = _neck_weights(encoder, 'head.')
        predictor = _neck_weights(checkpoint['state_dict'], 'module.predictor.')
    elif layout == 'moco_lincls':
        encoder = _strip(checkpoint['state_dict'], 'module.')
    elif layout == 'segmenter':
        encoder = _strip(checkpoint['model'], 'encoder.')
        decoder = _strip(checkpoint['model'], 'decoder.')
    else:
        encoder = OrderedDict(checkpoint['model'])
    converted = convert_encoder(encoder)
    converted.layout = layout
    converted.neck, converted.predictor = neck, predictor
    if layout == 'segmenter':
        converted.head = None  # the encoder's ImageNet head is dead weight in Segmenter
        converted.decoder = decoder
        converted.arch['num_classes'] = int(checkpoint.get('n_cls', decoder['cls_emb'].shape[1]))
    return converted


def to_mmengine_checkpoint(checkpoint: Any, source: str, strict: bool = False) -> Any:
    """An official checkpoint converted to an MMEngine one; any other object unchanged.

    A 1000-way classifier gets ImageNet's class names as ``meta.dataset_meta`` (what
    mmpretrain's Inferencers show).

    Args:
        checkpoint: what :func:`~cast_mm.checkpoints.read_checkpoint` returned.
        source (str): the file or URL, for messages and ``meta.cast_mm.source``.
        strict (bool): raise when the file has an official wrapper layout but no CAST weights
            in it; otherwise return it unchanged (e.g. a ViT saved the same way by another
            project). Defaults to False.
    """
    try:
        layout = detect_layout(checkpoint)
    except UnknownCheckpointLayout:
        return checkpoint
    try:
        converted = convert_official_checkpoint(checkpoint, layout=layout)
    except (UnknownCheckpointLayout, KeyError, AttributeError) as err:
        if not strict:
            return checkpoint
        raise CorruptCheckpointError(
            f'checkpoint {source} has the layout of an official {layout} checkpoint but no '
            f'CAST weights that convert: {err}') from err
    dataset_meta = None
    if converted.head is not None and converted.head['weight'].shape[0] == 1000:
        try:
            from mmpretrain.datasets.categories import IMAGENET_CATEGORIES
            dataset_meta = dict(classes=tuple(IMAGENET_CATEGORIES))
        except ImportError:  # pragma: no cover - mmseg-only environments
            pass
    out = converted.to_mmengine(dataset_meta)
    out['meta']['cast_mm']['source'] = source
    remember_source(source, out['state_dict'])
    return out

"""Recognise whose weights a state dict holds, and refuse those that are not CAST weights of
the model being loaded, naming the file they came from."""
import re
from collections import OrderedDict
from typing import Any, Mapping, Optional

import torch

from .reading import ForeignCheckpointError

_SOURCES: 'OrderedDict[str, frozenset]' = OrderedDict()
_MAX_SOURCES = 4


def remember_source(source: str, state: Mapping[str, Any]) -> None:
    """Note that the tensors of ``state`` came from ``source`` (for error messages)."""
    _SOURCES.pop(source, None)
    _SOURCES[source] = frozenset(id(v) for v in state.values() if isinstance(v, torch.Tensor))
    while len(_SOURCES) > _MAX_SOURCES:
        _SOURCES.popitem(last=False)


def source_of(state: Mapping[str, Any]) -> Optional[str]:
    """The file a state dict was recently read from (see :func:`remember_source`), if known."""
    ids = {id(v) for v in state.values() if isinstance(v, torch.Tensor)}
    found = [source for source, known in _SOURCES.items() if ids and ids <= known]
    return found[-1] if found else None


def describe_state_dict(state: Mapping[str, Any]) -> str:
    """A short description of which model a state dict belongs to (for error messages)."""
    keys = [k for k in state if isinstance(k, str)]

    def has(*patterns):
        return any(re.search(p, k) for p in patterns for k in keys)

    if has(r'(^|\.)pools\.\d+\.', r'(^|\.)stem\.proj\.'):
        return 'a cast_mm CAST checkpoint'
    if has(r'(^|\.)pool[1-4]\.pool_block\.'):
        return 'an official CAST checkpoint'
    if has(r'patch_embed\.projection\.', r'(^|\.)layers\.\d+\.attn\.'):
        if has(r'^decode_head\.'):
            return ('an MMSegmentation VisionTransformer (Segmenter / UperNet ViT) checkpoint, '
                    'not CAST')
        return 'an OpenMMLab VisionTransformer checkpoint, not CAST'
    if has(r'(^|\.)patch_embed\.proj\.weight$') and has(r'(^|\.)blocks\.\d+\.attn\.'):
        if has(r'(^|\.)encoder\.') and has(r'(^|\.)decoder\.'):
            return 'an official Segmenter ViT checkpoint, not CAST'
        return 'a timm / DeiT ViT checkpoint, not CAST'
    if has(r'(^|\.)layer[1-4]\.\d+\.conv\d\.'):
        return 'a ResNet checkpoint, not CAST'
    return 'not a CAST checkpoint'


#: Weights a CAST checkpoint may lack for a model that trains them from scratch: the level
#: fusion of segmentation mode (absent in classification checkpoints, the official ADE20K and
#: Pascal Context start) and the final norm of classification mode (unused in segmentation).
_OPTIONAL_CAST_KEYS = (re.compile(r'^fusion\.'), re.compile(r'^norm\.'))


def check_cast_weights(module: torch.nn.Module, state_dict: Mapping[str, Any],
                       prefix: str = '', *args, strict: bool = True) -> None:
    """Refuse weights that are not CAST weights of ``module``'s kind, naming the file.

    :class:`cast_mm.models.CAST` runs it on every ``load_state_dict`` (also as a part of a
    larger model). Checkpoints with no keys under ``prefix`` pass (a checkpoint of another part
    of the model); otherwise the keys under ``prefix`` must hold CAST weights, with the shapes
    of ``module``, and, when ``strict``, every weight except the ones a CAST checkpoint may
    lack (level fusion, final norm) and no deeper blocks. With ``strict=False`` missing and
    extra weights pass, as torch and MMEngine let them; weights of another shape and files
    without a single CAST weight are still refused. (Usable as a ``load_state_dict`` pre-hook,
    whose positional arguments it takes; torch tells hooks nothing of the caller's
    ``strict``, so a hook checks strictly.)

    Raises:
        ForeignCheckpointError: another model's weights, or CAST weights of another size,
            depth (when ``strict``), position embedding or mode.
    """
    own = OrderedDict((k[len(prefix):], v) for k, v in state_dict.items()
                      if isinstance(k, str) and k.startswith(prefix))
    if not own and prefix:
        return
    source = source_of(own) or source_of(state_dict)
    name = f'checkpoint {source}' if source else 'the checkpoint being loaded'
    expected = module.state_dict()
    matching = [k for k in own if k in expected]
    # cls_token, pos_embed and norm.* are common to every ViT: only CAST's own weights count.
    if not [k for k in matching if not re.match(r'^(cls_token|pos_embed|norm\.)', k)]:
        where = f" under '{prefix}'" if prefix else ''
        raise ForeignCheckpointError(
            f'{name} is {describe_state_dict(state_dict)}: none of its {len(own)} tensors{where} '
            f'is a CAST weight (e.g. {sorted(own)[:3]}; CAST has cls_token, stem.proj.*, '
            'blocks.*, pools.*). Use a CAST checkpoint, or an official one (converted when '
            'loaded)')
    problems = []
    for key in matching:
        value, mine = own[key], expected[key]
        if isinstance(value, torch.Tensor) and value.shape != mine.shape:
            problems.append(f'{key} has shape {tuple(value.shape)} in the file, '
                            f'{tuple(mine.shape)} in the model')
    missing = [k for k in expected if k not in own
               and not any(p.match(k) for p in _OPTIONAL_CAST_KEYS)] if strict else []
    extra_blocks = sorted({int(m.group(1)) for k in own
                           for m in [re.match(r'^blocks\.(\d+)\.', k)]
                           if m and k not in expected}) if strict else []
    if missing:
        problems.append(f'{len(missing)} model weights are not in the file (e.g. '
                        f'{", ".join(missing[:3])})')
    if extra_blocks:
        problems.append(f'the file has blocks {extra_blocks[0]}..{extra_blocks[-1]} that the '
                        'model does not (a deeper CAST)')
    if problems:
        hints = []
        if any(k.startswith('pos_embed ') for k in problems):
            hints.append('a different position embedding (learned DeiT vs fixed sin-cos MoCo-v3) '
                         'or training size')
        if any(k.startswith(('cls_token ', 'stem.')) for k in problems):
            hints.append('a different width (CAST-S vs CAST-B)')
        hint = f' ({"; ".join(hints)})' if hints else ''
        raise ForeignCheckpointError(
            f'{name} holds CAST weights of another kind than this model{hint}: '
            + '; '.join(problems[:4]) + ('; ...' if len(problems) > 4 else ''))

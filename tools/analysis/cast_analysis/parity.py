"""Check converted official checkpoints against outputs recorded from the official code.

A fixture (a ``torch.save`` file with a ``cases`` mapping) holds cases, each with the official
model's constructor ``config``, its ``checkpoint`` in the original file layout, ``images_uint8``,
``superpixels`` and the recorded ``outputs``. :func:`check_case` converts the checkpoint, builds
the matching cast_mm model, runs it and compares every recorded output: sampled indices must be
identical, float outputs within ``rtol`` times the largest reference magnitude.
"""
import dataclasses
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from cast_mm.checkpoints import ConvertedCheckpoint, convert_official_checkpoint
from cast_mm.models import CAST, SuperpixelMaskTransformer
from cast_mm.models.backbones.cast import STEM_STRIDE
from cast_mm.models.execution_profile import FAST, LITERAL

#: Float outputs must agree within this fraction of the largest reference magnitude.
DEFAULT_RTOL = 1e-4


@dataclasses.dataclass
class ParityRow:
    """One compared quantity of one case."""
    case: str
    quantity: str
    ok: bool
    max_error: Optional[float] = None
    tolerance: Optional[float] = None
    note: str = ''

    def format(self) -> str:
        status = 'ok  ' if self.ok else 'FAIL'
        if self.max_error is None:
            return f'{status} {self.case:<16} {self.quantity:<28} {self.note}'
        return (f'{status} {self.case:<16} {self.quantity:<28} max_err={self.max_error:.3e} '
                f'tol={self.tolerance:.3e} {self.note}').rstrip()


class UnsupportedCase(Exception):
    """A case this version of cast_mm cannot build."""


@dataclasses.dataclass
class OfficialModel:
    """A cast_mm model assembled from a converted official checkpoint."""
    backbone: CAST
    converted: ConvertedCheckpoint
    decoder: Optional[SuperpixelMaskTransformer] = None

    def head(self, feature: Tensor) -> Tensor:
        if self.converted.head is None:
            raise UnsupportedCase('the checkpoint has no linear head to compute logits with')
        return F.linear(feature, self.converted.head['weight'], self.converted.head['bias'])


def build_official_model(config: Mapping[str, Any], checkpoint: Mapping[str, Any],
                         literal: bool = False) -> OfficialModel:
    """Convert ``checkpoint`` and build the cast_mm model the official ``config`` describes.

    ``literal`` builds the backbone and decoder with the literal execution profile
    (:data:`cast_mm.models.execution_profile.LITERAL`); by default the fast one
    (:data:`~cast_mm.models.execution_profile.FAST`, the defaults) is checked.
    """
    if config.get('patch_size', STEM_STRIDE) != STEM_STRIDE:
        raise UnsupportedCase(f"patch_size {config['patch_size']}: CAST's conv stem has stride 8")
    converted = convert_official_checkpoint(checkpoint)
    profile = LITERAL if literal else FAST
    arch = dict(embed_dims=config['embed_dim'], depths=list(config['depth']),
                num_heads=config['num_heads'], mlp_ratio=config.get('mlp_ratio', 4))
    stage = config.get('model_stage')
    backbone = CAST(
        arch=arch,
        mode=converted.arch['mode'],
        num_clusters=config['num_clusters'],
        img_size=config['img_size'],
        pos_embed=converted.arch['pos_embed'],
        token_resolution='feature' if stage == 'pretrain' else None,
        **profile['backbone'])
    backbone.load_state_dict(converted.backbone, strict=True)
    backbone.eval()
    decoder = None
    if converted.decoder is not None:
        dec_cfg = config.get('decoder', {})
        weights = converted.decoder
        d_model = weights['cls_emb'].shape[-1]
        decoder = SuperpixelMaskTransformer(
            num_classes=weights['cls_emb'].shape[1],
            in_channels=weights['proj_dec.weight'].shape[1],
            embed_dims=d_model,
            num_layers=dec_cfg.get('n_layers', len({k.split('.')[1] for k in weights
                                                    if k.startswith('blocks.')})),
            num_heads=dec_cfg.get('n_heads', d_model // 64),
            ffn_dims=weights['blocks.0.mlp.fc1.weight'].shape[0],
            **profile['decoder'])
        decoder.load_state_dict(weights, strict=True)
        decoder.eval()
    return OfficialModel(backbone, converted, decoder)


def _run(model: OfficialModel, inputs: Tensor, superpixels: Tensor,
         wanted: Mapping[str, Any]) -> Dict[str, Any]:
    """Compute the cast_mm counterparts of the recorded outputs named in ``wanted``."""
    feats = model.backbone.forward_features(inputs, superpixels)
    out: Dict[str, Any] = {}
    pools = {}
    for k in range(len(feats.pool_logits)):
        pools[f'pool{k + 1}'] = dict(
            logit=feats.pool_logits[k], centroid=feats.pool_tokens[k],
            sampled_inds=feats.sampled_inds[k], cls_token=feats.pool_cls[k])
    out['pools'] = pools
    for name in wanted:
        if name == 'cls_feature' and feats.cls_feature is not None:
            out[name] = feats.cls_feature
        elif name == 'segment_tokens' and feats.fused_tokens is not None:
            out[name] = feats.fused_tokens
        elif name == 'logits':
            pooled = feats.cls_feature if feats.cls_feature is not None \
                else feats.fused_tokens.mean(dim=1)
            out[name] = model.head(pooled)
        elif name == 'seg_logits' and model.decoder is not None:
            out[name] = model.decoder(feats.fused_tokens, feats.token_labels)
    return out


def _walk(reference: Mapping[str, Any], prefix: str = '') -> Iterator[Tuple[str, Any]]:
    for key, value in reference.items():
        if isinstance(value, Mapping):
            yield from _walk(value, f'{prefix}{key}.')
        else:
            yield prefix + key, value


def _lookup(tree: Mapping[str, Any], dotted: str) -> Optional[Any]:
    node: Any = tree
    for part in dotted.split('.'):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def compare_outputs(case: str, ours: Mapping[str, Any], reference: Mapping[str, Any],
                    rtol: float = DEFAULT_RTOL) -> List[ParityRow]:
    """One row per recorded quantity: exact for integer tensors, ``rtol`` scaled for floats."""
    rows = []
    for name, ref in _walk(reference):
        got = _lookup(ours, name)
        if not isinstance(ref, Tensor):
            continue
        if got is None:
            rows.append(ParityRow(case, name, False, note='not produced by cast_mm'))
            continue
        got = got.detach().cpu()
        if tuple(got.shape) != tuple(ref.shape):
            rows.append(ParityRow(case, name, False,
                                  note=f'shape {tuple(got.shape)} != {tuple(ref.shape)}'))
        elif not ref.dtype.is_floating_point:
            mismatches = int((got != ref).sum())
            rows.append(ParityRow(case, name, mismatches == 0, float(mismatches), 0.,
                                  note='' if mismatches == 0 else f'{mismatches} differ'))
        else:
            err = float((got.double() - ref.double()).abs().max()) if ref.numel() else 0.
            tol = rtol * float(ref.abs().max()) if ref.numel() else 0.
            rows.append(ParityRow(case, name, err <= tol, err, tol))
    return rows


def normalise_images(images_uint8: Tensor, mean: Any, std: Any) -> Tensor:
    """``uint8 (B, 3, H, W)`` -> float, ``(x / 255 - mean) / std`` as the fixtures record."""
    mean_t = torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (images_uint8.float() / 255. - mean_t) / std_t


def check_case(name: str, case: Mapping[str, Any], mean: Any, std: Any,
               rtol: float = DEFAULT_RTOL, literal: bool = False) -> List[ParityRow]:
    """Convert, build, run and compare one fixture case."""
    try:
        model = build_official_model(case['config'], case['checkpoint'], literal)
    except UnsupportedCase as err:
        return [ParityRow(name, 'model', False, note=f'unsupported: {err}')]
    inputs = normalise_images(case['images_uint8'], mean, std)
    with torch.no_grad():
        ours = _run(model, inputs, case['superpixels'], case['outputs'])
    return compare_outputs(name, ours, case['outputs'], rtol)


def check_fixture(fixture: Mapping[str, Any],
                  rtol: float = DEFAULT_RTOL,
                  cases: Optional[List[str]] = None,
                  on_row: Optional[Callable[[ParityRow], None]] = None,
                  literal: bool = False) -> List[ParityRow]:
    """Run every case (or the named ``cases``) of a loaded fixture."""
    rows = []
    for name, case in fixture['cases'].items():
        if cases and name not in cases:
            continue
        for row in check_case(name, case, fixture['image_mean'], fixture['image_std'], rtol,
                              literal):
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return rows

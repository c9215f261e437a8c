"""The execution profile of CAST: every fast-or-literal choice of a model, named once.

Each fast path computes what the official code computes, faster or in less memory (each gains
at least 10% time or memory on a train or inference step of the benchmark), and tests hold it
equal to the literal path: outputs within float rounding, in training the same losses and
gradients. Each choice is a constructor argument of one component; :data:`FAST` holds their
defaults and :data:`LITERAL` the values that compute step by step what the official code
computes (the parity oracle: ``tools/analysis/check_official_parity.py --literal``).

=================  =======================  ===========================  =========================
component          argument                 fast (default)               literal (official)
=================  =======================  ===========================  =========================
backbone           ``token_pooling``        ``'fast'``: segment means    ``'literal'``: resize stem
                                            as sparse weighted sums of   features and positions,
                                            the low-resolution grids     then average
backbone, decoder  ``fused_attn``           ``F.scaled_dot_product_``    explicit softmax,
                                            ``attention`` (dropout as    ``nn.Dropout``
                                            its ``dropout_p``)
backbone           ``fps_backend``          ``'native'``: a kernel for   ``'dgl'``: DGL's CPU
                                            the device, DGL's indices    kernel, the reference
decode_head        ``loss_by_superpixel``   loss from per-superpixel     mmseg's loss on pixel
                                            label counts                 logits
segmentor          ``predict_by_segments``  one argmax per superpixel    mmseg's per-pixel
                                                                         post-processing
=================  =======================  ===========================  =========================

The decoder is the mask transformer (``SuperpixelMaskTransformer`` and its head). Configs:
``configs/_base_/literal.py`` holds the literal values as config entries
(``literal_classification``, ``literal_segmentation``) that a config merges into its ``model``
(tests keep it equal to :data:`LITERAL`); :func:`cfg_options` gives the same as
``--cfg-options``.
"""
import copy
from typing import Any, Dict

#: The components with fast and literal choices: the backbone (``cast_mm.CAST``), the
#: mask-transformer decoder, every CAST decode head (``SegmentDecodeHead``) and the segmentor
#: (``SuperpixelEncoderDecoder``).
COMPONENTS = ('backbone', 'decoder', 'decode_head', 'segmentor')

#: Constructor arguments of the fast paths, per component, at their default values.
FAST: Dict[str, Dict[str, Any]] = dict(
    backbone=dict(token_pooling='fast', fused_attn=True, fps_backend='native'),
    decoder=dict(fused_attn=True),
    decode_head=dict(loss_by_superpixel=True),
    segmentor=dict(predict_by_segments=True),
)

#: The same arguments set to compute literally what the official code computes.
LITERAL: Dict[str, Dict[str, Any]] = dict(
    backbone=dict(token_pooling='literal', fused_attn=False, fps_backend='dgl'),
    decoder=dict(fused_attn=False),
    decode_head=dict(loss_by_superpixel=False),
    segmentor=dict(predict_by_segments=False),
)

PROFILES = dict(fast=FAST, literal=LITERAL)

#: Interpolation of the stem features onto the superpixel map (segmentation token pooling).
FEATURE_INTERPOLATION = 'bilinear'
#: Interpolation of the position table onto the stem grid or the superpixel map.
POSITION_INTERPOLATION = 'bicubic'


def _profile(profile) -> Dict[str, Dict[str, Any]]:
    if isinstance(profile, str):
        if profile not in PROFILES:
            raise ValueError(f'unknown execution profile {profile!r}; choose one of '
                             f'{tuple(PROFILES)}')
        return PROFILES[profile]
    return profile


def model_cfg(profile, task: str) -> Dict[str, Any]:
    """The ``model`` entries that select ``profile`` (``'fast'``, ``'literal'`` or a dict like
    :data:`FAST`) in a CAST config of ``task``.

    ``'classification'`` (or ``'cls'``): a classifier with a CAST backbone;
    ``'segmentation'`` (or ``'seg'``): ``SuperpixelEncoderDecoder`` with the mask-transformer
    head (the decoder's keys are the head's arguments).
    """
    choices = _profile(profile)
    task = dict(cls='classification', seg='segmentation').get(task, task)
    if task == 'classification':
        return dict(backbone=dict(choices['backbone']))
    if task == 'segmentation':
        return dict(backbone=dict(choices['backbone']),
                    decode_head=dict(choices['decoder'], **choices['decode_head']),
                    **choices['segmentor'])
    raise ValueError(f"task must be 'classification' or 'segmentation', got {task!r}")


def cfg_options(profile, task: str) -> Dict[str, Any]:
    """:func:`model_cfg` as ``--cfg-options`` (``{'model.backbone.fused_attn': False, ...}``)."""
    options = {}

    def flatten(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                flatten(f'{prefix}.{key}', item)
        else:
            options[prefix] = copy.deepcopy(value)

    flatten('model', model_cfg(profile, task))
    return options

"""The fast paths of CAST and the switches that make it compute literally as the official code.

Every fast path is a constructor argument of ``cast_mm.CAST`` (and of the layers that have
one), defaulting to :data:`FAST_PATHS`; :data:`LITERAL_PATHS` gives the same arguments the
values that reproduce the official computation step by step. Tests hold both equal within
float rounding, and ``tools/analysis/check_official_parity.py [--literal]`` checks either
against the recorded official outputs.

============================  ===========================  ==================================
argument                      fast (default)               literal (official)
============================  ===========================  ==================================
``token_pooling``             ``'fast'``: segment means    ``'literal'``: resize stem
                              as sparse weighted sums of   features and positions to the
                              the low-resolution grids     superpixel map, then average
``fused_attn``                ``F.scaled_dot_product_``    explicit softmax attention
                              ``attention``
``channels_last_stem``        channels-last conv stem      contiguous (NCHW) conv stem
``hashed_dropout``            CPU dropout masks hashed     ``torch.nn.Dropout``
                              from a seed, in parallel,
                              recomputed in the backward
============================  ===========================  ==================================

``hashed_dropout`` changes which elements a given seed drops, not the distribution (see
:mod:`cast_mm.ops.hashed_dropout`); it matters in training only.
"""

#: Constructor arguments of the fast paths, at their default values.
FAST_PATHS = dict(token_pooling='fast', fused_attn=True, channels_last_stem=True,
                  hashed_dropout=True)

#: The same arguments set to compute literally what the official code computes.
LITERAL_PATHS = dict(token_pooling='literal', fused_attn=False, channels_last_stem=False,
                     hashed_dropout=False)

#: Interpolation of the stem features onto the superpixel map (segmentation token pooling).
FEATURE_INTERPOLATION = 'bilinear'
#: Interpolation of the position table onto the stem grid or the superpixel map.
POSITION_INTERPOLATION = 'bicubic'

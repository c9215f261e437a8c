"""One training step of the mask-transformer segmentation configs equals the official one.

``official_train_step_public.pt`` records one official Segmenter step in float64 (loss, every
gradient, BN statistics after the step). Each config is built as it is, with only the model size
(and no dropout / drop path) taken from the fixture, and loaded through the converter.

Padded token slots: with ``mask_padding=True`` (our configs) padded slots are masked out of
attention and pooling, so a padded batch computes something else than the official model, which
lets zero padded tokens take part; the level-fusion BatchNorm counts the padded slots either way,
as officially. The ``padded`` case therefore runs with ``mask_padding=False``, the official
setting; the ``equal`` case (no padded slots) runs with the configs' own setting.
"""
import os.path as osp

import pytest
import torch
from helpers import SHARED, load_config

FIXTURE = osp.join(SHARED, 'fixtures', 'official_train_step_public.pt')
CONFIGS = ['cast-s_ade20k.py', 'cast-s_pascal-context.py', 'cast-b_ade20k.py',
           'cast-b_pascal-context.py']
#: float64 agreement, relative to the largest magnitude of each compared tensor.
RTOL = 1e-10


@pytest.fixture(scope='module')
def fixture():
    if not osp.exists(FIXTURE):
        pytest.skip(f'official training-step fixture not found at {FIXTURE} (the shared '
                    'folder beside the repository is absent, as in a user clone)')
    return torch.load(FIXTURE, map_location='cpu', weights_only=False)


def build_from_config(name, official, literal, mask_padding):
    """The config's segmentor with the fixture's model size, float64, converted weights."""
    from mmengine.registry import DefaultScope

    from cast_mm.checkpoints import convert_official_checkpoint
    from cast_mm.models.execution_profile import LITERAL
    from cast_mm.registry import MODELS

    cfg = load_config(name)
    size = official['config']
    decoder = size['decoder']
    backbone = cfg.model.backbone
    backbone.update(
        arch=dict(embed_dims=size['embed_dim'], depths=list(size['depth']),
                  num_heads=size['num_heads'], mlp_ratio=size['mlp_ratio']),
        num_clusters=list(size['num_clusters']), img_size=size['img_size'], init_cfg=None,
        drop_path_rate=0.)
    if literal:
        backbone.update(LITERAL['backbone'])
    if mask_padding is not None:
        backbone.mask_padding = mask_padding
    cfg.model.decode_head.update(
        in_channels=size['embed_dim'], channels=decoder['d_model'], num_heads=decoder['n_heads'],
        num_layers=decoder['n_layers'], ffn_dims=decoder['d_ff'],
        num_classes=size['num_classes'], dropout=0., fused_attn=not literal)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
    converted = convert_official_checkpoint(official['checkpoint'])
    model.load_state_dict(converted.state_dict(), strict=True)
    # The fixture ran without dropout; the level fusion's fixed 0.2 (official too) included.
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.
    return model.double().train(), cfg


def official_to_ours(official):
    """Official parameter / buffer name -> ours, through the converter (it only renames).

    Every official tensor is replaced by a constant tensor of its index (same shape, so the
    converter reads the same sizes), and the index found under each of our names tells which
    official tensor went there.
    """
    from cast_mm.checkpoints import convert_official_checkpoint
    checkpoint = official['checkpoint']
    keys = list(checkpoint['model'])
    marked = {k: torch.full(v.shape, float(i), dtype=torch.float64) if v.is_floating_point()
              else v for i, (k, v) in enumerate(checkpoint['model'].items())}
    converted = convert_official_checkpoint(dict(checkpoint, model=marked)).state_dict()
    return {keys[int(v.flatten()[0])]: ours for ours, v in converted.items()
            if v.is_floating_point()}


def run_step(model, official, case):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    from cast_analysis.parity import normalise_images
    images = normalise_images(case['images_uint8'], official['image_mean'],
                              official['image_std']).double()
    samples = []
    for labels, superpixels in zip(case['labels'], case['superpixels']):
        sample = SegDataSample(metainfo=dict(img_shape=tuple(labels.shape),
                                             ori_shape=tuple(labels.shape),
                                             pad_shape=tuple(labels.shape)))
        sample.gt_sem_seg = PixelData(data=labels[None])
        sample.superpixels = PixelData(data=superpixels[None])
        samples.append(sample)
    losses = model.loss(images, samples)
    loss = sum(v for k, v in losses.items() if 'loss' in k)
    model.zero_grad()
    loss.backward()
    return loss


def relative_error(got, want, floor=0.):
    """Largest error over the largest reference magnitude (at least ``floor``)."""
    scale = max(float(want.abs().max()), floor)
    return float((got - want).abs().max()) / (scale if scale > 0 else 1.)


@pytest.mark.parametrize('literal', [False, True], ids=['fast', 'literal'])
@pytest.mark.parametrize('case_name,mask_padding', [('equal', None), ('padded', False)],
                         ids=['equal-config-setting', 'padded-official-setting'])
@pytest.mark.parametrize('name', CONFIGS)
def test_training_step_matches_the_official_one(fixture, name, case_name, mask_padding,
                                                literal):
    case = fixture['cases'][case_name]
    model, cfg = build_from_config(name, fixture, literal, mask_padding)
    if mask_padding is None:
        assert model.backbone.mask_padding == cfg.model.backbone.mask_padding
    loss = run_step(model, fixture, case)
    assert relative_error(loss.detach(), case['loss'].double()) < RTOL

    names = official_to_ours(fixture)
    want = {names[k]: v for k, v in case['grads'].items()}
    params = dict(model.named_parameters())
    # Some gradients are zero analytically and recorded as rounding noise (1e-20 .. 1e-11,
    # e.g. biases followed by a softmax or a LayerNorm): their scale is floored at 1e-6 of
    # the largest gradient.
    floor = 1e-6 * max(float(g.abs().max()) for g in want.values())
    for key, grad in want.items():
        got = params[key].grad
        assert got is not None, f'{key} got no gradient'
        assert relative_error(got, grad.double(), floor) < RTOL, key
    # Nothing else gets a gradient (the official encoder's ImageNet head and final norm are
    # not part of our segmentation backbone at all).
    extra = {k for k, p in params.items() if p.grad is not None and p.grad.abs().sum() > 0}
    assert extra <= set(want), sorted(extra - set(want))

    ours = dict(model.named_buffers())
    for key, value in case['buffers_after_step'].items():
        assert relative_error(ours[names[key]], value.double()) < RTOL, key


def test_padded_batch_differs_with_the_configs_masking(fixture):
    """What the docstring says: mask_padding=True is not the official padded computation."""
    case = fixture['cases']['padded']
    model, _ = build_from_config('cast-s_ade20k.py', fixture, False, True)
    loss = run_step(model, fixture, case)
    assert relative_error(loss.detach(), case['loss'].double()) > 1e-6

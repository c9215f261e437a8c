"""Decode losses computed per superpixel equal mmseg's pixel-level losses, value and gradient."""
import pytest
import torch
from helpers import TINY_ARCH, TINY_CLUSTERS, grid_superpixels, tiny_cast
from mmengine.registry import DefaultScope
from mmengine.structures import PixelData
from mmseg.models.losses import CrossEntropyLoss, DiceLoss, accuracy
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from cast_mm.models.heads import segment_decode_head
from cast_mm.models.losses import (decomposes_over_segments, segment_accuracy,
                                   segment_cross_entropy, segment_label_histogram)
from cast_mm.ops import segment_to_pixels

NUM_CLASSES = 5
IGNORE = 255


def _close(actual, expected, rtol):
    """Equal within ``rtol`` of the largest magnitude of ``expected``."""
    scale = expected.abs().max().item()
    error = (actual - expected).abs().max().item()
    assert error <= rtol * scale, f'max error {error:.3e} > {rtol:.0e} x {scale:.3e}'


def _problem(dtype, seed=0, ignore=IGNORE, ignored=True):
    """Scores of 2 images x 12 slots (slot 11 unused: a padded slot), irregular superpixels,
    labels with (``ignored``) an ignored band and, in the second image, a padded border."""
    gen = torch.Generator().manual_seed(seed)
    token_labels = torch.randint(0, 11, (2, 24, 20), generator=gen)
    token_labels[:, :6, :5] = 3  # a large superpixel with several labels
    labels = torch.randint(0, NUM_CLASSES, (2, 24, 20), generator=gen)
    if ignored:
        labels[0, 10:13] = ignore
        labels[1, :, 16:] = ignore
        labels[1, 20:] = ignore
    scores = torch.randn(2, 12, NUM_CLASSES, generator=gen, dtype=dtype) * 3
    return scores.requires_grad_(), token_labels, labels


def _both(loss, dtype, ignore=IGNORE, **problem):
    scores, token_labels, labels = _problem(dtype, ignore=ignore, **problem)
    pixel_logits = segment_to_pixels(scores, token_labels)
    expected = loss(pixel_logits, labels, ignore_index=ignore)
    (expected_grad, ) = torch.autograd.grad(expected, scores)
    histogram = segment_label_histogram(token_labels, labels, 12, NUM_CLASSES, ignore)
    actual = segment_cross_entropy(loss, scores, histogram, ignore)
    (actual_grad, ) = torch.autograd.grad(actual, scores)
    return (actual, actual_grad), (expected, expected_grad)


LOSSES = {
    'mean': dict(),
    'avg_non_ignore': dict(avg_non_ignore=True),
    'sum_weighted': dict(reduction='sum', loss_weight=0.4),
    'mean_weighted': dict(loss_weight=2.5, avg_non_ignore=True),
}


@pytest.mark.parametrize('dtype,rtol', [(torch.float64, 1e-12), (torch.float32, 1e-6)])
@pytest.mark.parametrize('name', list(LOSSES))
def test_cross_entropy_matches_pixels(name, dtype, rtol):
    (loss, grad), (ref, ref_grad) = _both(CrossEntropyLoss(**LOSSES[name]), dtype)
    assert loss.dtype == ref.dtype == dtype
    _close(loss, ref, rtol)
    _close(grad, ref_grad, rtol)
    assert torch.equal(grad[:, 11], torch.zeros_like(grad[:, 11]))  # the padded slot


@pytest.mark.parametrize('dtype,rtol', [(torch.float64, 1e-12), (torch.float32, 1e-6)])
@pytest.mark.parametrize('avg_non_ignore', [False, True])
def test_class_weights_match_pixels(avg_non_ignore, dtype, rtol):
    weights = [0.5, 1.0, 2.0, 0.25, 1.5]
    # mmseg looks up class_weight[label] for every pixel, so its pixel loss runs only when
    # the ignored label is a class index (here 2) or no pixel is ignored.
    for ignore, ignored in [(2, True), (IGNORE, False)]:
        loss = CrossEntropyLoss(class_weight=weights, avg_non_ignore=avg_non_ignore)
        (value, grad), (ref, ref_grad) = _both(loss, dtype, ignore=ignore, ignored=ignored)
        _close(value, ref, rtol)
        _close(grad, ref_grad, rtol)


def test_class_weights_with_ignored_pixels():
    """Where mmseg's pixel loss fails (class_weight[255]), the superpixel loss gives torch's
    weighted mean over the non-ignored pixels, or says why it cannot."""
    weights = torch.tensor([0.5, 1.0, 2.0, 0.25, 1.5], dtype=torch.float64)
    scores, token_labels, labels = _problem(torch.float64)
    histogram = segment_label_histogram(token_labels, labels, 12, NUM_CLASSES, IGNORE)
    loss = CrossEntropyLoss(class_weight=weights.tolist(), avg_non_ignore=True)
    pixel_logits = segment_to_pixels(scores, token_labels)
    total = torch.nn.functional.cross_entropy(pixel_logits, labels, weight=weights,
                                              ignore_index=IGNORE, reduction='sum')
    weight_sum = weights[labels[labels != IGNORE]].sum()
    expected = total / (weight_sum + torch.finfo(torch.float32).eps)  # mmseg's epsilon
    _close(segment_cross_entropy(loss, scores, histogram, IGNORE), expected, 1e-12)
    with pytest.raises(ValueError, match='avg_non_ignore=True'):
        segment_cross_entropy(CrossEntropyLoss(class_weight=weights.tolist()), scores,
                              histogram, IGNORE)


def test_accuracy_matches_pixels():
    scores, token_labels, labels = _problem(torch.float32)
    histogram = segment_label_histogram(token_labels, labels, 12, NUM_CLASSES, IGNORE)
    expected = accuracy(segment_to_pixels(scores, token_labels), labels, ignore_index=IGNORE)
    actual = segment_accuracy(scores, histogram)
    assert actual.shape == expected.shape == (1, )
    assert torch.equal(actual, expected)
    assert 0 < actual.item() < 100


def test_histogram_counts_and_label_checks():
    scores, token_labels, labels = _problem(torch.float32)
    histogram = segment_label_histogram(token_labels, labels, 12, NUM_CLASSES, IGNORE)
    assert histogram.shape == (2, 12, NUM_CLASSES + 1)
    assert histogram.sum() == labels.numel()
    assert histogram[..., -1].sum() == (labels == IGNORE).sum()
    assert histogram[0, 3, 1] == ((token_labels[0] == 3) & (labels[0] == 1)).sum()
    assert histogram[:, 11].sum() == 0
    labels[0, 0, 0] = NUM_CLASSES
    with pytest.raises(ValueError, match='label 5 is neither a class'):
        segment_label_histogram(token_labels, labels, 12, NUM_CLASSES, IGNORE)
    with pytest.raises(ValueError, match='one size'):
        segment_label_histogram(token_labels, labels[:, :-1], 12, NUM_CLASSES, IGNORE)


def test_which_losses_decompose():
    assert decomposes_over_segments(CrossEntropyLoss())
    assert decomposes_over_segments(CrossEntropyLoss(class_weight=[1.] * 3, reduction='sum'))
    assert not decomposes_over_segments(CrossEntropyLoss(reduction='none'))
    assert not decomposes_over_segments(CrossEntropyLoss(use_sigmoid=True))
    assert not decomposes_over_segments(DiceLoss())

    class Reweighted(CrossEntropyLoss):
        pass

    assert not decomposes_over_segments(Reweighted())


# ------------------------------------------------------------------------------ the heads
HEADS = [
    dict(type='cast_mm.SuperpixelMaskTransformerHead', channels=48, num_heads=4, dropout=0.),
    dict(type='cast_mm.HierarchyMLPHead', channels=32, dropout_ratio=0.),
    dict(type='cast_mm.SegmentMLPHead', channels=32),
]
CE = dict(type='CrossEntropyLoss', avg_non_ignore=True)


@pytest.fixture(scope='module')
def features():
    backbone = tiny_cast('segmentation', pool_num_heads=4).train()
    superpixels = grid_superpixels(2, 64, 64, cell=8)
    superpixels[1] = superpixels[1] // 2  # fewer superpixels: padded token slots
    with torch.no_grad():
        feats = backbone.forward_features(torch.randn(2, 3, 64, 64), superpixels)
    return feats


def _samples(seed=0, size=(64, 64)):
    gen = torch.Generator().manual_seed(seed)
    samples = []
    for i in range(2):
        labels = torch.randint(0, NUM_CLASSES, size, generator=gen)
        labels[20:26] = IGNORE
        if i == 1:
            labels[:, 50:] = IGNORE  # batch padding
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=labels[None])
        samples.append(sample)
    return samples


def _build(cfg, dtype, **kwargs):
    with DefaultScope.overwrite_default_scope('mmseg'):
        head = MODELS.build(dict(cfg, in_channels=48, num_classes=NUM_CLASSES, **kwargs))
    head.init_weights()
    return head.to(dtype)


def _loss_and_grads(head, feats, samples, loss_by_superpixel):
    head.loss_by_superpixel = loss_by_superpixel
    head.zero_grad()
    torch.manual_seed(1)
    losses = head.loss(feats, samples, None)
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    grads = {n: p.grad.clone() for n, p in head.named_parameters() if p.grad is not None}
    return losses, grads


def _cast(feats, dtype):
    import dataclasses
    return dataclasses.replace(
        feats, fused_tokens=feats.fused_tokens.to(dtype),
        stage_tokens=[t.to(dtype) for t in feats.stage_tokens],
        pool_logits=[t.to(dtype) for t in feats.pool_logits])


@pytest.mark.parametrize('loss_decode', [CE, dict(type='CrossEntropyLoss')],
                         ids=['avg_non_ignore', 'all_pixels'])
@pytest.mark.parametrize('head_cfg', HEADS, ids=lambda cfg: cfg['type'])
def test_head_losses_match_the_pixel_path(head_cfg, loss_decode, features, monkeypatch):
    """float64: losses and every parameter gradient equal; float32: the loss within 1e-6, and
    the gradients about as close to the float64 ones as float32 pixel gradients are (within
    1.5x of their error, or 5e-6 of the largest gradient: float32 sums over the image)."""
    head = _build(head_cfg, torch.float64, loss_decode=loss_decode)
    head32 = _build(head_cfg, torch.float32, loss_decode=loss_decode)
    head32.load_state_dict({k: v.float() for k, v in head.state_dict().items()})
    feats, feats32, samples = _cast(features, torch.float64), features, _samples()
    ref, ref_grads = _loss_and_grads(head, feats, samples, loss_by_superpixel=False)
    ref32, ref32_grads = _loss_and_grads(head32, feats32, samples, loss_by_superpixel=False)

    def no_pixels(*args):
        raise AssertionError('pixel logits built for a decomposable loss')

    monkeypatch.setattr(segment_decode_head, 'segment_to_pixels', no_pixels)
    losses, grads = _loss_and_grads(head, feats, samples, loss_by_superpixel=True)
    losses32, grads32 = _loss_and_grads(head32, feats32, samples, loss_by_superpixel=True)
    assert set(losses) == set(ref) == {'loss_ce', 'acc_seg'}
    _close(losses['loss_ce'], ref['loss_ce'], 1e-12)
    _close(losses32['loss_ce'], ref32['loss_ce'], 1e-6)
    assert losses32['loss_ce'].dtype == torch.float32
    assert torch.equal(losses['acc_seg'], ref['acc_seg'])
    assert torch.equal(losses32['acc_seg'], ref32['acc_seg'])
    assert set(grads) == set(ref_grads) == set(grads32)
    for name, grad in grads.items():
        _close(grad, ref_grads[name], 1e-10)
        exact = ref_grads[name]
        scale = exact.abs().max()
        error = (grads32[name].double() - exact).abs().max() / scale
        pixel_error = (ref32_grads[name].double() - exact).abs().max() / scale
        assert error <= max(1.5 * pixel_error, 5e-6), name
        assert error <= 1e-5, name


def test_non_decomposable_losses_keep_the_pixel_path(features, monkeypatch):
    """Dice needs pixel logits: built once, beside the superpixel cross entropy."""
    losses = [CE, dict(type='DiceLoss', loss_weight=0.5),
              dict(type='CrossEntropyLoss', loss_name='loss_ce', loss_weight=0.3)]
    head = _build(HEADS[2], torch.float64, loss_decode=losses)
    feats, samples = _cast(features, torch.float64), _samples()
    ref, ref_grads = _loss_and_grads(head, feats, samples, loss_by_superpixel=False)
    calls = []
    original = segment_decode_head.segment_to_pixels

    def counted(*args):
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(segment_decode_head, 'segment_to_pixels', counted)
    out, grads = _loss_and_grads(head, feats, samples, loss_by_superpixel=True)
    assert len(calls) == 1
    assert set(out) == {'loss_ce', 'loss_dice', 'acc_seg'}
    for key in ('loss_ce', 'loss_dice'):
        _close(out[key], ref[key], 1e-10)
    for name, grad in grads.items():
        _close(grad, ref_grads[name], 1e-10)


def test_labels_of_another_size_take_the_pixel_path(features):
    """Logits are resized to the labels (bilinear, as mmseg does): not constant on segments."""
    head = _build(HEADS[2], torch.float64, loss_decode=CE)
    feats, samples = _cast(features, torch.float64), _samples(size=(48, 48))
    ref, _ = _loss_and_grads(head, feats, samples, loss_by_superpixel=False)
    out, _ = _loss_and_grads(head, feats, samples, loss_by_superpixel=True)
    assert torch.equal(out['loss_ce'], ref['loss_ce'])


def test_mask_transformer_head_refuses_dropout_ratio():
    with pytest.raises(ValueError, match='dropout_ratio'):
        _build(HEADS[0], torch.float32, dropout_ratio=0.1)


def test_segmentor_loss_with_padded_batch():
    """Through the data preprocessor: images of two sizes are padded, labels with 255."""
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(dict(
            type='cast_mm.SuperpixelEncoderDecoder',
            data_preprocessor=dict(type='cast_mm.SuperpixelSegDataPreProcessor',
                                   mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                                   bgr_to_rgb=True, pad_val=0, seg_pad_val=255,
                                   size=(64, 64)),
            backbone=dict(type='cast_mm.CAST', arch=TINY_ARCH, mode='segmentation',
                          num_clusters=TINY_CLUSTERS, img_size=64, pool_num_heads=4),
            decode_head=dict(HEADS[0], in_channels=48, num_classes=NUM_CLASSES,
                             loss_decode=CE)))
    model.init_weights()
    model.double().train()
    gen = torch.Generator().manual_seed(3)
    inputs, samples = [], []
    for height, width in [(64, 64), (48, 56)]:
        inputs.append(torch.randint(0, 256, (3, height, width), generator=gen,
                                    dtype=torch.uint8))
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(
            data=torch.randint(0, NUM_CLASSES, (1, height, width), generator=gen))
        sample.superpixels = PixelData(data=grid_superpixels(1, height, width, cell=8))
        sample.set_metainfo(dict(img_shape=(height, width), ori_shape=(height, width)))
        samples.append(sample)
    data = model.data_preprocessor(dict(inputs=inputs, data_samples=samples), training=True)
    assert (data['data_samples'][1].gt_sem_seg.data[:, 48:] == 255).all()
    results = {}
    for flag in (False, True):
        model.decode_head.loss_by_superpixel = flag
        model.zero_grad()
        torch.manual_seed(0)
        losses = model.loss(data['inputs'].double(), data['data_samples'])
        losses['decode.loss_ce'].backward()
        results[flag] = (losses, {n: p.grad.clone() for n, p in model.named_parameters()
                                  if p.grad is not None})
    (fast, fast_grads), (ref, ref_grads) = results[True], results[False]
    _close(fast['decode.loss_ce'], ref['decode.loss_ce'], 1e-12)
    assert torch.equal(fast['decode.acc_seg'], ref['decode.acc_seg'])
    assert set(fast_grads) == set(ref_grads) and len(fast_grads) > 40
    largest = max(grad.abs().max().item() for grad in ref_grads.values())
    for name, grad in fast_grads.items():
        # gradients that are zero up to rounding (a BN-normalised bias) are held to the model's
        # scale, the others to their own
        error = (grad - ref_grads[name]).abs().max().item()
        assert error <= 1e-9 * ref_grads[name].abs().max().item() + 1e-12 * largest, name

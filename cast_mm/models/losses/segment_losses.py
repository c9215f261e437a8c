"""Exact pixel-level losses of per-superpixel class scores, without pixel-level logits.

When every pixel takes the class scores of its superpixel, a loss that is a sum of per-pixel
terms depending only on (scores, label) is a sum over superpixels of the per-class pixel counts
of the superpixel times the term of that class. Cross entropy becomes
``sum_n sum_c count[n, c] * w_c * -log_softmax(scores[n])_c``: the same number as over pixels,
from a ``(B, N, num_classes)`` tensor instead of a ``(B, num_classes, H, W)`` one.

The functions below reproduce mmseg's ``CrossEntropyLoss`` (softmax form) and ``accuracy``
exactly, including how they normalise: by all pixels, by the non-ignored ones
(``avg_non_ignore``), or by the class weights of the labels.
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.models.losses import CrossEntropyLoss
from torch import Tensor

from cast_mm.ops.precision import autocast_disabled

#: mmseg adds float32's epsilon to every denominator of its losses and accuracy.
_EPS = torch.finfo(torch.float32).eps


def decomposes_over_segments(loss_module: nn.Module) -> bool:
    """Whether ``loss_module`` can be computed exactly from per-superpixel label counts.

    True for mmseg's softmax ``CrossEntropyLoss`` (any ``class_weight``, ``avg_non_ignore``,
    ``loss_weight``) with ``reduction`` 'mean' or 'sum'. Subclasses, the sigmoid and mask
    forms, ``reduction='none'`` and every other loss (Dice, Lovasz, focal, ...) need the
    pixel-level logits.
    """
    return (type(loss_module) is CrossEntropyLoss and not loss_module.use_sigmoid
            and not loss_module.use_mask and loss_module.reduction in ('mean', 'sum'))


def segment_label_histogram(token_labels: Tensor, labels: Tensor, num_slots: int,
                            num_classes: int, ignore_index: int) -> Tensor:
    """Pixel counts of every label inside every superpixel.

    Args:
        token_labels (Tensor): ``(B, H, W)`` superpixel ids, each below ``num_slots``.
        labels (Tensor): ``(B, H, W)`` class labels at the same size; every value is a class
            (``0 .. num_classes - 1``) or ``ignore_index``.
        num_slots (int): superpixel slots per image (``N``).
        num_classes (int): number of classes (``C``).
        ignore_index (int): label of pixels that take no part in the loss.

    Returns:
        Tensor: ``(B, N, C + 1)`` int64; ``[b, n, c]`` counts the pixels of superpixel ``n``
        of image ``b`` labelled ``c``, and the last bin the ignored ones.
    """
    if token_labels.shape != labels.shape or labels.dim() != 3:
        raise ValueError(f'superpixel ids {tuple(token_labels.shape)} and labels '
                         f'{tuple(labels.shape)} must be (B, H, W) maps of one size')
    labels = labels.long()
    ignored = labels == ignore_index
    unknown = ~ignored & ((labels < 0) | (labels >= num_classes))
    if bool(unknown.any()):  # the one host read of a training step's loss
        value = int(labels[unknown][0])
        raise ValueError(f'label {value} is neither a class (0..{num_classes - 1}) nor '
                         f'ignore_index ({ignore_index})')
    bins = num_classes + 1
    batch = labels.shape[0]
    offsets = torch.arange(batch, device=labels.device).view(batch, 1, 1) * num_slots
    index = (token_labels.long() + offsets) * bins + labels.masked_fill(ignored, num_classes)
    # Not bincount: on GPUs it reads the index range on the host.
    counts = torch.zeros(batch * num_slots * bins, dtype=torch.long, device=labels.device)
    counts.index_add_(0, index.view(-1), torch.ones_like(index.view(-1)))
    return counts.view(batch, num_slots, bins)


def _loss_dtype(scores: Tensor) -> torch.dtype:
    # Half-precision scores (autocast) are reduced in float32, as autocast runs cross entropy.
    return torch.float32 if scores.dtype in (torch.float16, torch.bfloat16) else scores.dtype


def segment_cross_entropy(loss_module: CrossEntropyLoss, scores: Tensor, histogram: Tensor,
                          ignore_index: int) -> Tensor:
    """mmseg's ``loss_module(pixel_logits, labels, ignore_index=ignore_index)``, per superpixel.

    Args:
        loss_module (CrossEntropyLoss): a loss for which :func:`decomposes_over_segments`
            holds; its ``class_weight``, ``avg_non_ignore``, ``reduction`` and
            ``loss_weight`` are followed.
        scores (Tensor): ``(B, N, C)`` class scores per superpixel slot.
        histogram (Tensor): ``(B, N, C + 1)`` label counts from
            :func:`segment_label_histogram` (slots without pixels have zero counts).
        ignore_index (int): the ignored label the histogram was built with.

    Returns:
        Tensor: the scalar loss, equal to the pixel computation up to float rounding.
    """
    if not decomposes_over_segments(loss_module):
        raise ValueError(f'{type(loss_module).__name__} does not decompose over superpixels')
    with autocast_disabled(scores.device):
        return _segment_cross_entropy(loss_module, scores, histogram, ignore_index)


def _segment_cross_entropy(loss_module: CrossEntropyLoss, scores: Tensor, histogram: Tensor,
                           ignore_index: int) -> Tensor:
    num_classes = scores.shape[-1]
    dtype = _loss_dtype(scores)
    log_probs = F.log_softmax(scores.to(dtype), dim=-1)
    counts = histogram[..., :num_classes].to(dtype)
    class_weight: Optional[Tensor] = None
    if loss_module.class_weight is not None:
        class_weight = log_probs.new_tensor(loss_module.class_weight)
        if class_weight.numel() != num_classes:
            raise ValueError(f'class_weight has {class_weight.numel()} entries for '
                             f'{num_classes} classes')
        counts = counts * class_weight
    total = -(counts * log_probs).sum()
    if loss_module.reduction == 'sum':
        return loss_module.loss_weight * total

    # Pixel counts stay on the device (float64 holds them exactly): no host read.
    num_ignored = histogram[..., num_classes].sum().to(torch.float64)
    if class_weight is None:
        num_pixels = histogram.sum().to(torch.float64)
        avg_factor = num_pixels - num_ignored if loss_module.avg_non_ignore else num_pixels
        avg_factor = avg_factor.to(dtype)
    else:
        avg_factor = counts.sum()
        if not loss_module.avg_non_ignore:
            # mmseg weighs every pixel, ignored ones included, by class_weight[label].
            if not -num_classes <= ignore_index < num_classes:
                if int(num_ignored):  # read only in this configuration
                    raise ValueError(
                        f'CrossEntropyLoss with class_weight and avg_non_ignore=False '
                        f'averages over class_weight[label] of every pixel, which does not '
                        f'exist for the {int(num_ignored)} pixels labelled '
                        f'ignore_index={ignore_index}; set avg_non_ignore=True')
            else:
                avg_factor = avg_factor + class_weight[ignore_index] * num_ignored.to(dtype)
    return loss_module.loss_weight * (total / (avg_factor + _EPS))


def segment_accuracy(scores: Tensor, histogram: Tensor) -> Tensor:
    """mmseg's top-1 ``accuracy`` (percent of non-ignored pixels) of per-superpixel scores.

    Args:
        scores (Tensor): ``(B, N, C)`` class scores per superpixel slot.
        histogram (Tensor): ``(B, N, C + 1)`` label counts, the last bin ignored pixels.

    Returns:
        Tensor: ``(1,)`` float32, as mmseg's ``accuracy`` returns it.
    """
    counts = histogram[..., :scores.shape[-1]]
    correct = counts.gather(-1, scores.detach().argmax(-1, keepdim=True)).sum()
    total = counts.sum().to(torch.float64)  # on the device: no host read
    return (correct.float().view(1) + _EPS).mul_((100.0 / (total + _EPS)).float())

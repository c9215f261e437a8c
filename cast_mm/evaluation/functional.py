"""Plain scoring functions shared by the hierarchy metrics."""
import numpy as np


def confusion_matrix(pred: np.ndarray, gt: np.ndarray, num_classes: int,
                     ignore_index: int = 255) -> np.ndarray:
    """``num_classes x num_classes`` counts, rows ground truth, columns prediction.

    Pixels whose ground truth is ``ignore_index`` are left out.

    Raises:
        ValueError: on shape mismatch or labels outside ``[0, num_classes)``.
    """
    pred, gt = np.asarray(pred).astype(np.int64), np.asarray(gt).astype(np.int64)
    if pred.shape != gt.shape:
        raise ValueError(f'prediction of shape {pred.shape} does not match ground truth of '
                         f'shape {gt.shape}')
    keep = gt != ignore_index
    pred, gt = pred[keep], gt[keep]
    for name, labels in (('prediction', pred), ('ground truth', gt)):
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f'{name} labels must be in [0, {num_classes}), got '
                             f'[{labels.min()}, {labels.max()}]')
    counts = np.bincount(gt * num_classes + pred, minlength=num_classes**2)
    return counts.reshape(num_classes, num_classes)


def iou_per_class(confusion: np.ndarray) -> np.ndarray:
    """IoU of each class from a confusion matrix; NaN where the union is empty."""
    intersection = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - intersection
    with np.errstate(divide='ignore', invalid='ignore'):
        return np.where(union > 0, intersection / union, np.nan)


def mean_jaccard(pred: np.ndarray, gt: np.ndarray, num_classes: int,
                 ignore_index: int = 255) -> float:
    """Mean IoU (x100) of one prediction over the classes present in it or in the ground truth.

    Classes absent from both (empty union) are left out of the mean, so a perfect prediction
    scores 100 whatever classes the image holds.
    """
    return float(np.nanmean(iou_per_class(confusion_matrix(pred, gt, num_classes,
                                                           ignore_index))) * 100)

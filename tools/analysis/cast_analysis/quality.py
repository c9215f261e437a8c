"""Standard superpixel quality measures against a ground-truth segmentation.

* **Boundary recall** (Martin et al. 2004, as used by SLIC / SEEDS papers): the fraction of
  ground-truth boundary pixels that have a superpixel boundary pixel within ``tolerance``
  pixels (Chebyshev distance). Higher is better.
* **Undersegmentation error** (Neubert & Protzel 2012, the "corrected" form):
  ``1/N * sum_S sum_{G: S and G overlap} min(|S & G|, |S - G|)``: the pixels a superpixel would
  have to give up (or take) to fit each ground-truth segment it overlaps. Lower is better.

Both take integer label maps ``(H, W)`` (any id values) as tensors.
"""
import torch
import torch.nn.functional as F
from torch import Tensor


def label_boundaries(labels: Tensor) -> Tensor:
    """``(H, W)`` bool map of pixels whose right or lower neighbour has another label."""
    edges = torch.zeros(labels.shape, dtype=torch.bool, device=labels.device)
    edges[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edges[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return edges


def boundary_recall(superpixels: Tensor, ground_truth: Tensor, tolerance: int = 2) -> float:
    """Fraction of ground-truth boundary pixels within ``tolerance`` of a superpixel boundary.

    Args:
        superpixels (Tensor): ``(H, W)`` integer superpixel map.
        ground_truth (Tensor): ``(H, W)`` integer ground-truth segmentation.
        tolerance (int): allowed distance in pixels. Defaults to 2.
    """
    if superpixels.shape != ground_truth.shape:
        raise ValueError(f'shapes differ: {tuple(superpixels.shape)} vs '
                         f'{tuple(ground_truth.shape)}')
    truth = label_boundaries(ground_truth)
    if not truth.any():
        return 1.
    found = label_boundaries(superpixels).float()[None, None]
    near = F.max_pool2d(found, 2 * tolerance + 1, stride=1, padding=tolerance)[0, 0] > 0
    return float((near & truth).sum()) / float(truth.sum())


def undersegmentation_error(superpixels: Tensor, ground_truth: Tensor) -> float:
    """Corrected undersegmentation error (Neubert & Protzel) of a superpixel map.

    Args:
        superpixels (Tensor): ``(H, W)`` integer superpixel map.
        ground_truth (Tensor): ``(H, W)`` integer ground-truth segmentation.
    """
    if superpixels.shape != ground_truth.shape:
        raise ValueError(f'shapes differ: {tuple(superpixels.shape)} vs '
                         f'{tuple(ground_truth.shape)}')
    _, sp = torch.unique(superpixels.reshape(-1), return_inverse=True)
    _, gt = torch.unique(ground_truth.reshape(-1), return_inverse=True)
    num_gt = int(gt.max()) + 1
    overlap = torch.bincount(sp * num_gt + gt, minlength=(int(sp.max()) + 1) * num_gt)
    overlap = overlap.view(-1, num_gt)
    sizes = overlap.sum(dim=1, keepdim=True)
    leak = torch.minimum(overlap, sizes - overlap)
    return float(leak.sum()) / superpixels.numel()

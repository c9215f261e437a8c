"""Segment prototypes and the labelled prototype memory of the VOC retrieval protocol.

A pixel's embedding is that of its superpixel; a segment's prototype is the mean of the
L2-normalised embeddings of its pixels. The memory holds the prototypes of the training
images' segments, each labelled with the majority ground-truth class of its pixels; a test
segment takes the majority label of its ``top_k`` most similar memory prototypes.
"""
import dataclasses
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from cast_mm.ops import segment_prototypes

__all__ = ['PrototypeMemory', 'segment_label_counts', 'segment_prototypes']


def segment_label_counts(segment_map: Tensor, gt: Tensor, num_segments: int,
                         num_classes: int, ignore_index: int = 255) -> Tensor:
    """``(num_segments, num_classes)`` ground-truth pixel counts of each segment.

    Pixels labelled ``ignore_index`` are left out.

    Raises:
        ValueError: on shape mismatch, or ids / labels out of range.
    """
    segment_map, gt = torch.as_tensor(segment_map).long(), torch.as_tensor(gt).long()
    if segment_map.shape != gt.shape:
        raise ValueError(f'segment map of shape {tuple(segment_map.shape)} does not match '
                         f'ground truth of shape {tuple(gt.shape)}')
    keep = gt != ignore_index
    segments, labels = segment_map[keep], gt[keep]
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f'ground-truth labels must be in [0, {num_classes}) or '
                         f'{ignore_index}, got [{labels.min()}, {labels.max()}]')
    if segments.numel() and (segments.min() < 0 or segments.max() >= num_segments):
        raise ValueError(f'segment ids must be in [0, {num_segments}), got '
                         f'[{segments.min()}, {segments.max()}]')
    counts = torch.bincount(segments * num_classes + labels,
                            minlength=num_segments * num_classes)
    return counts.view(num_segments, num_classes)


@dataclasses.dataclass
class PrototypeMemory:
    """Labelled, L2-normalised prototypes of training segments.

    Attributes:
        prototypes: ``(M, D)`` L2-normalised prototypes.
        labels: ``(M,)`` class of each prototype.
    """
    prototypes: Tensor
    labels: Tensor

    @classmethod
    def from_counts(cls, prototypes: Sequence[Tensor],
                    counts: Sequence[Tensor]) -> 'PrototypeMemory':
        """Memory from per-image prototypes ``(S_i, D)`` and label counts ``(S_i, C)``.

        Each prototype is labelled with its segment's majority class (ties: lowest class);
        segments without labelled pixels are left out.

        Raises:
            ValueError: when no segment has a labelled pixel.
        """
        protos, counts = torch.cat(list(prototypes)), torch.cat(list(counts))
        labelled = counts.sum(1) > 0
        if not labelled.any():
            raise ValueError('the prototype memory is empty: no training segment has a '
                             'labelled pixel')
        return cls(F.normalize(protos[labelled].float(), dim=-1), counts[labelled].argmax(1))

    def retrieve(self, queries: Tensor, top_k: int, num_classes: int,
                 chunk_size: int = 1024) -> Tensor:
        """Label ``(Q,)`` of each query: the majority label of its ``top_k`` nearest prototypes.

        Similarity is the cosine; ties between classes go to the lowest class index.
        Queries are processed ``chunk_size`` at a time on the memory's device.
        """
        if top_k < 1:
            raise ValueError(f'top_k must be >= 1, got {top_k}')
        k = min(top_k, self.prototypes.shape[0])
        queries = F.normalize(queries.float(), dim=-1).to(self.prototypes.device)
        labels = []
        for chunk in queries.split(chunk_size):
            nearest = (chunk @ self.prototypes.T).topk(k, dim=1).indices
            votes = F.one_hot(self.labels[nearest], num_classes).sum(1)
            labels.append(votes.argmax(1))
        return torch.cat(labels) if labels else self.labels.new_zeros(0)

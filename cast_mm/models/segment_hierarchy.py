"""Part-to-whole segmentation hierarchy of images, read out of a CAST forward pass.

CAST merges superpixel tokens four times; the argmax of each pooling's assignment logits sends
every token to one token of the next level. Composing these argmax maps from the superpixels
upwards gives, for every image, five nested segmentations: the superpixels (level 0) and the
groups of the four poolings (levels 1-4).

Superpixel ids that vanish at the stem resolution. In classification mode tokens are averaged
on the stride-8 feature grid, so a small superpixel may own no feature cell and hence no token.
The official notebook pads the label list with copies of its last entry, which is right only for
trailing ids. Here every full-resolution superpixel that owns a token keeps that token, and one
that owns none inherits the token of the feature cells it overlaps most (each pixel lies in
exactly one stride-8 cell; ties go to the lowest token id). Superpixels keep their own features
in the same way: a vanished superpixel carries the features of the token it inherited.
"""
import dataclasses
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .backbones.cast import CASTFeatures
from .layers import level_assignments


@dataclasses.dataclass
class SegmentHierarchy:
    """Nested segmentations of one image.

    Level 0 is the superpixels, level ``k = 1..4`` the groups made by pooling ``k``. Segment
    ids of every level are compact: ``0 .. num_segments[k] - 1``.

    Attributes:
        label_maps: per level, an ``(H, W)`` int64 map of segment ids at image resolution.
        parents: per level but the last, ``(num_segments[k],)`` int64: the id at level
            ``k + 1`` of the segment containing each level-``k`` segment.
        features: per level, ``(num_segments[k], C)`` features. Level 0: the stage-1 token of
            the superpixel; levels 1-3: the token of the group after the blocks of the next
            stage; level 4: the token produced by the last pooling.
        token_index: per level, ``(num_segments[k],)`` int64: the backbone token each segment
            is (stage-1 token slot for level 0, pooling cluster index for levels 1-4).
        superpixel_ids: ``(num_segments[0],)`` the original superpixel id of each level-0
            segment.
    """
    label_maps: List[Tensor]
    parents: List[Tensor]
    features: List[Tensor]
    token_index: List[Tensor]
    superpixel_ids: Tensor

    @property
    def num_levels(self) -> int:
        """Number of levels (superpixels included)."""
        return len(self.label_maps)

    @property
    def num_segments(self) -> List[int]:
        """Number of segments of each level."""
        return [int(index.numel()) for index in self.token_index]

    def superpixel_segments(self, level: int) -> Tensor:
        """``(num_segments[0],)``: the level-``level`` segment of every superpixel."""
        segment_of = torch.arange(self.num_segments[0], device=self.label_maps[0].device)
        for parent in self.parents[:level]:
            segment_of = parent[segment_of]
        return segment_of


def superpixels_to_tokens(superpixels: Tensor, token_labels: Tensor) -> Tuple[Tensor, Tensor]:
    """Token of every superpixel of one image, including ids that vanished at token resolution.

    Args:
        superpixels (Tensor): ``(H, W)`` ids at image resolution.
        token_labels (Tensor): ``(h, w)`` ids at the resolution tokens were averaged at (token
            ``j`` is the mean over the cells whose id is ``j``).

    Returns:
        ``(superpixel_ids (S,), tokens (S,))``: the sorted ids present in ``superpixels`` and the
        token of each: the id itself when it owns a token, otherwise the token that owns most
        of its pixels (pixel ``(y, x)`` lies in cell ``(y * h // H, x * w // W)``).
    """
    ids, compact = torch.unique(superpixels, return_inverse=True)
    if token_labels.shape == superpixels.shape and torch.equal(token_labels, superpixels):
        return ids, ids.clone()
    cells = F.interpolate(token_labels[None, None].float(), size=superpixels.shape,
                          mode='nearest')[0, 0].long()
    owned = torch.zeros(max(int(ids.max()), int(token_labels.max())) + 1, dtype=torch.bool,
                        device=ids.device)
    owned[token_labels.reshape(-1)] = True
    num_tokens = int(token_labels.max()) + 1
    pairs = compact.reshape(-1) * num_tokens + cells.reshape(-1)
    counts = torch.bincount(pairs, minlength=ids.numel() * num_tokens)
    # argmax returns the first maximum: ties go to the lowest token id.
    majority = counts.view(ids.numel(), num_tokens).argmax(dim=1)
    tokens = torch.where(owned[ids], ids, majority)
    return ids, tokens


def hierarchy_from_features(feats: CASTFeatures, superpixels: Tensor) -> List[SegmentHierarchy]:
    """Read the hierarchy of every image of a batch out of a CAST forward pass.

    Args:
        feats (CASTFeatures): output of :meth:`CAST.forward_features`.
        superpixels (Tensor): ``(B, H, W)`` superpixel ids the pass was run with.

    Returns:
        list[SegmentHierarchy]: one per image.
    """
    chains = level_assignments(feats.pool_logits)  # (B, N_1) cluster per stage-1 token
    level_feats = feats.stage_tokens + [feats.pool_tokens[-1]]
    results = []
    for b in range(superpixels.shape[0]):
        ids, tokens = superpixels_to_tokens(superpixels[b], feats.token_labels[b])
        pixel_segment = torch.searchsorted(ids, superpixels[b].contiguous())
        level_clusters = [chain[b][tokens] for chain in chains]
        label_maps, parents = [pixel_segment], []
        features, token_index = [level_feats[0][b][tokens]], [tokens]
        previous = torch.arange(ids.numel(), device=ids.device)
        for level, clusters in enumerate(level_clusters, start=1):
            present, per_superpixel = torch.unique(clusters, return_inverse=True)
            label_maps.append(per_superpixel[pixel_segment])
            features.append(level_feats[level][b][present])
            token_index.append(present)
            parent = torch.empty(int(previous.max()) + 1, dtype=torch.long,
                                 device=ids.device)
            parent[previous] = per_superpixel
            parents.append(parent)
            previous = per_superpixel
        results.append(SegmentHierarchy(label_maps, parents, features, token_index, ids))
    return results

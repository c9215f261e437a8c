"""High-level entry points: the segmentation hierarchy of images."""
from cast_mm.models.segment_hierarchy import (SegmentHierarchy, hierarchy_from_features,
                                              superpixels_to_tokens)
from .hierarchy import HierarchyExtractor, extract_hierarchy, get_cast_backbone, load_rgb_image
from .hierarchy_file import hierarchy_arrays, save_hierarchy

__all__ = [
    'HierarchyExtractor', 'SegmentHierarchy', 'extract_hierarchy', 'get_cast_backbone',
    'hierarchy_arrays', 'hierarchy_from_features', 'load_rgb_image', 'save_hierarchy',
    'superpixels_to_tokens'
]

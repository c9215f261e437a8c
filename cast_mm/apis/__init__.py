"""High-level entry points: the segmentation hierarchy of images."""
from .hierarchy import (HierarchyExtractor, SegmentHierarchy, extract_hierarchy,
                        get_cast_backbone, hierarchy_from_features, load_rgb_image,
                        superpixels_to_tokens)

__all__ = [
    'HierarchyExtractor', 'SegmentHierarchy', 'extract_hierarchy', 'get_cast_backbone',
    'hierarchy_from_features', 'load_rgb_image', 'superpixels_to_tokens'
]

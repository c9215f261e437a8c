"""High-level entry points: the segmentation hierarchy of images, the model index."""
from .hierarchy import (HierarchyExtractor, SegmentHierarchy, extract_hierarchy,
                        get_cast_backbone, hierarchy_from_features, load_rgb_image,
                        superpixels_to_tokens)
from .model_index import register_model_index

register_model_index()

__all__ = [
    'HierarchyExtractor', 'SegmentHierarchy', 'extract_hierarchy', 'get_cast_backbone',
    'hierarchy_from_features', 'load_rgb_image', 'register_model_index',
    'superpixels_to_tokens'
]

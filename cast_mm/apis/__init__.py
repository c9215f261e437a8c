"""High-level entry points: the segmentation hierarchy of images, the model index."""
from cast_mm.models.segment_hierarchy import (SegmentHierarchy, hierarchy_from_features,
                                              superpixels_to_tokens)
from .hierarchy import HierarchyExtractor, extract_hierarchy, get_cast_backbone, load_rgb_image
from .model_index import model_info, register_model_index

__all__ = [
    'HierarchyExtractor', 'SegmentHierarchy', 'extract_hierarchy', 'get_cast_backbone',
    'hierarchy_from_features', 'load_rgb_image', 'model_info', 'register_model_index',
    'superpixels_to_tokens'
]

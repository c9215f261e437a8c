"""High-level entry points: models from configs or names, and the segmentation hierarchy of
images as the models see them."""
from cast_mm.models.segment_hierarchy import (SegmentHierarchy, hierarchy_from_features,
                                              superpixels_to_tokens)
from .hierarchy import (HierarchyExtractor, HierarchyResult, extract_hierarchy, get_cast_backbone,
                        load_rgb_image)
from .hierarchy_file import hierarchy_arrays, save_hierarchy
from .inference import init_model

__all__ = [
    'HierarchyExtractor', 'HierarchyResult', 'SegmentHierarchy', 'extract_hierarchy',
    'get_cast_backbone', 'hierarchy_arrays', 'hierarchy_from_features', 'init_model',
    'load_rgb_image', 'save_hierarchy', 'superpixels_to_tokens'
]

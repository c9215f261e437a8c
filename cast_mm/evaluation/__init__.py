"""Evaluations of the CAST segmentation hierarchy (PartImageNet, VOC prototype retrieval)."""
from .functional import confusion_matrix, iou_per_class, mean_jaccard
from .metrics import PartImageNetMetric, PrototypeRetrievalMetric
from .open_vocab import OpenVocabSegmentLabeler
from .prototypes import PrototypeMemory, segment_label_counts, segment_prototypes

__all__ = [
    'OpenVocabSegmentLabeler', 'PartImageNetMetric', 'PrototypeMemory',
    'PrototypeRetrievalMetric', 'confusion_matrix', 'iou_per_class', 'mean_jaccard',
    'segment_label_counts', 'segment_prototypes'
]

"""Metrics of the hierarchy evaluations (registered in the cast_mm scope)."""
from .partimagenet_metric import PartImageNetMetric
from .voc_retrieval_metric import PrototypeRetrievalMetric

__all__ = ['PartImageNetMetric', 'PrototypeRetrievalMetric']

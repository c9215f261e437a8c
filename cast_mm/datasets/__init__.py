"""Data side of cast_mm: superpixel transforms, packing and datasets."""
from .demo_ade20k import DemoADE20KDataset, generate_demo_ade20k
from .transforms import PackSuperpixelSegInputs, SEEDSSuperpixels, seeds_superpixels
from .partimagenet import LoadPartImageNetMasks, PartImageNetDataset
from .voc_retrieval import PrototypeRetrievalDataset

__all__ = [
    'DemoADE20KDataset', 'PackSuperpixelSegInputs', 'SEEDSSuperpixels', 'generate_demo_ade20k',
    'seeds_superpixels'
]

"""Data side of cast_mm: superpixel transforms, packing and datasets."""
from .demo_ade20k import DemoADE20KDataset, generate_demo_ade20k
from .partimagenet import LoadPartImageNetMasks, PartImageNetDataset  # noqa: F401 (registers)
from .transforms import PackSuperpixelSegInputs, SEEDSSuperpixels, seeds_superpixels
from .voc_retrieval import PrototypeRetrievalDataset  # noqa: F401 (registers)

__all__ = [
    'DemoADE20KDataset', 'PackSuperpixelSegInputs', 'SEEDSSuperpixels', 'generate_demo_ade20k',
    'seeds_superpixels'
]

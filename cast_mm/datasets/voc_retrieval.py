"""Memory and query splits of the VOC prototype-retrieval protocol as one test dataset."""
import copy
from typing import Dict, Union

from mmengine.dataset import BaseDataset, force_full_init
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from torch.utils.data import Dataset

from cast_mm.registry import DATASETS


@DATASETS.register_module()
class PrototypeRetrievalDataset(Dataset):
    """The memory split followed by the query split, each sample tagged with its role.

    The retrieval protocol labels the segments of the query images (VOC val) by
    their nearest prototypes among the segments of the memory images (VOC train+). One
    ``tools/test.py`` pass over this dataset feeds both to
    :class:`~cast_mm.evaluation.PrototypeRetrievalMetric`, which tells them apart by
    ``data_samples.retrieval_role`` (``'memory'`` or ``'query'``). The meta is the query
    dataset's.

    Args:
        memory (dict | BaseDataset): the memory split (e.g. a ``PascalVOCDataset`` of
            ``ImageSets/Segmentation/aug.txt``), with its own pipeline.
        query (dict | BaseDataset): the query split (``ImageSets/Segmentation/val.txt``).
        lazy_init (bool): defer loading the annotations. Defaults to False.
    """

    def __init__(self,
                 memory: Union[Dict, BaseDataset],
                 query: Union[Dict, BaseDataset],
                 lazy_init: bool = False) -> None:
        # Built in the runner's scope (mmseg), where the VOC dataset lives.
        self.memory = MMENGINE_DATASETS.build(memory) if isinstance(memory, dict) else memory
        self.query = MMENGINE_DATASETS.build(query) if isinstance(query, dict) else query
        self._metainfo = copy.deepcopy(self.query.metainfo)
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    @property
    def metainfo(self) -> Dict:
        """The query dataset's meta."""
        return copy.deepcopy(self._metainfo)

    def full_init(self) -> None:
        """Load both splits."""
        if self._fully_initialized:
            return
        self.memory.full_init()
        self.query.full_init()
        self._fully_initialized = True

    @force_full_init
    def __len__(self) -> int:
        return len(self.memory) + len(self.query)

    def _split(self, idx: int):
        if idx < 0:
            idx += len(self)
        if not 0 <= idx < len(self):
            raise IndexError(f'index {idx} out of range for {len(self)} samples')
        if idx < len(self.memory):
            return 'memory', self.memory, idx
        return 'query', self.query, idx - len(self.memory)

    @force_full_init
    def get_data_info(self, idx: int) -> Dict:
        """Data info of sample ``idx`` with its ``retrieval_role``."""
        role, dataset, local = self._split(idx)
        return dict(dataset.get_data_info(local), retrieval_role=role)

    def __getitem__(self, idx: int) -> Dict:
        if not self._fully_initialized:
            self.full_init()
        role, dataset, local = self._split(idx)
        data = dataset[local]
        data['data_samples'].set_metainfo(dict(retrieval_role=role))
        return data

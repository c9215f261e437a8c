"""The official CAST release: where its files are published and what each one holds.

Written once here, below every layer that names the files: ``cast_mm.converters.weights``
downloads and converts them, the backbone's missing-checkpoint message lists them, and
``configs/cast/metafile.yml`` publishes their URLs (a test keeps it equal to this table).
"""
from collections import OrderedDict
from typing import Dict, NamedTuple

#: Where the official files are published (the official README links them).
DEFAULT_WEIGHTS_BASE = 'https://huggingface.co/twke/CAST/resolve/main'
#: Environment variable that replaces :data:`DEFAULT_WEIGHTS_BASE` (a mirror, an offline
#: cluster's file server).
WEIGHTS_BASE_ENV = 'CAST_MM_WEIGHTS_BASE'


class OfficialFile(NamedTuple):
    """One file of the official release.

    Attributes:
        layout: its checkpoint layout (``'deit'`` or ``'moco'``).
        family: the official model family it holds.
        description: what it is, for messages.
        model_name: the model-zoo name that loads it.
    """
    layout: str
    family: str
    description: str
    model_name: str


#: The CAST files of the official release, by path under the base.
OFFICIAL_WEIGHTS: Dict[str, OfficialFile] = OrderedDict([
    ('snapshots/deit/imagenet1k/cast_small/best_checkpoint.pth',
     OfficialFile('deit', 'cast_deit', 'DeiT ImageNet CAST-S', 'cast-s_deit_in1k')),
    ('snapshots/moco/imagenet1k/cast_small/checkpoint_0099.pth.tar',
     OfficialFile('moco', 'cast', 'MoCo-v3 ImageNet CAST-S', 'cast-s_mocov3-100e_8xb32_in1k')),
    ('snapshots/moco/imagenet1k/cast_small_deep/checkpoint_0099.pth.tar',
     OfficialFile('moco', 'cast', 'MoCo-v3 ImageNet CAST-SD', 'cast-sd_mocov3-100e_8xb32_in1k')),
    ('snapshots/moco/imagenet1k/cast_base/checkpoint_0099.pth.tar',
     OfficialFile('moco', 'cast', 'MoCo-v3 ImageNet CAST-B', 'cast-b_mocov3-100e_8xb32_in1k')),
    ('snapshots/moco/coco/cast_small/checkpoint_0149.pth.tar',
     OfficialFile('moco', 'cast_seg', 'MoCo-v3 COCO CAST-S, epoch 150', 'cast-s_voc-retrieval')),
    ('snapshots/moco/coco/cast_small/checkpoint_0399.pth.tar',
     OfficialFile('moco', 'cast_seg', 'MoCo-v3 COCO CAST-S, epoch 400',
                  'cast-s_mocov3-400e_8xb32_coco')),
])

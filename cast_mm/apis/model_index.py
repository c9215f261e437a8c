"""Make cast_mm's configs known to MMPretrain's model hub by name."""
import os.path as osp

#: Where ``setup.py`` exposes ``configs/`` and ``model-index.yml`` inside the package.
MIM_DIR = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), '.mim')


def register_model_index() -> bool:
    """Register ``model-index.yml`` with ``mmpretrain.apis.ModelHub`` (once).

    Afterwards ``mmpretrain.apis.get_model('cast-s_8xb128_in1k', pretrained=...)`` and
    ``inference_model('cast-s_8xb128_in1k', image, pretrained=...)`` find our configs.

    Returns:
        bool: whether the index was found (it is, for any install made by ``setup.py``).
    """
    from mmpretrain.apis import ModelHub
    index = osp.join(MIM_DIR, 'model-index.yml')
    if not osp.exists(index):
        return False
    if not ModelHub.has('cast-s_8xb128_in1k'):
        ModelHub.register_model_index(index, config_prefix=MIM_DIR)
    return True

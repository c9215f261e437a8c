"""Our configs are known by name to MMPretrain's model hub and listed in model-index.yml."""
import os.path as osp

import yaml
from mmpretrain.apis import ModelHub, get_model

import cast_mm  # noqa: F401
from conftest import REPO


def test_every_metafile_entry_points_to_a_config():
    index = yaml.safe_load(open(osp.join(REPO, 'model-index.yml')))
    for metafile in index['Import']:
        for model in yaml.safe_load(open(osp.join(REPO, metafile)))['Models']:
            assert osp.exists(osp.join(REPO, model['Config'])), model['Name']


def test_classification_configs_are_in_the_model_hub():
    assert ModelHub.has('cast-s_8xb128_in1k')
    model = get_model('cast-s_8xb128_in1k')
    assert type(model.backbone).__name__ == 'CAST'
    assert model.backbone.pos_embed_type == 'learned'

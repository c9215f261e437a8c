"""Our models are known by name to MMPretrain's model hub (after ``import cast_mm``), with
official weights."""
import ast
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import yaml
from helpers import REPO
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.apis import ModelHub, get_model

from cast_mm.checkpoints import DEFAULT_WEIGHTS_BASE, OFFICIAL_FILES, model_info
from cast_mm.registry import MODELS


def metafile_models():
    index = yaml.safe_load(open(osp.join(REPO, 'model-index.yml')))
    for metafile in index['Import']:
        yield from yaml.safe_load(open(osp.join(REPO, metafile)))['Models']


def test_every_metafile_entry_points_to_a_config():
    for model in metafile_models():
        assert osp.exists(osp.join(REPO, model['Config'])), model['Name']


def test_classification_configs_are_in_the_model_hub():
    assert ModelHub.has('cast-s_8xb128_in1k')
    model = get_model('cast-s_8xb128_in1k')
    assert type(model.backbone).__name__ == 'CAST'
    assert model.backbone.pos_embed_type == 'learned'


@pytest.mark.slow
def test_import_cast_mm_registers_every_model_of_the_index():
    code = ('import cast_mm\n'
            'from mmpretrain.apis import ModelHub, list_models\n'
            "names = list_models('cast*')\n"
            "assert 'cast-s_deit_in1k' in names and 'cast-s_ade20k' in names, names\n"
            "assert ModelHub.get('cast-s_deit_in1k').weights.startswith('https://')\n"
            'print(len(names))\n')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.split()[-1]) == len(list(metafile_models()))


def test_the_official_table_names_the_published_model_of_every_file():
    """One table of the official files (cast_mm.checkpoints.OFFICIAL_FILES) serves the
    downloads, the backbone's missing-checkpoint message and, through this test, the metafile."""
    weights = {model['Name']: model.get('Weights') for model in metafile_models()}
    for path, entry in OFFICIAL_FILES.items():
        assert weights.get(entry.model_name) == f'{DEFAULT_WEIGHTS_BASE}/{path}', entry


def test_model_info_reads_the_metafile():
    info = model_info('cast-s_deit_in1k')
    assert info['config'].endswith(osp.join('configs', 'cast', 'cast-s_8xb128_in1k.py'))
    assert info['weights'] == f'{DEFAULT_WEIGHTS_BASE}/{next(iter(OFFICIAL_FILES))}'
    with pytest.raises(ValueError, match='cast-s_deit_in1k'):
        model_info('cast-s_nonexistent')


@pytest.mark.slow
def test_every_published_url_has_the_documented_form_and_its_config_builds():
    published = {}
    for model in metafile_models():
        if 'Weights' not in model:
            continue
        url = model['Weights']
        assert re.fullmatch(r'https://huggingface\.co/twke/CAST/resolve/main/snapshots/'
                            r'[\w/.-]+\.pth(\.tar)?', url), url
        path = url[len(DEFAULT_WEIGHTS_BASE) + 1:]
        assert path in OFFICIAL_FILES, url
        published[model['Name']] = path
        cfg = Config.fromfile(osp.join(REPO, model['Config']))
        with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'cast_mm')):
            built = MODELS.build(cfg.model)
        backbone = getattr(built, 'backbone', built)
        assert type(backbone).__name__ == 'CAST', model['Name']
        layout, family = OFFICIAL_FILES[path].layout, OFFICIAL_FILES[path].family
        assert backbone.mode == ('segmentation' if family.startswith('cast_seg')
                                 else 'classification'), model['Name']
        assert backbone.pos_embed_type == ('learned' if layout == 'deit' else 'sincos')
        arch = path.split('/')[3]
        assert backbone.embed_dims == (768 if arch == 'cast_base' else 384), model['Name']
        assert backbone.depths == ((6, 3, 3, 3) if arch == 'cast_small_deep' else (3, 3, 3, 2))
    # every official CAST file is published under some name
    assert set(published.values()) == set(OFFICIAL_FILES)
    assert published['cast-s_deit_in1k'] == 'snapshots/deit/imagenet1k/cast_small/' \
        'best_checkpoint.pth'


def test_configs_initialise_from_published_urls_only():
    found = {}
    for root, _, files in os.walk(osp.join(REPO, 'configs')):
        for name in sorted(files):
            if not name.endswith('.py'):
                continue
            tree = ast.parse(open(osp.join(root, name)).read())
            for node in ast.walk(tree):
                if (isinstance(node, ast.keyword) and node.arg == 'checkpoint'
                        and isinstance(node.value, ast.Constant)
                        and str(node.value.value).startswith(('http://', 'https://'))):
                    url = node.value.value
                    assert url.startswith(DEFAULT_WEIGHTS_BASE + '/'), (name, url)
                    assert url[len(DEFAULT_WEIGHTS_BASE) + 1:] in OFFICIAL_FILES, (name, url)
                    found[name] = url
    assert found['cast-s_segmenter.py'].endswith('deit/imagenet1k/cast_small/best_checkpoint.pth')
    assert found['cast-s_voc-finetune.py'].endswith('coco/cast_small/checkpoint_0399.pth.tar')

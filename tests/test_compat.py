"""``import cast_mm`` is quiet; ``cast_mm.setup_env()`` applies every compatibility measure of
:mod:`cast_mm.compat`, and each measure has a test here that fails once it is not needed."""
import io
import json
import os
import os.path as osp
import pickle
import subprocess
import sys

import pytest
import torch
from helpers import REPO, load_config, subprocess_env
from mmengine.config import Config
from mmengine.logging import HistoryBuffer
from mmengine.registry import DefaultScope

import cast_mm
from cast_mm import compat
from cast_mm.checkpoints import ALLOWED_GLOBALS, reading

PACKAGE = osp.dirname(cast_mm.__file__)

#: Run in a fresh process: what MMEngine, torch and mmpretrain look like after importing
#: mmseg, mmpretrain and cast_mm; after cast_mm.setup_env(); after a second call; and in
#: another fresh process after reading a cast_mm config.
_STATE = r'''
import json, sys
import torch
import mmengine.config.config as config_module
import mmengine.runner.checkpoint as checkpoint_module
from mmengine.logging import HistoryBuffer
from mmengine.runner import CheckpointLoader
upstream = dict(loader=checkpoint_module.load_from_local,
                installed=config_module.get_installed_path,
                getstate=HistoryBuffer.__getstate__)


def state():
    from mmpretrain.apis import ModelHub
    return dict(
        local_loader_is_mmengines=CheckpointLoader._schemes[''] is upstream['loader'],
        installed_path_is_mmengines=config_module.get_installed_path is upstream['installed'],
        history_buffer_is_mmengines=HistoryBuffer.__getstate__ is upstream['getstate'],
        safe_globals=len(torch.serialization.get_safe_globals()),
        meta_path=[type(f).__name__ for f in sys.meta_path],
        model_index=ModelHub.has('cast-s_8xb128_in1k'))


import mmseg, mmseg.apis, mmpretrain, mmpretrain.apis  # noqa
before = state()
import cast_mm
from cast_mm.models import CAST
CAST(arch=dict(embed_dims=48, depths=(1, 1, 1, 1), num_heads=4), num_clusters=(8, 4, 2, 1))
imported = state()
if sys.argv[1] == 'setup_env':
    cast_mm.setup_env()
    once = state()
    cast_mm.setup_env()
    print(json.dumps(dict(before=before, imported=imported, once=once, twice=state())))
else:
    from mmengine.config import Config
    Config.fromfile(sys.argv[1])
    print(json.dumps(dict(before=before, imported=imported, config=state())))
'''


def _process_state(arg: str) -> dict:
    proc = subprocess.run([sys.executable, '-c', _STATE, arg], capture_output=True, text=True,
                          cwd=REPO, timeout=600, env=subprocess_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope='module')
def states():
    return _process_state('setup_env')


@pytest.mark.slow
def test_import_cast_mm_changes_nothing_of_other_packages(states):
    """... but adds its model names to mmpretrain's model hub, as it registers its modules."""
    imported = dict(states['imported'])
    assert imported.pop('model_index') and not states['before']['model_index']
    assert imported == {k: v for k, v in states['before'].items() if k != 'model_index'}
    assert states['before']['local_loader_is_mmengines']


@pytest.mark.slow
def test_setup_env_applies_every_measure_once(states):
    once = states['once']
    assert not once['local_loader_is_mmengines']
    assert not once['installed_path_is_mmengines']
    assert not once['history_buffer_is_mmengines']
    assert once['model_index']
    # Safe loading is scoped to cast_mm's own reads: nothing is allow-listed process-wide,
    # and no import hook is added.
    assert once['safe_globals'] == states['before']['safe_globals']
    assert once['meta_path'] == states['before']['meta_path']
    assert states['twice'] == once


@pytest.mark.slow
def test_reading_a_cast_mm_config_applies_setup_env():
    state = _process_state(osp.join(REPO, 'configs', 'cast', 'cast-s_ade20k.py'))
    assert state['imported']['local_loader_is_mmengines']
    assert not state['config']['local_loader_is_mmengines'] and state['config']['model_index']


def test_every_cast_mm_config_lists_the_setup_entry():
    folder = osp.join(REPO, 'configs', 'cast')
    missing = []
    for name in sorted(os.listdir(folder)):
        if name.endswith('.py'):
            cfg = load_config(name)
            if 'cast_mm.env' not in cfg.get('custom_imports', {}).get('imports', []):
                missing.append(name)
    assert not missing, f'{missing} do not inherit configs/_base_/cast_env.py'


def test_every_measure_names_its_upstream_version_and_an_existing_test():
    tests = {}
    for measure in compat.MEASURES:
        assert measure.applied_by in ('cast_mm', 'setup_env'), measure.name
        assert (measure.apply is None) == (measure.applied_by == 'cast_mm'), measure.name
        assert any(name in measure.works_around for name in ('mmengine', 'mmpretrain', 'torch'))
        path, _, test = measure.test.partition('::')
        tests.setdefault(path, []).append(test)
    for path, names in tests.items():
        source = open(osp.join(REPO, path)).read()
        assert all(f'def {name}(' in source for name in names), (path, names)


# ------------------------------------------------------- each measure is still needed
def _safe_round_trip(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _runner_like_checkpoint() -> dict:
    from mmengine.config import ConfigDict
    return dict(meta=dict(cfg=ConfigDict(a=1), seed=torch.tensor(1).numpy()),
                message_hub=dict(log_scalars={'loss': HistoryBuffer([1.0], [1])}),
                state_dict={'w': torch.ones(2)})


def test_safe_loading_refuses_mmengine_objects_by_default():
    """torch >= 2.6 refuses MMEngine's checkpoint objects without an allow-list; cast_mm
    allows them for its own reads only. Fails once torch loads them by itself."""
    checkpoint = _runner_like_checkpoint()
    del checkpoint['message_hub']  # HistoryBuffer: see the next test
    with pytest.raises(pickle.UnpicklingError):
        _safe_round_trip(checkpoint)
    with torch.serialization.safe_globals(ALLOWED_GLOBALS):
        assert _safe_round_trip(checkpoint)['meta']['cfg']['a'] == 1


def test_the_history_buffer_pickling_workaround_is_still_needed(monkeypatch):
    """mmengine 0.10.7: ``HistoryBuffer.__getstate__`` pickles the class's registry of statistics
    functions, which the safe unpickler refuses even with MMEngine's classes allowed. Fails once
    MMEngine pickles data only; then delete ``pickle_history_buffers_without_functions``."""
    upstream = reading.UPSTREAM_HISTORY_BUFFER_GETSTATE or HistoryBuffer.__getstate__
    monkeypatch.setattr(HistoryBuffer, '__getstate__', upstream)
    with torch.serialization.safe_globals(ALLOWED_GLOBALS):
        with pytest.raises(pickle.UnpicklingError):
            _safe_round_trip(HistoryBuffer([1.0], [1]))
    # With the measure, the buffer and its statistics survive a safe round trip.
    monkeypatch.setattr(HistoryBuffer, '__getstate__', reading._history_buffer_state)
    with torch.serialization.safe_globals(ALLOWED_GLOBALS):
        loaded = _safe_round_trip(HistoryBuffer([1.0, 2.0, 4.0], [1, 1, 2]))
    assert loaded.data[0].tolist() == [1.0, 2.0, 4.0] and loaded.current() == 4.0


def test_mmengine_cannot_load_its_own_checkpoints_safely(tmp_path, monkeypatch):
    """mmengine 0.10.7 ``load_from_local`` calls ``torch.load`` without ``weights_only``: under
    torch >= 2.6 it refuses the checkpoints MMEngine writes. Fails once it reads them; the
    official-file conversion of cast_mm's loader would then still be needed."""
    from mmengine.runner.checkpoint import load_from_local

    from cast_mm.checkpoints.loaders import load_from_local as cast_mm_load_from_local
    monkeypatch.setattr(HistoryBuffer, '__getstate__', reading._history_buffer_state)
    path = str(tmp_path / 'epoch_1.pth')
    torch.save(_runner_like_checkpoint(), path)
    with pytest.raises(pickle.UnpicklingError):
        load_from_local(path, map_location='cpu')
    loaded = cast_mm_load_from_local(path, map_location='cpu')
    assert loaded['message_hub']['log_scalars']['loss'].current() == 1.0


def test_the_editable_install_workaround_is_still_needed(tmp_path):
    """A PEP 660 editable install: the distribution's metadata in site-packages, the package
    elsewhere. MMEngine 0.10.7 then answers with a folder that holds no package."""
    site = tmp_path / 'site-packages'
    info = site / 'cast_mm-0.1.0.dist-info'
    info.mkdir(parents=True)
    (info / 'METADATA').write_text('Metadata-Version: 2.1\nName: cast_mm\nVersion: 0.1.0\n')
    (info / 'top_level.txt').write_text('cast_mm\n')
    code = ('import os.path as osp; from mmengine.utils import get_installed_path; '
            "print(osp.isfile(osp.join(get_installed_path('cast_mm'), '__init__.py')))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), REPO]))
    found = subprocess.run([sys.executable, '-c', code], env=env, cwd=str(tmp_path),
                           capture_output=True, text=True, timeout=300, check=True).stdout
    assert found.strip() == 'False', (
        'MMEngine finds an editable install by itself now: remove '
        'cast_mm/utils/editable_install.py')
    from cast_mm.utils import editable_install
    assert editable_install.installed_path('cast_mm') == PACKAGE


@pytest.mark.slow
def test_mmpretrain_does_not_find_the_model_index_by_itself(states):
    """mmpretrain 1.2.0's ModelHub knows only its own models: cast_mm's names need
    ``import cast_mm`` to register them. Fails once mmpretrain discovers other packages'
    indexes."""
    assert not states['before']['model_index'], (
        'mmpretrain finds our model index by itself now: drop the model-index measure')


def test_the_surrounding_scope_lookup_is_still_needed(tmp_path):
    cast_mm.setup_env()  # the editable-install lookup, for 'cast_mm::' below
    config = tmp_path / 'mine.py'
    config.write_text("_base_ = ['cast_mm::cast/cast-s_ade20k.py']\n")
    cfg = Config.fromfile(str(config))
    # MMEngine builds inherited configs in the cast_mm scope, where mmseg's names are unknown.
    assert cfg.train_dataloader.dataset.get('_scope_') == 'cast_mm', (
        'MMEngine no longer tags configs inherited with cast_mm:: by their scope: the '
        'surrounding-scope lookup of cast_mm.registry.CastRegistry can go')
    with DefaultScope.overwrite_default_scope('mmseg'):
        from cast_mm.registry import TRANSFORMS
        with DefaultScope.overwrite_default_scope('cast_mm'):
            assert TRANSFORMS.get('LoadAnnotations').__module__.startswith('mmseg')

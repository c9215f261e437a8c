"""Crash-safe checkpoints: atomic writes, old files removed only after the new one is complete,
and ``--resume`` falling back to the newest readable checkpoint."""
import logging
import os
import os.path as osp
import signal
import subprocess
import sys
import textwrap

import pytest
from helpers import REPO, cpu_training_env
from helpers.training import make_runner
from mmengine.logging import MMLogger

from cast_mm.checkpoints import checkpoint_problem, read_checkpoint
from cast_mm.engine import find_resumable_checkpoint


@pytest.fixture
def warnings_logged(monkeypatch):
    """Messages print_log sends to the current MMEngine logger at WARNING."""
    messages = []
    original = MMLogger.log

    # Patched on the class: a runner built inside the test becomes the current logger.
    def log(self, level, msg, *args, **kwargs):
        if level >= logging.WARNING:
            messages.append(str(msg))
        return original(self, level, msg, *args, **kwargs)

    monkeypatch.setattr(MMLogger, 'log', log)
    return messages


def test_keeps_one_complete_checkpoint(tmp_path):
    make_runner(tmp_path, max_iters=6, max_keep_ckpts=1).train()
    assert sorted(p.name for p in tmp_path.glob('*.pth*')) == ['iter_6.pth']
    assert (tmp_path / 'last_checkpoint').read_text() == str(tmp_path / 'iter_6.pth')
    assert checkpoint_problem(str(tmp_path / 'iter_6.pth')) is None


def test_truncated_newest_checkpoint_falls_back(tmp_path, warnings_logged):
    make_runner(tmp_path, max_iters=4).train()
    newest = tmp_path / 'iter_4.pth'
    data = newest.read_bytes()
    newest.write_bytes(data[:len(data) // 2])
    assert 'truncated or corrupt' in checkpoint_problem(str(newest))
    assert find_resumable_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_2.pth')
    assert any(str(newest) in m and 'iter_2.pth' in m and 'truncated' in m
               for m in warnings_logged), warnings_logged


def test_missing_newest_checkpoint_falls_back(tmp_path, warnings_logged):
    make_runner(tmp_path, max_iters=4).train()
    os.remove(tmp_path / 'iter_4.pth')
    assert find_resumable_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_2.pth')
    assert any('iter_4.pth is missing' in m and 'iter_2.pth' in m for m in warnings_logged)


def test_no_readable_checkpoint(tmp_path, warnings_logged):
    assert find_resumable_checkpoint(str(tmp_path)) is None
    (tmp_path / 'iter_2.pth').write_bytes(b'not a checkpoint')
    assert find_resumable_checkpoint(str(tmp_path)) is None
    assert any('No readable checkpoint' in m for m in warnings_logged)


KILL_IN_SAVE = textwrap.dedent("""
    import os, signal, sys
    from mmengine.fileio import LocalBackend
    from helpers.training import make_runner

    import cast_mm
    cast_mm.setup_env()  # as tools/train.py (a Runner built without a config reads none)

    original_put = LocalBackend.put
    saves = []

    def put(self, obj, filepath):
        saves.append(filepath)
        if len(saves) == 2:  # the second checkpoint: write half of it, then die
            with open(filepath, 'wb') as f:
                f.write(obj[:len(obj) // 2])
                f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return original_put(self, obj, filepath)

    LocalBackend.put = put
    make_runner(sys.argv[1], max_iters=6, max_keep_ckpts=1).train()
""")


@pytest.mark.slow
def test_kill_during_save_keeps_the_previous_checkpoint(tmp_path):
    script = tmp_path / 'kill_in_save.py'
    script.write_text(KILL_IN_SAVE)
    work_dir = tmp_path / 'work'
    proc = subprocess.run([sys.executable, str(script), str(work_dir)], capture_output=True,
                          timeout=300, env=cpu_training_env())
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    # max_keep_ckpts=1: MMEngine would have removed iter_2.pth before writing iter_4.pth.
    assert (work_dir / 'iter_2.pth').exists() and not (work_dir / 'iter_4.pth').exists()
    assert (work_dir / 'iter_4.pth.tmp').exists()
    assert (work_dir / 'last_checkpoint').read_text() == str(work_dir / 'iter_2.pth')
    assert find_resumable_checkpoint(str(work_dir)) == str(work_dir / 'iter_2.pth')
    resumed = make_runner(work_dir, max_iters=6, max_keep_ckpts=1, resume=True)
    resumed.train()
    assert resumed.iter == 6
    assert sorted(p.name for p in work_dir.glob('*.pth*')) == ['iter_6.pth']  # tmp removed
    state = read_checkpoint(str(work_dir / 'iter_6.pth'))
    assert state['meta']['iter'] == 6


@pytest.mark.slow
def test_train_tool_resumes_from_the_newest_readable_checkpoint(tmp_path):
    work_dir = tmp_path / 'work'
    base = [sys.executable, osp.join(REPO, 'tools', 'train.py'),
            osp.join(REPO, 'configs', 'cast', 'cast-s_demo.py'), '--work-dir', str(work_dir)]
    options = ['--cfg-options', 'train_cfg.val_interval=1000',
               'default_hooks.checkpoint.interval=1', 'default_hooks.checkpoint.max_keep_ckpts=2',
               'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False']
    env = cpu_training_env()
    subprocess.run(base + options + ['train_cfg.max_iters=2'], check=True, env=env,
                   capture_output=True, timeout=600, cwd=str(tmp_path))
    newest = work_dir / 'iter_2.pth'
    newest.write_bytes(newest.read_bytes()[:1000])
    proc = subprocess.run(base + ['--resume'] + options + ['train_cfg.max_iters=3'], env=env,
                          capture_output=True, timeout=600, cwd=str(tmp_path), text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert f'The newest checkpoint {newest} is truncated or corrupt' in log
    assert 'resumed epoch: 0, iter: 1' in log
    assert (work_dir / 'iter_3.pth').exists()

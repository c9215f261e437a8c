"""The README's headline command, ``tools/dist_train.sh configs/cast/cast-s_demo.py 2``, and its
two-node form train the demo and print no traceback and no warning beyond a short list."""
import os
import os.path as osp
import re
import signal
import subprocess
import sys

import pytest
from helpers import REPO, free_port

DEMO = osp.join(REPO, 'configs', 'cast', 'cast-s_demo.py')
#: The demo as shipped, for 2 iterations of 1 image per process (then evaluated on 2 images
#: and saved, as at its end). One image per process: a gradient DDP must get dense (the class
#: embeddings'), or DDP warns "Grad strides do not match".
SHORT = ['--cfg-options', 'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
         'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1',
         'train_dataloader.batch_size=1', 'train_dataloader.dataset.num_val=2',
         'val_dataloader.dataset.num_val=2']

#: Lines a clean run prints although they mention a warning, each matched by part of its text.
#: All come from the pinned upstream packages and are printed by every run of such a config.
EXPECTED_WARNINGS = (
    # torchrun (several processes per node) and MMEngine (any distributed run) announce the
    # thread count they set where OMP_NUM_THREADS / MKL_NUM_THREADS are unset.
    'environment variable for each process to be 1 in default',
    # mmseg 1.2.2's BaseDecodeHead builds its loss with mmseg's own deprecated build_loss.
    '``build_loss`` would be deprecated soon',
    # mmseg's SegVisualizationHook when it does not draw (its default); the configs keep the
    # hook so that tools/test.py --show / --show-dir can switch drawing on.
    'The draw is False, it means that the hook for visualization will not take effect',
    # MMEngine's BaseMetric, for mmseg's IoUMetric, which has no default prefix (a prefix would
    # rename val/mIoU, which save_best and the logs use).
    'The prefix is not set in metric class IoUMetric.',
    # MMEngine 0.10.7's CheckpointHook.before_train makes a FileClient whatever its arguments.
    '"FileClient" will be deprecated in future.',
    '"HardDiskBackend" is the alias of "LocalBackend"',
)

#: What a clean run prints nowhere else: tracebacks (also the ones Python prints for errors in
#: atexit callbacks), errors, warnings of any kind, dying processes. (``-Wno-deprecated-...``
#: is a compiler flag in torch's build settings, which MMEngine logs.)
ALARMING = re.compile(r'Traceback|Exception ignored|Error|ERROR|[Ww]arn|WARN|'
                      r'(?<![-\w])[Dd]eprecat|Grad strides do not match|[Kk]illed|'
                      r'terminate called|core dumped')
#: The source line Python prints below a warning raised by ``warnings.warn(...)``; the warning's
#: own line is checked (the processes' lines interleave, so it need not be the line above).
WARNING_SOURCE = re.compile(r'^\s+warnings\.warn\(')


def alarming_lines(output: str) -> list:
    """The lines of ``output`` that no clean run prints."""
    return [line for line in output.splitlines()
            if ALARMING.search(line) and not WARNING_SOURCE.match(line)
            and not any(text in line for text in EXPECTED_WARNINGS)]


def test_alarming_lines_finds_what_the_launcher_printed_before():
    """The check itself: what runs printed before (abridged), and a Python warning's source
    line that belongs to an expected warning."""
    output = '\n'.join([
        '/x/mmseg/models/builder.py:36: UserWarning: ``build_loss`` would be deprecated soon, '
        'please use ``mmseg.registry.MODELS.build()`` ',
        "  warnings.warn('``build_loss`` would be deprecated soon, please use '",
        '12/07 21:25:30 - mmengine - INFO - Iter(train) [2/2]  lr: 2.9e-04',
        '/x/sync_norm.py:116: FutureWarning: torch.distributed.nn.functional.all_reduce is '
        'deprecated, use torch.distributed._functional_collectives.all_reduce instead.',
        '  stats = all_reduce(stats, group=group)',
        '/x/torch/autograd/graph.py:1072: UserWarning: Grad strides do not match bucket view '
        'strides.',
        'Exception ignored in atexit callback: <function _exit_function at 0x7fd03116ed40>',
        'RuntimeError: DataLoader worker (pid 15036) is killed by signal: Killed. ',
    ])
    assert alarming_lines(output) == [output.splitlines()[i] for i in (3, 5, 6, 7)]
    # MMEngine logs torch's build settings, compiler flags included
    assert alarming_lines('  - Build settings: ... -Wno-deprecated-gpu-targets ...') == []


def launch(cwd, port: int, nproc: int, nnodes: int, work_dir, output) -> subprocess.Popen:
    """``tools/dist_train.sh`` on the demo, as the README and docs/reliability.md run it, its
    stdout and stderr written to the open file ``output``."""
    env = {k: v for k, v in os.environ.items()
           # the user's defaults: no thread counts, Python's own warning filters
           if k not in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'PYTHONWARNINGS')}
    # MAX_RESTARTS=0: a failed process ends the run instead of a restart that trains again
    env.update(PORT=str(port), NNODES=str(nnodes), PYTHON=sys.executable, MAX_RESTARTS='0')
    return subprocess.Popen(
        ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), DEMO, str(nproc),
         '--work-dir', str(work_dir), *SHORT],
        cwd=str(cwd), env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)


@pytest.mark.slow
@pytest.mark.parametrize('nnodes, nproc', [(1, 2), (2, 1)], ids=['2-processes', '2-nodes'])
def test_dist_train_of_the_demo_runs_clean(tmp_path, nnodes, nproc):
    """Two processes on one node, or two nodes (launches) of one process each meeting at the
    c10d rendezvous: every launch exits 0, the run trains, evaluates and saves, and nothing
    alarming is printed (MaskedSyncBN's all-reduce, DDP's buckets, loader workers at exit)."""
    work_dir = tmp_path / 'work'
    port = free_port()
    files = [open(tmp_path / f'launch{node}.txt', 'w') for node in range(nnodes)]
    launches = []
    try:
        for f in files:
            launches.append(launch(tmp_path, port, nproc, nnodes, work_dir, f))
        for proc in launches:
            proc.wait(timeout=600)
    finally:
        for proc in launches:
            if proc.poll() is None:  # the launcher, torchrun and its processes
                os.killpg(proc.pid, signal.SIGKILL)
        for f in files:
            f.close()
    outputs = [(tmp_path / f'launch{node}.txt').read_text() for node in range(nnodes)]
    for proc, output in zip(launches, outputs):
        assert proc.returncode == 0, output[-4000:]
    for output in outputs:
        alarming = alarming_lines(output)
        assert not alarming, '\n'.join(alarming)
    log = next(work_dir.glob('*/*.log')).read_text()
    assert 'Distributed training: True' in log and 'GPU number: 2' in log
    assert 'Iter(train) [2/2]' in log and 'mIoU' in log
    assert (work_dir / 'iter_2.pth').exists()

"""Time from ``--resume`` to the first new iteration: MMEngine's replay vs cast_mm's skip by index.

What ``tools/analysis/resume_time.py`` runs (:func:`measure_resume`). Protocol:

1. ``tools/train.py`` trains the config ``--train-iters`` iterations (2 by default) and saves a
   checkpoint. The synthetic demo data is generated inside the work folder.
2. The checkpoint is rewritten to say iteration N: ``meta.iter``, the message hub's ``iter`` and
   the parameter schedulers' ``last_step`` are set to N, everything else (weights, optimiser, RNG
   and sampler states) is kept. A resumed run cannot tell it from one saved at iteration N.
3. A fresh process resumes from it, the way ``tools/train.py --resume`` does (the newest
   readable checkpoint of the work folder), for one iteration:

   * ``skip``: the config as shipped (``cast_mm.ResumableIterBasedTrainLoop`` with
     ``cast_mm.ResumableInfiniteSampler``): the sampler drops the first N batches by index;
   * ``replay``: MMEngine's ``IterBasedTrainLoop`` and ``InfiniteSampler``, which draw the N
     trained batches through the data pipeline again ("Advance dataloader N steps").

   Measured: ``launch`` = seconds from starting the process to the start of iteration N + 1
   (interpreter start, imports, model and data loader building, checkpoint loading, and the
   positioning); ``positioning`` = seconds from the ``before_train`` hooks to the start of
   iteration N + 1, which is where the two loops differ.
4. Replaying N = ``--iters`` batches can take hours on a small machine, so ``replay`` runs at
   ``--replay-iters`` and ``skip`` at both. The replay cost per batch is the difference of the
   two positioning times at ``--replay-iters`` divided by it; ``replay at --iters
   (extrapolated)`` is the skip time at ``--iters`` plus that cost times ``--iters``. With
   ``--replay-iters`` equal to ``--iters`` everything is measured.
"""

import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import time
from typing import Dict, List, Optional

from .models import REPO

DEMO_CONFIG = osp.join(REPO, 'configs', 'cast', 'cast-s_demo.py')
#: The folder that holds this library (``tools/analysis``).
LIBRARY_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: Environment variable that carries the parent's launch time to a measuring child.
LAUNCH_ENV = 'CAST_RESUME_TIME_LAUNCH'
#: A validation / checkpoint interval no measured run reaches.
NEVER = 10**9
#: ``--cfg-options`` of MMEngine's replaying loop and sampler.
REPLAY_OPTIONS = {'train_cfg.type': 'IterBasedTrainLoop',
                  'train_dataloader.sampler.type': 'InfiniteSampler'}


def data_options(work_dir: str, num_workers: int) -> Dict:
    """Overrides of every run: the demo data in the work folder, no validation."""
    data_root = osp.join(work_dir, 'data')
    options = {f'{loader}.dataset.data_root': data_root
               for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')}
    options['train_cfg.val_interval'] = NEVER
    if num_workers is not None:
        options['train_dataloader.num_workers'] = num_workers
        options['train_dataloader.persistent_workers'] = num_workers > 0
    return options


def as_cli_options(options: Dict) -> List[str]:
    return [f'{key}={value}' for key, value in options.items()]


def train_base(config: str, work_dir: str, iters: int, options: Dict) -> str:
    """Train ``iters`` iterations with ``tools/train.py``; the path of the saved checkpoint."""
    out = osp.join(work_dir, 'base')
    run_options = dict(options, **{'train_cfg.max_iters': iters,
                                   'default_hooks.checkpoint.interval': iters})
    command = [sys.executable, osp.join(REPO, 'tools', 'train.py'), config, '--work-dir', out,
               '--cfg-options', *as_cli_options(run_options)]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f'training the base checkpoint failed ({proc.returncode}):\n'
                           f'{proc.stderr[-4000:]}')
    path = osp.join(out, f'iter_{iters}.pth')
    if not osp.isfile(path):
        raise RuntimeError(f'training finished without writing {path}')
    return path


def checkpoint_at(base: str, iteration: int, work_dir: str) -> str:
    """A copy of ``base`` in ``work_dir`` that says it was saved at ``iteration``."""
    import torch

    import cast_mm  # noqa: F401  (allow-lists MMEngine's checkpoint objects)
    from cast_mm.checkpoints import read_checkpoint
    checkpoint = read_checkpoint(base)
    checkpoint['meta']['iter'] = iteration
    checkpoint['message_hub']['runtime_info']['iter'] = iteration
    for scheduler in checkpoint.get('param_schedulers', []):
        for state in (scheduler if isinstance(scheduler, list) else [scheduler]):
            state['last_step'] = iteration
    os.makedirs(work_dir, exist_ok=True)
    path = osp.join(work_dir, f'iter_{iteration}.pth')
    torch.save(checkpoint, path)
    with open(osp.join(work_dir, 'last_checkpoint'), 'w') as f:
        f.write(path)
    return path


def measure(config: str, base: str, mode: str, iteration: int, work_dir: str,
            options: Dict) -> Dict:
    """Resume ``base`` rewritten to ``iteration`` in a fresh process; its timings."""
    out = osp.join(work_dir, f'{mode}_{iteration}')
    shutil.rmtree(out, ignore_errors=True)
    checkpoint_at(base, iteration, out)
    run_options = dict(options, **{'train_cfg.max_iters': iteration + 2,
                                   'default_hooks.checkpoint.interval': NEVER})
    if mode == 'replay':
        run_options.update(REPLAY_OPTIONS)
    result = osp.join(out, 'timing.json')
    command = [sys.executable, '-m', __name__, result, config, out,
               *as_cli_options(run_options)]
    # The child imports this module as the tools do: with the library's folder on its path.
    path = os.pathsep.join(p for p in (LIBRARY_ROOT, os.environ.get('PYTHONPATH')) if p)
    env = dict(os.environ, PYTHONPATH=path, **{LAUNCH_ENV: repr(time.time())})
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    if proc.returncode != 0 or not osp.isfile(result):
        raise RuntimeError(f'resuming ({mode}, iteration {iteration}) failed '
                           f'({proc.returncode}):\n{proc.stderr[-4000:]}')
    with open(result) as f:
        timing = json.load(f)
    if timing['first_iter'] != iteration:
        raise RuntimeError(f'the {mode} run started at iteration {timing["first_iter"]}, '
                           f'not {iteration}')
    log = proc.stdout + proc.stderr
    timing.update(mode=mode, iters=iteration, replayed=f'Advance dataloader {iteration}' in log,
                  skipped='skips' in log and 'by index' in log)
    return timing


class _FirstIterationTimer:
    """Hook-like recorder of the times of ``before_train`` and the first train iteration."""

    def __init__(self, path: str, launch: float):
        from mmengine.hooks import Hook

        timer = self

        class Timer(Hook):
            priority = 'VERY_HIGH'

            def before_train(self, runner):
                timer.before_train = time.time()

            def before_train_iter(self, runner, batch_idx, data_batch=None):
                if timer.first_iter is None:
                    timer.first_iter = runner.iter
                    timer.start = time.time()

            def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
                timer.done = time.time()
                runner.train_loop.stop_training = True
                with open(path, 'w') as f:
                    json.dump(timer.result(), f)

        self.hook = Timer()
        self.launch = launch
        self.before_train = self.start = self.done = None
        self.first_iter = None
        self.build = time.time()

    def result(self) -> Dict:
        return dict(first_iter=self.first_iter, launch=self.start - self.launch,
                    build=self.before_train - self.build,
                    positioning=self.start - self.before_train,
                    first_iter_time=self.done - self.start)


def child(result: str, config: str, work_dir: str, cfg_options: Dict) -> None:
    """Resume as ``tools/train.py --resume`` does, time it, stop after one iteration."""
    from mmengine.runner import Runner

    import cast_mm
    from cast_mm.engine import find_resumable_checkpoint
    from cast_mm.utils import load_tool_config
    launch = float(os.environ.get(LAUNCH_ENV, time.time()))
    cast_mm.setup_env()  # as tools/train.py
    cfg = load_tool_config(config, 'none', cfg_options, work_dir)
    cfg.load_from = find_resumable_checkpoint(cfg.work_dir)
    cfg.resume = cfg.load_from is not None
    if not cfg.resume:
        raise RuntimeError(f'no checkpoint to resume from in {cfg.work_dir}')
    timer = _FirstIterationTimer(result, launch)
    runner = Runner.from_cfg(cfg)
    runner.register_hook(timer.hook)
    runner.train()


def measure_resume(config: str = DEMO_CONFIG, iters: int = 10000, replay_iters: int = 100,
                   train_iters: int = 2, num_workers: Optional[int] = None,
                   work_dir: str = None) -> Dict:
    """Steps 1 to 4 of the protocol in ``work_dir`` (a scratch folder); the summary: every run's
    timings, the replay cost per batch and both paths' launch times at ``iters``."""
    for name, value in (('iters', iters), ('replay_iters', replay_iters),
                        ('train_iters', train_iters)):
        if value < 1:
            raise ValueError(f'{name} must be >= 1, got {value}')
    options = data_options(work_dir, num_workers)
    base = train_base(config, work_dir, train_iters, options)
    runs = [measure(config, base, 'skip', iters, work_dir, options)]
    if replay_iters != iters:
        runs.append(measure(config, base, 'skip', replay_iters, work_dir, options))
    runs.append(measure(config, base, 'replay', replay_iters, work_dir, options))
    skip_small, replay_small = runs[-2], runs[-1]
    per_batch = (replay_small['positioning'] - skip_small['positioning']) / replay_iters
    return dict(
        config=osp.relpath(config, REPO) if config.startswith(REPO) else config,
        iters=iters, replay_iters=replay_iters, runs=runs, replay_seconds_per_batch=per_batch,
        skip_at_iters=runs[0]['launch'],
        replay_at_iters=replay_small['launch'] if replay_iters == iters else
        runs[0]['launch'] + per_batch * iters,
        replay_at_iters_extrapolated=replay_iters != iters)


if __name__ == '__main__':  # the measuring child of :func:`measure`
    import argparse

    from mmengine.config import DictAction
    parser = argparse.ArgumentParser()
    parser.add_argument('result')
    parser.add_argument('config')
    parser.add_argument('work_dir')
    parser.add_argument('cfg_options', nargs='*', action=DictAction)
    args = parser.parse_args()
    child(args.result, args.config, args.work_dir, args.cfg_options)

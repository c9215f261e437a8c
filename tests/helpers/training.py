"""A tiny CAST training for the resume, checkpoint and preemption tests; also run as a script.

``python -m helpers.training WORK_DIR MAX_ITERS [--resume] [--hang-before N] [--by-epoch]
[--interval K] [--workers N] [--record]`` (in the environment of
:func:`helpers.subprocess_env`) trains (or resumes) in WORK_DIR and writes the final weights to
WORK_DIR/final_weights.pth (``--by-epoch``: MAX_ITERS epochs; checkpoints every K iterations).
``--hang-before N`` writes WORK_DIR/hanging and blocks when iteration N starts, so a test can
kill the process at a known point; ``--launcher pytorch`` runs under ``torch.distributed.run``
(gloo), and a restarted group resumes by itself as ``tools/train.py`` does. ``--record`` writes
each process's pid to WORK_DIR/pid_rank<R> and appends rank 0's loss of every iteration to
WORK_DIR/losses.jsonl (see :class:`RecordHook`).
"""
import argparse
import json
import os
import os.path as osp
import random
import sys
import time
from typing import List

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

import cast_mm
from cast_mm.engine import find_resumable_checkpoint, restart_count
from cast_mm.models import CAST
from cast_mm.utils import close_distributed, setup_cpu_distributed
from . import TINY_ARCH, TINY_CLUSTERS, grid_superpixels

#: The command that runs :func:`main` (with :func:`helpers.cpu_training_env`).
COMMAND = [sys.executable, '-m', 'helpers.training']


class TinyCASTClassifier(BaseModel):
    """CAST with dropout and drop path on, and a linear head."""

    def __init__(self, drop: float = 0.2):
        super().__init__()
        self.backbone = CAST(arch=TINY_ARCH, num_clusters=TINY_CLUSTERS, img_size=32,
                             drop_rate=drop, drop_path_rate=drop)
        self.dropout = nn.Dropout(drop)
        self.head = nn.Linear(48, 3)

    def forward(self, inputs, superpixels, labels, mode='tensor'):
        logits = self.head(self.dropout(self.backbone(inputs, superpixels)[0]))
        if mode == 'loss':
            return dict(loss=F.cross_entropy(logits, labels))
        return logits


class RandomImages(Dataset):
    """Images fixed by their index, plus augmentation noise from the process's global RNGs
    (torch, numpy and Python random), as data pipelines draw it.

    ``RandomImages.loaded`` lists the indices loaded in this process (the runner works on a
    deep copy of the dataset, so the record is kept on the class).
    """

    loaded = []

    def __init__(self, size: int = 8, augment: bool = True):
        self.size = size
        self.augment = augment

    def __len__(self):
        return self.size

    def __getitem__(self, index):
        self.loaded.append(index)
        gen = torch.Generator().manual_seed(index)
        image = torch.randn(3, 32, 32, generator=gen)
        if self.augment:
            image = image + 0.1 * torch.randn(3, 32, 32)
            image = image * float(np.random.uniform(0.9, 1.1)) + random.uniform(-0.1, 0.1)
        return dict(inputs=image, superpixels=grid_superpixels(1, 32, 32, cell=4)[0],
                    labels=torch.tensor(index % 3))


class HangHook(Hook):
    """Blocks when iteration ``index`` (0-based) starts, after writing ``<work_dir>/hanging``."""

    priority = 'LOWEST'

    def __init__(self, index: int):
        self.index = index

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter == self.index:
            open(osp.join(runner.work_dir, 'hanging'), 'w').close()
            time.sleep(600)


class RecordHook(Hook):
    """Writes ``pid_rank<R>`` when training starts and, on rank 0, appends
    ``{"pid", "iter", "loss"}`` (the loss as ``repr``, exact) to ``losses.jsonl`` after each
    iteration; ``sleep`` seconds after each iteration leave a signal time to arrive."""

    priority = 'HIGHEST'  # the record is written before a preemption checkpoint is

    def __init__(self, sleep: float = 0.0):
        self.sleep = sleep

    def before_train(self, runner):
        with open(osp.join(runner.work_dir, f'pid_rank{get_rank()}'), 'w') as f:
            f.write(str(os.getpid()))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if get_rank() == 0:
            record = dict(pid=os.getpid(), iter=runner.iter + 1, loss=repr(float(outputs['loss'])))
            with open(osp.join(runner.work_dir, 'losses.jsonl'), 'a') as f:
                f.write(json.dumps(record) + '\n')
        time.sleep(self.sleep)


def make_runner(work_dir, max_iters=6, resume=False, load_from=None, by_epoch=False,
                dataset=None, num_workers=0, interval=2, max_keep_ckpts=-1, hang_before=None,
                drop=0.2, seed=0, stock=False, launcher='none', persistent_workers=False,
                record_sleep=None, seed_per_sample=True):
    """A Runner of the tiny classifier with the cast_mm resumable loop, sampler and hooks
    (``stock=True``: MMEngine's own ones; ``record_sleep``: a :class:`RecordHook` with that
    pause)."""
    torch.manual_seed(seed)
    dataset = RandomImages() if dataset is None else dataset
    if by_epoch:
        sampler = 'DefaultSampler' if stock else 'cast_mm.ResumableDefaultSampler'
        loop = 'EpochBasedTrainLoop' if stock else 'cast_mm.ResumableEpochBasedTrainLoop'
        train_cfg = dict(type=loop, max_epochs=max_iters)
    else:
        sampler = 'InfiniteSampler' if stock else 'cast_mm.ResumableInfiniteSampler'
        loop = 'IterBasedTrainLoop' if stock else 'cast_mm.ResumableIterBasedTrainLoop'
        train_cfg = dict(type=loop, max_iters=max_iters)
    if not stock:
        train_cfg['seed_per_sample'] = seed_per_sample
    checkpoint = dict(type='CheckpointHook' if stock else 'cast_mm.AtomicCheckpointHook',
                      interval=interval, by_epoch=False, max_keep_ckpts=max_keep_ckpts)
    env_cfg = dict(dist_cfg=dict(backend='gloo', timeout=120))
    # Without CUDA, MMEngine's PyTorch launcher fails selecting a GPU per process; the tools'
    # CPU set-up starts the gloo group and gives DDP no device.
    launch_cfg = Config(dict(launcher=launcher, env_cfg=env_cfg))
    setup_cpu_distributed(launch_cfg)
    return Runner(
        model=TinyCASTClassifier(drop),
        work_dir=str(work_dir),
        train_dataloader=dict(dataset=dataset, batch_size=2, num_workers=num_workers,
                              persistent_workers=persistent_workers and num_workers > 0,
                              sampler=dict(type=sampler, shuffle=True),
                              collate_fn=dict(type='default_collate')),
        train_cfg=train_cfg,
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9)),
        default_hooks=dict(
            checkpoint=checkpoint, logger=dict(type='LoggerHook', interval=1),
            **({} if stock else dict(preemption=dict(type='cast_mm.PreemptionCheckpointHook')))),
        custom_hooks=([] if hang_before is None else [HangHook(hang_before)])
        + ([] if record_sleep is None else [RecordHook(record_sleep)]),
        randomness=dict(seed=seed, diff_rank_seed=True),  # each rank its own RNG stream
        launcher=launcher,
        env_cfg=env_cfg,
        resume=resume,
        load_from=load_from,
        default_scope='mmengine',
        cfg=None if launch_cfg.get('model_wrapper_cfg') is None else dict(
            model_wrapper_cfg=launch_cfg.model_wrapper_cfg))


def train(work_dir, **kwargs) -> Runner:
    """:func:`make_runner`, trained."""
    runner = make_runner(work_dir, **kwargs)
    runner.train()
    return runner


def main(argv: List[str] = None):
    parser = argparse.ArgumentParser(prog='python -m helpers.training')
    parser.add_argument('work_dir')
    parser.add_argument('max_iters', type=int)
    parser.add_argument('--resume', action='store_true')
    parser.add_argument('--hang-before', type=int)
    parser.add_argument('--launcher', default='none')
    parser.add_argument('--by-epoch', action='store_true')
    parser.add_argument('--interval', type=int, default=2)
    parser.add_argument('--workers', type=int, default=0, help='data loader workers (persistent)')
    parser.add_argument('--record', action='store_true', help='pid files and a loss record')
    parser.add_argument('--sleep', type=float, default=0.0,
                        help='seconds of pause after each iteration (with --record)')
    args = parser.parse_args(argv)
    cast_mm.setup_env()  # as tools/train.py (a Runner built without a config reads none)
    resume, load_from = args.resume or restart_count() > 0, None
    if resume:  # as tools/train.py resumes
        load_from = find_resumable_checkpoint(args.work_dir)
        resume = load_from is not None
    runner = make_runner(args.work_dir, args.max_iters, resume=resume, load_from=load_from,
                         hang_before=args.hang_before, launcher=args.launcher,
                         by_epoch=args.by_epoch, interval=args.interval,
                         num_workers=args.workers, persistent_workers=True,
                         record_sleep=args.sleep if args.record else None)
    runner.train()
    model = getattr(runner.model, 'module', runner.model)
    if get_rank() == 0:
        torch.save(model.state_dict(), osp.join(args.work_dir, 'final_weights.pth'))
    close_distributed()


if __name__ == '__main__':
    main()

"""Train a cast_mm model (MMSegmentation or MMPretrain config) with MMEngine's Runner.

Usage is that of mmseg's and mmpretrain's ``tools/train.py``::

    python tools/train.py configs/cast/cast-s_ade20k.py --work-dir work_dirs/cast-s_ade20k
    tools/dist_train.sh configs/cast/cast-s_ade20k.py 8 --amp

A job restarted by its launcher (``torchrun --max-restarts`` after a failed process, Slurm after
a requeue) resumes from the newest complete checkpoint of the work folder as with ``--resume``.
A run stopped by a preemption signal exits with status 75 after writing its checkpoint
(docs/reliability.md).
"""
import argparse
import logging
import os

from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import cast_mm
from cast_mm.engine import find_resumable_checkpoint, restart_count
from cast_mm.utils import close_distributed, load_tool_config, setup_cpu_distributed


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a cast_mm model')
    parser.add_argument('config', help='config file')
    parser.add_argument('--work-dir', help='where logs and checkpoints go')
    parser.add_argument('--resume', action='store_true',
                        help='resume from the latest checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate by the actual batch size')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. train_cfg.max_iters=10')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def enable_amp(cfg: Config) -> None:
    """Switch the optimizer wrapper to ``AmpOptimWrapper`` (dynamic loss scale)."""
    wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper == 'AmpOptimWrapper':
        print_log('AMP is already enabled in the config', logger='current',
                  level=logging.WARNING)
        return
    if wrapper != 'OptimWrapper':
        raise ValueError(f'--amp needs optim_wrapper.type OptimWrapper, got {wrapper}')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')


def main() -> None:
    args = parse_args()
    cast_mm.setup_env()
    cfg = load_tool_config(args.config, args.launcher, args.cfg_options, args.work_dir)
    if args.amp:
        enable_amp(cfg)
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg:
            raise ValueError('--auto-scale-lr needs auto_scale_lr.base_batch_size in the config')
        cfg.auto_scale_lr.enable = True
    restarts = restart_count()
    if restarts and not args.resume:
        print_log(f'Restart {restarts} of this job: resuming from the newest complete '
                  'checkpoint of the work folder.', logger='current')
        args.resume = True
    cfg.resume = args.resume
    if args.resume and cfg.get('load_from') is None:
        # MMEngine resumes from the file last_checkpoint names even when it is missing or
        # truncated; take the newest readable checkpoint instead (None: start afresh).
        cfg.load_from = find_resumable_checkpoint(cfg.work_dir)
        cfg.resume = cfg.load_from is not None
    setup_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    runner.train()
    close_distributed()


if __name__ == '__main__':
    main()

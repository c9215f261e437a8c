"""Evaluate a checkpoint (MMSegmentation or MMPretrain config).

Usage is that of mmseg's ``tools/test.py``; the checkpoint is a cast_mm checkpoint, an
official CAST file (converted when loaded) or its URL (downloaded once into torch hub's
cache)::

    python tools/test.py configs/cast/cast-s_ade20k.py work_dirs/cast-s_ade20k/iter_161728.pth
    python tools/test.py configs/cast/cast-s_8xb128_in1k.py \
        https://huggingface.co/twke/CAST/resolve/main/snapshots/deit/imagenet1k/cast_small/best_checkpoint.pth
    python tools/test.py CONFIG CHECKPOINT --tta --show-dir vis
"""
import argparse
import os

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

import cast_mm
from cast_mm.utils import close_distributed, load_tool_config, setup_cpu_distributed


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and evaluate) a cast_mm model')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        'checkpoint',
        help='a cast_mm checkpoint, an official CAST file (path, converted when loaded) or '
        'its URL (https://huggingface.co/twke/CAST/resolve/main/..., downloaded once)')
    parser.add_argument('--work-dir', help='where metrics are dumped')
    parser.add_argument('--out', help='directory for raw predictions (mmseg evaluators)')
    parser.add_argument('--show', action='store_true', help='show predictions')
    parser.add_argument('--show-dir', help='directory for painted predictions')
    parser.add_argument('--wait-time', type=float, default=2, help='show interval (s)')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def enable_visualization(cfg: Config, args: argparse.Namespace) -> None:
    """Make the visualization hook draw (and show / save) predictions."""
    hook = cfg.default_hooks.get('visualization')
    if hook is None:
        raise ValueError("--show/--show-dir need default_hooks.visualization "
                         "(e.g. dict(type='SegVisualizationHook'))")
    hook['draw'] = True
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time
    if args.show_dir:
        cfg.visualizer['save_dir'] = args.show_dir


def main() -> None:
    args = parse_args()
    cast_mm.setup_env()
    cfg = load_tool_config(args.config, args.launcher, args.cfg_options, args.work_dir)
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        enable_visualization(cfg, args)
    if args.tta:
        if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
            raise ValueError('--tta needs tta_model and tta_pipeline in the config')
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    if args.out is not None:
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True
    setup_cpu_distributed(cfg)
    Runner.from_cfg(cfg).test()
    close_distributed()


if __name__ == '__main__':
    main()

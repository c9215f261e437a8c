"""The README's main job on its bundled default: train, evaluate and apply CAST-S on CPU.

    python3 tools/demo.py [--work-dir work_dirs/cast-s_demo] [--iters 200] [--image IMG]

Trains ``configs/cast/cast-s_demo.py`` (the official ADE20K recipe shrunk to 128-pixel crops)
on a synthetic ADE20K-layout dataset generated in ``data/cast_demo_ade20k`` on first use,
evaluates mIoU on its validation split, saves a checkpoint, then segments an image with
``mmseg.apis.inference_model`` and writes the picture. No downloads; a few minutes on a CPU.
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

import mmcv
from mmengine.config import Config
from mmengine.runner import Runner
from mmseg.apis import inference_model, init_model
from mmseg.visualization import SegLocalVisualizer

import cast_mm

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_CONFIG = osp.join(REPO, 'configs', 'cast', 'cast-s_demo.py')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config', default=DEMO_CONFIG, help='config to train')
    parser.add_argument('--work-dir', default='work_dirs/cast-s_demo',
                        help='logs, checkpoint and picture go here')
    parser.add_argument('--iters', type=int, help='training iterations (config: 200)')
    parser.add_argument('--image', help='image to segment (default: a validation image)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    cast_mm.setup_env()
    cfg = Config.fromfile(args.config)
    cfg.work_dir = args.work_dir
    if args.iters:
        cfg.train_cfg.max_iters = cfg.train_cfg.val_interval = args.iters
        cfg.default_hooks.checkpoint.interval = args.iters
        cfg.param_scheduler[0].end = args.iters
    runner = Runner.from_cfg(cfg)
    runner.train()
    miou = runner.message_hub.get_scalar('val/mIoU').current()
    checkpoint = osp.join(args.work_dir, f'iter_{cfg.train_cfg.max_iters}.pth')

    model = init_model(cfg, checkpoint, device='cpu')
    image = args.image or sorted(runner.val_dataloader.dataset.get_data_info(i)['img_path']
                                 for i in range(len(runner.val_dataloader.dataset)))[0]
    result = inference_model(model, image)
    visualizer = SegLocalVisualizer(name='cast_demo', alpha=0.6)
    visualizer.dataset_meta = model.dataset_meta
    picture = osp.join(args.work_dir, 'demo_prediction.png')
    visualizer.add_datasample('prediction', mmcv.imread(image, channel_order='rgb'), result,
                              draw_gt=False, out_file=picture)
    classes = model.dataset_meta['classes']
    found = sorted({classes[i] for i in result.pred_sem_seg.data.unique().tolist()})
    print(f'validation mIoU after {cfg.train_cfg.max_iters} iterations: {miou:.2f}')
    print(f'checkpoint: {checkpoint}')
    print(f'prediction for {image}: {", ".join(found)}')
    print(f'picture: {picture}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

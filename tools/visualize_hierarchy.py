"""Draw CAST's part-to-whole segmentation hierarchy of images.

    python tools/visualize_hierarchy.py IMAGE_OR_FOLDER CONFIG CHECKPOINT --out DIR

For every image it writes ``<stem>_level0.png`` (superpixels) .. ``<stem>_level4.png`` and
``<stem>_panel.png`` (image and all levels side by side) to ``DIR``. CONFIG is an MMEngine
config whose ``model`` is a CAST backbone or holds one as ``.backbone``; optional
``hierarchy_cfg`` (``mean``, ``std``, ``superpixel_cfg``) and ``visualizer`` entries are used
when present. CHECKPOINT is a cast_mm checkpoint (``backbone.*`` keys load into a bare
backbone), or ``random`` for a seeded random initialisation (the hierarchy is still well
formed, but not learned).
"""
import argparse
import os
import os.path as osp
from typing import List

import cv2
import torch
from mmengine.config import Config, DictAction
from mmengine.registry import MODELS, VISUALIZERS, init_default_scope
from mmengine.runner import load_checkpoint
from mmengine.utils import ProgressBar

from cast_mm.apis import HierarchyExtractor, load_rgb_image
from cast_mm.models import CAST

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Draw the CAST segmentation hierarchy')
    parser.add_argument('image', help='an image file or a folder of images')
    parser.add_argument('config', help='MMEngine config with a model holding a CAST backbone')
    parser.add_argument('checkpoint', help="checkpoint file, or 'random' for random weights")
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--short-side', type=int, default=224,
                        help='resize images so the shorter side has this length (0: keep)')
    parser.add_argument('--batch-size', type=int, default=1, help='images per forward pass')
    parser.add_argument('--device', default='cpu', help='torch device')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. model.arch=small')
    return parser.parse_args(argv)


def list_images(path: str) -> List[str]:
    """The image files under ``path`` (sorted), or ``[path]`` for a file."""
    if osp.isfile(path):
        return [path]
    if not osp.isdir(path):
        raise FileNotFoundError(f'no such image or folder: {path}')
    files = sorted(osp.join(path, name) for name in os.listdir(path)
                   if name.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
        raise FileNotFoundError(f'no images ({", ".join(IMAGE_EXTENSIONS)}) in {path}')
    return files


def resize_short_side(image, short_side: int):
    """Resize so the shorter side is ``short_side`` (no-op for 0)."""
    height, width = image.shape[:2]
    if short_side <= 0 or min(height, width) == short_side:
        return image
    scale = short_side / min(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def build_model(cfg: Config, checkpoint: str, device: str) -> torch.nn.Module:
    """Build ``cfg.model`` and load ``checkpoint`` (``'random'``: a seeded initialisation)."""
    if checkpoint == 'random':
        torch.manual_seed(0)  # the same random weights, hence the same pictures, every run
    model = MODELS.build(cfg.model)
    if checkpoint == 'random':
        model.init_weights()
    else:
        # Converted and trained checkpoints name backbone weights ``backbone.*``.
        revise = [(r'^backbone\.', '')] if isinstance(model, CAST) else [(r'^module\.', '')]
        load_checkpoint(model, checkpoint, map_location='cpu', revise_keys=revise)
    return model.to(device).eval()


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.batch_size < 1:
        raise SystemExit(f'--batch-size must be >= 1, got {args.batch_size}')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'cast_mm'))
    paths = list_images(args.image)
    model = build_model(cfg, args.checkpoint, args.device)
    extractor = HierarchyExtractor(model, **cfg.get('hierarchy_cfg', {}))
    vis_cfg = dict(cfg.get('visualizer', dict(type='cast_mm.HierarchyVisualizer')))
    vis_cfg.update(name='visualize_hierarchy', save_dir=None)
    visualizer = VISUALIZERS.build(vis_cfg)

    progress = ProgressBar(len(paths)) if len(paths) > 1 else None
    for start in range(0, len(paths), args.batch_size):
        chunk = paths[start:start + args.batch_size]
        images = [resize_short_side(load_rgb_image(p), args.short_side) for p in chunk]
        for path, image, hierarchy in zip(chunk, images, extractor(images)):
            stem = osp.splitext(osp.basename(path))[0]
            visualizer.add_hierarchy(stem, image, hierarchy, out_dir=args.out)
            if progress is not None:
                progress.update()
    print(f'\nwrote {len(paths)} hierarchies to {args.out}')


if __name__ == '__main__':
    main()

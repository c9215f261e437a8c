"""Draw CAST's part-to-whole segmentation hierarchy of images.

    python tools/visualize_hierarchy.py IMAGE_OR_FOLDER --model cast-s_deit_in1k --out DIR
    python tools/visualize_hierarchy.py IMAGE_OR_FOLDER CONFIG CHECKPOINT --out DIR

For every image it writes ``<stem>_level0.png`` (superpixels) .. ``<stem>_level4.png`` and
``<stem>_panel.png`` (the image the model saw and all levels side by side) to ``DIR``.

``--model`` names a model of ``configs/cast/metafile.yml`` with official weights (e.g.
``cast-s_deit_in1k``, ``cast-s_mocov3-100e_8xb32_in1k``, ``cast-b_moco-hierarchy``): its
config is used and its weights are downloaded on first use (then cached; see the README,
"Pretrained models"). Otherwise CONFIG is any MMEngine config whose ``model`` is a CAST backbone
or holds one (as ``.backbone``: segmentors, classifiers, MoCo-v3), and CHECKPOINT is a
checkpoint of it (path or URL; official files are converted when loaded, ``backbone.*`` keys
load into a bare backbone), or ``random`` for a seeded random initialisation (the hierarchy is
still well formed, but not learned). The model is built by :func:`cast_mm.apis.init_model`
(the config's own ``init_cfg`` checkpoints are not loaded) and read by
:class:`cast_mm.apis.HierarchyExtractor`: a model with a test pipeline and a data preprocessor
sees each image as at test time (resize, crop, the config's SEEDS step); a bare backbone sees
it resized to ``--short-side``, normalised and cut into superpixels as the config's optional
``hierarchy_cfg`` (``mean``, ``std``, ``superpixel_cfg``) says. A ``visualizer`` of the config
is used when it is a ``HierarchyVisualizer``.
"""
import argparse
import os
import os.path as osp
from typing import List

import torch
from mmengine.config import DictAction
from mmengine.registry import VISUALIZERS
from mmengine.utils import ProgressBar

import cast_mm
from cast_mm.apis import HierarchyExtractor, init_model
from cast_mm.checkpoints import model_info

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Draw the CAST segmentation hierarchy')
    parser.add_argument('image', help='an image file or a folder of images')
    parser.add_argument('config', nargs='?',
                        help='MMEngine config with a model holding a CAST backbone')
    parser.add_argument('checkpoint', nargs='?',
                        help="checkpoint file or URL, or 'random' for random weights")
    parser.add_argument('--model', help='a model name of configs/cast/metafile.yml with '
                        'official weights, instead of CONFIG and CHECKPOINT')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--short-side', type=int, default=None,
                        help='bare backbones: resize images so the shorter side has this '
                        'length (default 224; 0: keep); configs with a test pipeline size '
                        'images themselves')
    parser.add_argument('--batch-size', type=int, default=1, help='images per forward pass')
    parser.add_argument('--device', default='cpu', help='torch device')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. model.arch=small')
    args = parser.parse_args(argv)
    if args.model is not None:
        if args.config is not None or args.checkpoint is not None:
            parser.error('--model brings the config and weights of the model: give IMAGE only')
        try:
            info = model_info(args.model)
        except ValueError as err:
            parser.error(str(err))
        if not info['weights']:
            parser.error(f'{args.model} has no official weights; pass CONFIG CHECKPOINT')
        args.config, args.checkpoint = info['config'], info['weights']
    elif args.config is None or args.checkpoint is None:
        parser.error('give CONFIG and CHECKPOINT (or random), or --model NAME')
    return args


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


def extractor_settings(model, short_side) -> dict:
    """``HierarchyExtractor`` arguments: none for a model that follows its config, else the
    config's ``hierarchy_cfg`` and the shorter side."""
    extractor = HierarchyExtractor(model)
    if extractor.follows_config:
        if short_side is not None:
            raise SystemExit('--short-side is for bare backbones: this config\'s test pipeline '
                             'sizes the images')
        return {}
    settings = dict(model.cfg.get('hierarchy_cfg') or {})
    settings['short_side'] = 224 if short_side is None else short_side
    return settings


def build_visualizer(cfg):
    """The config's visualizer if it draws hierarchies, else a ``HierarchyVisualizer``."""
    vis_cfg = dict(type='cast_mm.HierarchyVisualizer')
    configured = cfg.get('visualizer')
    if configured and 'HierarchyVisualizer' in str(configured.get('type', '')):
        vis_cfg = dict(configured)
    vis_cfg.update(name='visualize_hierarchy', save_dir=None)
    return VISUALIZERS.build(vis_cfg)


def main(argv=None) -> None:
    args = parse_args(argv)
    cast_mm.setup_env()  # as the other tools: the compatibility measures of cast_mm.compat
    if args.batch_size < 1:
        raise SystemExit(f'--batch-size must be >= 1, got {args.batch_size}')
    paths = list_images(args.image)
    torch.manual_seed(0)  # 'random': the same weights, hence the same pictures, every run
    checkpoint = None if args.checkpoint == 'random' else args.checkpoint
    model = init_model(args.config, checkpoint, args.device, args.cfg_options)
    extractor = HierarchyExtractor(model, **extractor_settings(model, args.short_side))
    visualizer = build_visualizer(model.cfg)

    progress = ProgressBar(len(paths)) if len(paths) > 1 else None
    for start in range(0, len(paths), args.batch_size):
        chunk = paths[start:start + args.batch_size]
        for path, result in zip(chunk, extractor.run(chunk)):
            stem = osp.splitext(osp.basename(path))[0]
            visualizer.add_hierarchy(stem, result.image, result.hierarchy, out_dir=args.out)
            if progress is not None:
                progress.update()
    print(f'\nwrote {len(paths)} hierarchies to {args.out}')


if __name__ == '__main__':
    main()

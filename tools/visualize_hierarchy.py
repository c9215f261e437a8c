"""Draw CAST's part-to-whole segmentation hierarchy of images.

    python tools/visualize_hierarchy.py IMAGE_OR_FOLDER --model cast-s_deit_in1k --out DIR
    python tools/visualize_hierarchy.py IMAGE_OR_FOLDER CONFIG CHECKPOINT --out DIR

For every image it writes ``<stem>_level0.png`` (superpixels) .. ``<stem>_level4.png`` and
``<stem>_panel.png`` (image and all levels side by side) to ``DIR``.

``--model`` names a model of ``configs/cast/metafile.yml`` with official weights (e.g.
``cast-s_deit_in1k``, ``cast-s_mocov3-100e_8xb32_in1k``, ``cast-b_moco-hierarchy``): its
config is used and its weights are downloaded on first use (then cached; see the README,
"Pretrained models"). Otherwise CONFIG is any MMEngine config whose ``model`` is a CAST backbone
or holds one (as ``.backbone``: segmentors, classifiers, MoCo-v3), and CHECKPOINT is a
checkpoint of it (path or URL; official files are converted when loaded, ``backbone.*`` keys
load into a bare backbone), or ``random`` for a seeded random initialisation (the hierarchy is
still well formed, but not learned). The config's own ``init_cfg`` checkpoints are not loaded.
Optional ``hierarchy_cfg`` (``mean``, ``std``, ``superpixel_cfg``) in the config sets the
extraction; without it the model's data preprocessor gives ``mean`` and ``std``. A
``visualizer`` of the config is used when it is a ``HierarchyVisualizer``.
"""
import argparse
import os
import os.path as osp
from typing import List

import cv2
import torch
from mmengine.config import Config, DictAction
from mmengine.registry import MODELS, VISUALIZERS, init_default_scope
from mmengine.runner import CheckpointLoader
from mmengine.runner.checkpoint import load_state_dict
from mmengine.utils import ProgressBar

import cast_mm
from cast_mm.apis import HierarchyExtractor, get_cast_backbone, load_rgb_image
from cast_mm.checkpoints import check_cast_weights, model_info

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
    parser.add_argument('--short-side', type=int, default=224,
                        help='resize images so the shorter side has this length (0: keep)')
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


def resize_short_side(image, short_side: int):
    """Resize so the shorter side is ``short_side`` (no-op for 0)."""
    height, width = image.shape[:2]
    if short_side <= 0 or min(height, width) == short_side:
        return image
    scale = short_side / min(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def drop_pretrained(cfg):
    """Remove ``Pretrained`` entries from every ``init_cfg`` in a model config (in place)."""
    if isinstance(cfg, dict):
        init = cfg.get('init_cfg')
        if isinstance(init, dict) and init.get('type') == 'Pretrained':
            cfg['init_cfg'] = None
        elif isinstance(init, (list, tuple)):
            kept = [c for c in init if not (isinstance(c, dict) and c.get('type') == 'Pretrained')]
            cfg['init_cfg'] = kept or None
        for value in cfg.values():
            drop_pretrained(value)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            drop_pretrained(value)
    return cfg


def load_weights(model: torch.nn.Module, checkpoint: str) -> None:
    """Load ``checkpoint`` into ``model``, refusing weights that are not its CAST's."""
    backbone = get_cast_backbone(model)
    prefix = next(name for name, module in model.named_modules() if module is backbone)
    prefix = prefix + '.' if prefix else ''
    loaded = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    state = loaded.get('state_dict', loaded) if isinstance(loaded, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f'checkpoint {checkpoint} holds no state dict')
    state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
    if not prefix:  # a bare backbone: checkpoints of whole models name it ``backbone.*``
        if any(k.startswith('backbone.') for k in state):
            state = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    check_cast_weights(backbone, state, prefix)
    load_state_dict(model, state)


def build_model(cfg: Config, checkpoint: str, device: str) -> torch.nn.Module:
    """Build ``cfg.model`` and load ``checkpoint`` (``'random'``: a seeded initialisation).

    The config's ``Pretrained`` initialisation is not run either way.
    """
    if checkpoint == 'random':
        torch.manual_seed(0)  # the same random weights, hence the same pictures, every run
    model = MODELS.build(drop_pretrained(cfg.model))
    if checkpoint == 'random':
        model.init_weights()
    else:
        load_weights(model, checkpoint)
    return model.to(device).eval()


def hierarchy_settings(cfg: Config) -> dict:
    """``HierarchyExtractor`` arguments: ``hierarchy_cfg``, else the data preprocessor's."""
    if cfg.get('hierarchy_cfg'):
        return dict(cfg.hierarchy_cfg)
    preprocessor = cfg.model.get('data_preprocessor') or cfg.get('data_preprocessor') or {}
    settings = {}
    if preprocessor.get('mean') is not None and preprocessor.get('std') is not None:
        settings.update(mean=list(preprocessor['mean']), std=list(preprocessor['std']))
    return settings


def build_visualizer(cfg: Config):
    """The config's visualizer if it draws hierarchies, else a ``HierarchyVisualizer``."""
    vis_cfg = dict(type='cast_mm.HierarchyVisualizer')
    configured = cfg.get('visualizer')
    if configured and 'HierarchyVisualizer' in str(configured.get('type', '')):
        vis_cfg = dict(configured)
    vis_cfg.update(name='visualize_hierarchy', save_dir=None)
    return VISUALIZERS.build(vis_cfg)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.batch_size < 1:
        raise SystemExit(f'--batch-size must be >= 1, got {args.batch_size}')
    cast_mm.setup_env()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'cast_mm'))
    paths = list_images(args.image)
    model = build_model(cfg, args.checkpoint, args.device)
    extractor = HierarchyExtractor(model, **hierarchy_settings(cfg))
    visualizer = build_visualizer(cfg)

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

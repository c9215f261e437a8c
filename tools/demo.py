"""Run CAST on photographs bundled with scikit-image and print what each stage produced.

    python tools/demo.py [--arch small] [--checkpoint cast-s_moco_in1k.pth] [--images a.jpg ...]

Without ``--images`` it uses scikit-image's bundled photographs (no downloads). Without
``--checkpoint`` the weights are random (the segment hierarchy is still well formed); pass a
checkpoint converted with tools/model_converters/cast_official_to_mm.py for trained weights.
"""
import argparse
import time

import cv2
import numpy as np
import torch

from cast_mm.datasets import SEEDSSuperpixels
from cast_mm.models import CAST
from cast_mm.models.layers import level_assignments

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--arch', default='small', help='CAST arch (small, small-deep, ...)')
    parser.add_argument('--pos-embed', default='sincos', choices=('sincos', 'learned'))
    parser.add_argument('--checkpoint', help='converted cast_mm checkpoint (backbone.* keys)')
    parser.add_argument('--images', nargs='+', help='image files (default: skimage photos)')
    parser.add_argument('--size', type=int, default=224, help='square input size')
    return parser.parse_args(argv)


def load_images(paths, size):
    if paths:
        images = {p: cv2.imread(p, cv2.IMREAD_COLOR) for p in paths}
        missing = [p for p, img in images.items() if img is None]
        if missing:
            raise SystemExit(f'cannot read image(s): {", ".join(missing)}')
        images = {p: cv2.cvtColor(img, cv2.COLOR_BGR2RGB) for p, img in images.items()}
    else:
        from skimage import data
        images = {name: getattr(data, name)() for name in ('astronaut', 'coffee', 'chelsea')}
    return {name: cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
            for name, img in images.items()}


def main(argv=None) -> None:
    args = parse_args(argv)
    init_cfg = None
    if args.checkpoint:
        init_cfg = dict(type='Pretrained', checkpoint=args.checkpoint, prefix='backbone.')
    model = CAST(arch=args.arch, mode='classification', pos_embed=args.pos_embed,
                 img_size=args.size, mask_padding=True, init_cfg=init_cfg)
    model.init_weights()
    model.eval()
    seeds = SEEDSSuperpixels(preset='moco', channel_order='rgb')
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    print(f'CAST-{args.arch} ({"random" if not args.checkpoint else args.checkpoint} weights), '
          f'{args.size}x{args.size} input, clusters {model.num_clusters}')
    for name, image in load_images(args.images, args.size).items():
        superpixels = torch.from_numpy(seeds.compute(image))[None]
        inputs = ((torch.from_numpy(image).permute(2, 0, 1) / 255. - mean) / std)[None]
        start = time.perf_counter()
        with torch.no_grad():
            feats = model.forward_features(inputs.float(), superpixels)
        elapsed = (time.perf_counter() - start) * 1e3
        chain = level_assignments(feats.pool_logits)
        valid = ~feats.padding_masks[0][0]
        groups = [int(np.unique(level[0][valid].numpy()).size) for level in chain]
        print(f'{name}: {int(superpixels.max()) + 1} SEEDS superpixels, '
              f'{int(valid.sum())} stage-1 tokens; segments per level {groups}; '
              f'class-token feature {tuple(feats.cls_feature.shape[1:])}; {elapsed:.0f} ms')


if __name__ == '__main__':
    main()

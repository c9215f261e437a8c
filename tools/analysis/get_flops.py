"""Parameters and GFLOPs of the model of any mmseg or mmpretrain config, ours included.

    python tools/analysis/get_flops.py CONFIG [--shape H W] [--cfg-options KEY=VALUE ...]

CONFIG is a path or ``package::path`` (``mmseg::vit/vit_deit-s16_upernet_8xb2-160k_ade20k-
512x512.py``). One image of ``H x W`` (default 512 x 512) goes through the inference forward
pass; a config whose pipeline makes superpixels gets them as its pipeline makes them. FLOPs are
multiply-adds, as mmseg and mmpretrain publish them (:mod:`cast_analysis.flops`).
"""
import argparse
import sys

from mmengine.config import DictAction

from cast_analysis import quiet_logs
from cast_analysis.flops import model_complexity


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='config path or package::path')
    parser.add_argument('--shape', type=int, nargs=2, default=[512, 512], metavar=('H', 'W'),
                        help='input image height and width (default 512 512)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config values, as tools/train.py takes them')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    quiet_logs()
    result = model_complexity(args.config, tuple(args.shape), args.cfg_options)
    superpixels = (f', {result["superpixels"]} superpixels' if result['superpixels'] is not None
                   else '')
    print(f'{args.config}\ninput {args.shape[0]}x{args.shape[1]}{superpixels}\n'
          f'params {result["params"] / 1e6:.2f} M\nGFLOPs {result["flops"] / 1e9:.2f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

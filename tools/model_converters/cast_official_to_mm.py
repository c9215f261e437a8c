"""Convert an official CAST checkpoint to a cast_mm (MMEngine) checkpoint.

    python tools/model_converters/cast_official_to_mm.py SRC DST

Not needed to use the official files: they load, converted in memory, wherever a checkpoint
is accepted (a path or their URL). SRC may be any official layout: DeiT
(``best_checkpoint.pth``), MoCo-v3 pre-training (``checkpoint_0099.pth.tar``), MoCo-v3 linear
probing, or Segmenter fine-tuning (``checkpoint.pth``). The layout is detected and printed;
unknown files are refused with what they look like and their top-level keys. DST holds
``state_dict`` (``backbone.*``, ``head.fc.*`` for a linear classifier, ``decode_head.decoder.*``
for a Segmenter decoder, ``neck.*`` / ``head.predictor.*`` for the MoCo-v3 projector /
predictor) and ``meta``.

SRC is read with torch's safe unpickler (the official files need nothing else); a file that
would run code when unpickled is refused unless ``--trust-pickle`` is given (only for files you
trust). Truncated or corrupt files, and files that are no official CAST checkpoint, are refused
with the reason.
"""
import argparse
import os
import os.path as osp
import sys

import torch

from cast_mm.checkpoints import (LAYOUTS, CheckpointError, UnknownCheckpointLayout,
                                 convert_official_checkpoint, read_checkpoint)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='official checkpoint file')
    parser.add_argument('dst', help='output cast_mm checkpoint (.pth)')
    parser.add_argument('--layout', choices=LAYOUTS, help='skip detection, force this layout')
    parser.add_argument('--trust-pickle', action='store_true',
                        help='allow full unpickling, which can run code from the file: only '
                        'for files you trust (no official file needs it)')
    parser.add_argument('--classes', nargs='+',
                        help='class names to store as meta.dataset_meta.classes')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        checkpoint = read_checkpoint(args.src, trust_pickle=args.trust_pickle)
        converted = convert_official_checkpoint(checkpoint, layout=args.layout)
    except (UnknownCheckpointLayout, CheckpointError, FileNotFoundError, ValueError) as err:
        print(f'error: {args.src}: {err}' if args.src not in str(err) else f'error: {err}',
              file=sys.stderr)
        return 1
    arch = converted.arch
    print(f'{args.src}: layout {converted.layout!r} (official {converted.family}.py), '
          f"{arch['mode']} model, embed_dims {arch['embed_dims']}, depths {arch['depths']}, "
          f"{arch['pos_embed']} position embedding")
    dataset_meta = dict(classes=tuple(args.classes)) if args.classes else None
    out = converted.to_mmengine(dataset_meta)
    parts = sorted({key.split('.')[0] if not key.startswith(('head.', 'decode_head.'))
                    else '.'.join(key.split('.')[:2]) for key in out['state_dict']})
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    torch.save(out, args.dst)
    print(f'wrote {args.dst}: {len(out["state_dict"])} tensors ({", ".join(parts)})')
    return 0


if __name__ == '__main__':
    sys.exit(main())

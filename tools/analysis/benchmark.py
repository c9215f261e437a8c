"""Speed, memory and superpixel benchmark of CAST, built from the shipped configs.

    python tools/analysis/benchmark.py [--device cpu|cuda] [--threads 2] [--warmup N]
        [--repeats N] [--time-budget S] [--precision fp32 amp]
        [--sections models train upernet loader switches profile fps superpixels quality
                    compile kernels explorer]
        [--no-memory] [--no-host-syncs] [--chromium PATH] [--smoke] [--json run.json]

CAST-S (fast and literal, with and without activation checkpointing) against mmseg's
Segmenter ViT-S and mmpretrain's DeiT-S, every model built from its config with the overrides
printed beside the table; CAST-S UPerNet beside mmseg's DeiT-S UPerNet (the same head); the
train pipeline of every training config on one loader worker thread beside the train step;
each execution-profile switch against the fast model. All numbers of one run come from one
machine, with the configurations of a section timed in interleaved rounds (median); sections
run in the order above. The protocol is in docs/performance.md. ``--json`` writes the run
record (tables, numbers, date, machine and command); ``tools/analysis/render_tables.py``
renders it as Markdown. The building blocks are the package
``cast_analysis`` beside this file.
"""
import argparse
import sys

import torch

from cast_analysis import Settings, new_run, quiet_logs, write_json
from cast_analysis.benchmark import SECTIONS, Options
from cast_analysis.explorer import find_chromium
from cast_analysis.measure import host_read_counter_available
from cast_analysis.models import SMOKE_TASK_SIZES, TASK_SIZES
from cast_analysis.report import command_line, describe_machine

#: Share of the time budget each section's timed rounds may take (sections without timed
#: rounds take none).
BUDGET_WEIGHTS = dict(models=2, train=4, upernet=2, loader=1, switches=4, profile=0, fps=1,
                      superpixels=1, quality=0, compile=1, kernels=1, explorer=0)
#: Sections a run leaves out unless asked for.
OPT_IN = ('switches', 'compile', 'kernels', 'explorer')
#: Defaults per device type: (warm-up rounds, timed rounds, time budget in seconds).
DEVICE_DEFAULTS = dict(cpu=(1, 5, None), cuda=(3, 20, 300))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda[:i]' (default cpu)")
    parser.add_argument('--threads', type=int, help='torch CPU threads (default: torch default)')
    parser.add_argument('--warmup', type=int, help='untimed rounds (default 1 on CPU, 3 on CUDA)')
    parser.add_argument('--repeats', type=int,
                        help='timed rounds (default 5 on CPU, 20 on CUDA)')
    parser.add_argument('--time-budget', type=float,
                        help='seconds the timed rounds of all sections may take together, '
                        'shared by weight (default: none on CPU, 300 on CUDA); at least one '
                        'timed round always runs')
    parser.add_argument('--precision', nargs='+', choices=('fp32', 'amp'),
                        help='model sections: float32 and/or AMP (float16 autocast, '
                        "AmpOptimWrapper; CUDA only). Default: fp32 on CPU, both on CUDA")
    parser.add_argument('--mosaics', type=int, default=6,
                        help='photo mosaics per size for superpixel quality (default 6)')
    parser.add_argument('--sections', nargs='+', choices=list(SECTIONS),
                        default=[s for s in SECTIONS if s not in OPT_IN],
                        help='run in the order listed here; default: every section but '
                        f'{", ".join(OPT_IN)} (explorer needs Chromium and the demo '
                        'requirements)')
    parser.add_argument('--no-memory', action='store_true',
                        help='skip the peak-memory measurements (child processes on CPU)')
    parser.add_argument('--no-host-syncs', action='store_true',
                        help='skip counting host synchronisations per step')
    parser.add_argument('--chromium',
                        help='explorer: the Chromium executable (default: chromium, '
                        'chromium-browser or google-chrome on PATH)')
    parser.add_argument('--smoke', action='store_true',
                        help=f'tiny images and batches {SMOKE_TASK_SIZES} (checks that it runs)')
    parser.add_argument('--json', help='write the run record to this file (after every section)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        print('CUDA requested but not available', file=sys.stderr)
        return 2
    warmup, repeats, budget = DEVICE_DEFAULTS.get(device.type, DEVICE_DEFAULTS['cpu'])
    precisions = tuple(args.precision or (('fp32', 'amp') if device.type == 'cuda'
                                          else ('fp32',)))
    if 'amp' in precisions and device.type != 'cuda':
        print('--precision amp needs --device cuda', file=sys.stderr)
        return 2
    budget = args.time_budget if args.time_budget is not None else budget
    sections = [s for s in SECTIONS if s in args.sections]
    chromium = None
    if 'explorer' in sections:
        try:
            chromium = find_chromium(args.chromium)
        except FileNotFoundError as error:
            print(error, file=sys.stderr)
            return 2
    settings = Settings(device=args.device, threads=args.threads, smoke=args.smoke)
    settings.apply()
    quiet_logs()
    weights = sum(BUDGET_WEIGHTS[s] for s in sections) or 1
    base = dict(warmup=args.warmup if args.warmup is not None else warmup,
                repeats=args.repeats if args.repeats is not None else repeats,
                precisions=precisions, memory=not args.no_memory,
                host_syncs=not args.no_host_syncs, mosaics=args.mosaics, chromium=chromium)
    run = new_run('benchmark', command_line('tools/analysis/benchmark.py', argv), args.device,
                  dict(base, sections=sections, time_budget_s=budget, smoke=args.smoke,
                       tasks=SMOKE_TASK_SIZES if args.smoke else TASK_SIZES,
                       host_reads_counted=device.type == 'cuda' or
                       host_read_counter_available()))
    print(f'# CAST benchmark\n\n{run["date"]}, {describe_machine(run["machine"])}; device '
          f'{device}; warm-up {base["warmup"]}, up to {base["repeats"]} timed rounds '
          f'(interleaved, median){f", time budget {budget:.0f} s" if budget else ""}; '
          f'{" and ".join(precisions)}{"; SMOKE sizes" if args.smoke else ""}')
    for section in sections:
        share = budget * BUDGET_WEIGHTS[section] / weights if budget else None
        SECTIONS[section](run, settings, Options(max_seconds=share, **base))
        if args.json:  # after every section, so a long run keeps what it has measured
            write_json(run, args.json)
    return 0


if __name__ == '__main__':
    sys.exit(main())

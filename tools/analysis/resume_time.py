"""Time from ``--resume`` to the first new iteration: MMEngine's replay vs cast_mm's skip by index.

    python tools/analysis/resume_time.py [--iters 10000] [--replay-iters 100]
        [--config configs/cast/cast-s_demo.py] [--work-dir DIR] [--json run.json]

The protocol (trained checkpoint rewritten to iteration N, fresh processes resuming with
cast_mm's skip by index and with MMEngine's replay, replay extrapolated from ``--replay-iters``)
is in :mod:`cast_analysis.resume`.
"""

import argparse
import shutil
import tempfile
from typing import Dict

from cast_analysis import Table, add_table, new_run, write_json
from cast_analysis.report import command_line, describe_machine
from cast_analysis.resume import DEMO_CONFIG, measure_resume


def table(summary: Dict) -> Table:
    rows = [[run['mode'], run['iters'], f'{run["launch"]:.2f}', f'{run["positioning"]:.3f}',
             f'{run["first_iter_time"]:.2f}'] for run in summary['runs']]
    label = ' (extrapolated)' if summary['replay_at_iters_extrapolated'] else ''
    note = (f'replay cost per batch: {summary["replay_seconds_per_batch"]:.3f} s; resume at '
            f'iteration {summary["iters"]}: skip {summary["skip_at_iters"]:.1f} s, '
            f'replay{label} {summary["replay_at_iters"]:.1f} s')
    return Table('resume', f'resuming {summary["config"]}',
                 ['mode', 'resume at', 'launch -> first new iter (s)', 'positioning (s)',
                  'first iter (s)'], rows, [note])


def main(argv=None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=DEMO_CONFIG)
    parser.add_argument('--iters', type=int, default=10000,
                        help='the iteration the run resumes at')
    parser.add_argument('--replay-iters', type=int, default=100,
                        help='the iteration the replaying run resumes at')
    parser.add_argument('--train-iters', type=int, default=2,
                        help='iterations actually trained for the checkpoint')
    parser.add_argument('--num-workers', type=int,
                        help="data loader workers (default: the config's)")
    parser.add_argument('--work-dir', help='scratch folder (default: a temporary one)')
    parser.add_argument('--json', help='write the run record here')
    args = parser.parse_args(argv)
    for name in ('iters', 'replay_iters', 'train_iters'):
        if getattr(args, name) < 1:
            raise SystemExit(f'--{name.replace("_", "-")} must be >= 1')
    run = new_run('resume_time', command_line('tools/analysis/resume_time.py', argv), 'cpu',
                  {k: v for k, v in vars(args).items() if k != 'json'})
    work_dir = args.work_dir or tempfile.mkdtemp(prefix='resume_time_')
    summary = measure_resume(args.config, args.iters, args.replay_iters, args.train_iters,
                             args.num_workers, work_dir)
    run['results'] = summary
    print(f'{run["date"]}, {describe_machine(run["machine"])}')
    print('\n' + add_table(run, table(summary)).markdown())
    if args.json:
        write_json(run, args.json)
    if not args.work_dir:
        shutil.rmtree(work_dir, ignore_errors=True)
    return summary


if __name__ == '__main__':
    main()

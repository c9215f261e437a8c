"""What the peak memory of a CAST train step is made of: saved activations per module.

    python tools/analysis/memory_breakdown.py [--models cast_seg_literal cast_seg_fast ...]
        [--threads 2] [--top 12] [--json run.json] [--smoke]

The models and batches are the benchmark's (:mod:`cast_analysis`: built from the shipped
configs, real photographs through the config's pipeline, region labels). For each model one
untimed ``model.train_step`` makes the optimiser state resident, then a second step runs with

* ``torch.autograd.graph.saved_tensors_hooks``: every tensor autograd keeps for the backward
  pass, attributed to the innermost module (or labelled method) running when it was saved,
  counted once per storage; parameters and buffers are resident and left out;
* forward hooks on every module and wrappers on a few methods that run outside module
  ``forward`` calls (the decode head's losses, the backbone's token pooling), which name the
  places the tensors come from.

Saved activations are all alive when the backward pass starts, which is where a train step
peaks, so their sum plus the parameter gradients plus the largest backward temporaries is the
peak. The peak resident set above the resident level before the step (``VmHWM`` after a
reset, on Linux) is printed beside it to show how much of the peak the saved tensors explain.
Checkpointed blocks (``+cp``) save only their inputs; their recomputed activations are
transient in the backward pass.
"""

import argparse
import sys
from typing import Dict

from cast_analysis import Settings, Table, add_table, model_specs, new_run, quiet_logs, write_json
from cast_analysis.report import command_line, describe_machine
from cast_analysis.saved_tensors import breakdown


def mib(value: float) -> str:
    return f'{value / 2**20:.0f}'


def tables(result: Dict, top: int):
    """The two tables of one model: saved bytes by module, and the largest saved tensors."""
    name = result['model']
    summary = (f'peak above resident {mib(result["peak_above_resident"])} MiB; saved for '
               f'backward {mib(result["saved_total"])} MiB in {result["saved_tensors"]} '
               f'storages; parameter gradients {mib(result["parameter_gradients"])} MiB')
    rows = [[place, mib(size), count, f'{100 * size / max(result["saved_total"], 1):.1f}%']
            for place, size, count in result['by_module'] if size >= 2**20]
    yield Table('memory', f'{name}: saved for backward, by module',
                ['module', 'MiB', 'tensors', 'share'], rows, [summary])
    rows = [[place, mib(size), 'x'.join(map(str, shape)), dtype.replace('torch.', '')]
            for place, size, shape, dtype in result['largest'][:top]]
    yield Table('memory', f'{name}: {top} largest saved tensors',
                ['saved in', 'MiB', 'shape', 'dtype'], rows)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--models', nargs='+',
                        default=['cast_seg_literal', 'cast_seg_fast', 'cast_seg_fast+cp'],
                        help='CAST model names of the benchmark (cast_analysis.model_specs)')
    parser.add_argument('--threads', type=int, help='torch CPU threads')
    parser.add_argument('--top', type=int, default=12, help='largest tensors listed')
    parser.add_argument('--smoke', action='store_true', help='tiny images (checks that it runs)')
    parser.add_argument('--json', help='write the run record to this file')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    settings = Settings(threads=args.threads, smoke=args.smoke)
    known = [m for m in model_specs(settings) if m.startswith('cast_')]
    unknown = [m for m in args.models if m not in known]
    if unknown:
        raise SystemExit(f'unknown CAST model names {unknown}; choose from {known}')
    settings.apply()
    quiet_logs()
    run = new_run('memory_breakdown', command_line('tools/analysis/memory_breakdown.py', argv),
                  'cpu', dict(models=args.models, top=args.top, smoke=args.smoke))
    print(f'# Saved activations of one train step\n\n{run["date"]}, '
          f'{describe_machine(run["machine"])}')
    for name in args.models:
        result = breakdown(name, settings, args.top)
        run['results'][name] = result
        for table in tables(result, args.top):
            print('\n' + add_table(run, table).markdown(), flush=True)
    if args.json:
        write_json(run, args.json)
    return 0


if __name__ == '__main__':
    sys.exit(main())

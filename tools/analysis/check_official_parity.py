"""Check cast_mm against outputs recorded from the official CAST code.

    python tools/analysis/check_official_parity.py FIXTURE [--cases moco_cls deit_cls] [--literal]

Every case of the fixture is converted (tools/model_converters/cast_official_to_mm.py does the
same mapping), built, run on the case inputs and compared output by output. Prints one line per
case and quantity with the largest error, and exits 1 on any mismatch.
"""
import argparse
import sys

import torch

from cast_analysis.parity import DEFAULT_RTOL, check_fixture


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('fixture', help='fixture file: official checkpoints, inputs, outputs')
    parser.add_argument('--cases', nargs='+', help='only these cases')
    parser.add_argument('--rtol', type=float, default=DEFAULT_RTOL,
                        help='float tolerance as a fraction of the largest reference value '
                        f'(default {DEFAULT_RTOL})')
    parser.add_argument('--literal', action='store_true',
                        help='run the literal execution profile (the official computation, '
                        'cast_mm.models.execution_profile.LITERAL) instead of the fast default')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    # The fixture is a file of the project's own making that holds whole official checkpoints
    # (argparse.Namespace and all), so it is loaded with full unpickling.
    fixture = torch.load(args.fixture, map_location='cpu', weights_only=False)
    if not isinstance(fixture, dict) or 'cases' not in fixture:
        print(f'{args.fixture}: not a parity fixture (no "cases" entry)', file=sys.stderr)
        return 2
    rows = check_fixture(fixture, args.rtol, args.cases,
                         on_row=lambda row: print(row.format(), flush=True),
                         literal=args.literal)
    if not rows:
        print('no case checked', file=sys.stderr)
        return 1
    failed = sorted({row.case for row in rows if not row.ok})
    cases = sorted({row.case for row in rows})
    print(f'{len(cases) - len(failed)}/{len(cases)} cases at parity'
          + (f'; failing: {", ".join(failed)}' if failed else ''))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())

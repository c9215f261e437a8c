"""How fast the hierarchy explorer feels, measured from a real (headless) browser.

    python3 tools/analysis/explorer_timing.py            # both cases, JSON on stdout
    python3 tools/analysis/explorer_timing.py --case classification --repeats 10

A thin command line over :mod:`cast_mm.analysis.explorer` (what is measured: its docstring).
"""
import argparse
import json

from cast_mm.analysis.explorer import CASES, CHROMIUM, measure_explorer


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--case', choices=sorted(CASES), action='append',
                        help='case to measure (repeatable; default: all)')
    parser.add_argument('--repeats', type=int, default=5, help='timed uploads per case')
    parser.add_argument('--clicks', type=int, default=5, help='timed clicks per case')
    parser.add_argument('--chromium', default=CHROMIUM, help='Chromium executable')
    args = parser.parse_args(argv)
    results = [measure_explorer(case, args.repeats, args.clicks, args.chromium)
               for case in (args.case or sorted(CASES))]
    print(json.dumps(results, indent=2))


if __name__ == '__main__':
    main()

"""How fast the hierarchy explorer feels, measured from a real (headless) browser.

    python3 tools/analysis/explorer_timing.py            # both cases, JSON on stdout
    python3 tools/analysis/explorer_timing.py --case classification --repeats 10 [--chromium PATH]

A thin command line over :mod:`cast_analysis.explorer` (what is measured: its docstring).
"""
import argparse
import json
import sys

from cast_analysis.explorer import CASES, find_chromium, measure_explorer


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--case', choices=sorted(CASES), action='append',
                        help='case to measure (repeatable; default: all)')
    parser.add_argument('--repeats', type=int, default=5, help='timed uploads per case')
    parser.add_argument('--clicks', type=int, default=5, help='timed clicks per case')
    parser.add_argument('--chromium',
                        help='Chromium executable (default: chromium, chromium-browser or '
                        'google-chrome on PATH)')
    args = parser.parse_args(argv)
    try:
        chromium = find_chromium(args.chromium)
    except FileNotFoundError as error:
        print(error, file=sys.stderr)
        return 2
    results = [measure_explorer(case, args.repeats, args.clicks, chromium)
               for case in (args.case or sorted(CASES))]
    print(json.dumps(results, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())

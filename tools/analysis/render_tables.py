"""Print the tables of a run record (``--json`` of the analysis tools) as Markdown.

    python tools/analysis/render_tables.py RUN.json [--sections models train ...]
        [--heading '####']

The tables come under one line with the run's date, machine and command, as docs/performance.md
shows them.
"""
import argparse
import sys

from cast_analysis import read_json, render_markdown


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('run', help='a run record written with --json')
    parser.add_argument('--sections', nargs='+', help='only the tables of these sections')
    parser.add_argument('--heading', default='####', help="Markdown heading of each table "
                        "(default '####')")
    args = parser.parse_args(argv)
    try:
        text = render_markdown(read_json(args.run), args.sections, args.heading)
    except (OSError, ValueError) as error:
        print(error, file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""Run records: tables, the machine, the command and the date, as JSON and as Markdown.

A run record is the JSON a tool writes with ``--json``::

    {
      "format": "cast_mm.analysis.run/1",
      "tool": "benchmark",                   # which tool wrote it
      "date": "2026-12-06T03:10:00+00:00",   # start of the run, UTC
      "command": "python tools/analysis/benchmark.py ...",
      "machine": {"platform": ..., "cpu": ..., "cpus": ..., "gpu": ..., "torch": ...,
                  "torch_threads": ..., "omp_wait_policy": ..., "load_average": [...]},
      "settings": {...},                     # the tool's parsed options
      "tables": [{"section": ..., "title": ..., "columns": [...], "rows": [[...]],
                  "notes": [...]}],          # what is printed, cells as printed
      "results": {...}                       # the numbers, unformatted, keyed by section
    }

:func:`render_markdown` prints a record's tables with its date, machine and command (what
``tools/analysis/render_tables.py`` does).
"""
import dataclasses
import datetime
import json
import os
import platform
import shlex
import sys
from typing import Dict, List, Optional, Sequence

import torch

FORMAT = 'cast_mm.analysis.run/1'


@dataclasses.dataclass
class Table:
    """One printed table: cells as printed, and notes printed below it."""
    section: str
    title: str
    columns: List[str]
    rows: List[List[str]]
    notes: List[str] = dataclasses.field(default_factory=list)

    def markdown(self, heading: str = '####') -> str:
        cells = [list(map(str, self.columns))] + [[str(c) for c in row] for row in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.columns))]
        lines = [f'{heading} {self.title}', '']
        for i, row in enumerate(cells):
            lines.append('| ' + ' | '.join(c.ljust(w) for c, w in zip(row, widths)) + ' |')
            if i == 0:
                lines.append('|' + '|'.join('-' * (w + 2) for w in widths) + '|')
        if self.notes:
            lines.append('')
            lines.extend(f'{note}  ' if i < len(self.notes) - 1 else note
                         for i, note in enumerate(self.notes))
        return '\n'.join(lines)

    @classmethod
    def from_json(cls, data: Dict) -> 'Table':
        return cls(**{f.name: data.get(f.name, []) for f in dataclasses.fields(cls)})


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else ``platform.processor()``."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: str = 'cpu') -> Dict:
    """The machine a run measures: OS, CPU, GPU, torch and the load when it starts."""
    dev = torch.device(device)
    return dict(
        platform=platform.platform(), cpu=cpu_name(), cpus=os.cpu_count(),
        gpu=torch.cuda.get_device_name(dev) if dev.type == 'cuda' else None,
        torch=torch.__version__, torch_threads=torch.get_num_threads(),
        omp_wait_policy=os.environ.get('OMP_WAIT_POLICY'),
        load_average=list(os.getloadavg()) if hasattr(os, 'getloadavg') else None)


def command_line(tool_path: str, argv: Optional[Sequence[str]]) -> str:
    """How the tool was called, as a shell line (``argv`` None: this process's arguments)."""
    args = sys.argv[1:] if argv is None else list(argv)
    env = f'OMP_WAIT_POLICY={os.environ["OMP_WAIT_POLICY"]} ' \
        if 'OMP_WAIT_POLICY' in os.environ else ''
    return f'{env}python {tool_path} {shlex.join(args)}'.rstrip()


def new_run(tool: str, command: str, device: str, settings: Dict) -> Dict:
    """An empty run record started now."""
    return dict(format=FORMAT, tool=tool,
                date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
                command=command, machine=machine_info(device), settings=settings, tables=[],
                results={})


def add_table(run: Dict, table: Table) -> Table:
    """Append ``table`` to ``run`` and return it."""
    run['tables'].append(dataclasses.asdict(table))
    return table


def write_json(run: Dict, path: str) -> None:
    """Write a run record (NaN is written as ``null``)."""
    with open(path, 'w') as f:
        json.dump(_finite(run), f, indent=1, default=str)
        f.write('\n')


def read_json(path: str) -> Dict:
    """A run record; a ValueError names a file that is not one."""
    with open(path) as f:
        run = json.load(f)
    if not isinstance(run, dict) or run.get('format') != FORMAT:
        raise ValueError(f'{path}: not a run record of the analysis tools (format {FORMAT!r})')
    return run


def _finite(value):
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def describe_machine(machine: Dict) -> str:
    """One line: CPU, cores, GPU, OS, torch, threads, wait policy and load."""
    parts = [f'{machine["cpu"]} ({machine["cpus"]} CPUs)']
    if machine.get('gpu'):
        parts.append(f'GPU {machine["gpu"]}')
    parts.append(machine['platform'])
    parts.append(f'torch {machine["torch"]}, {machine["torch_threads"]} threads')
    parts.append(f'OMP_WAIT_POLICY={machine.get("omp_wait_policy") or "unset"}')
    if machine.get('load_average'):
        parts.append('load average at start ' +
                     ' / '.join(f'{x:.1f}' for x in machine['load_average']))
    return '; '.join(parts)


def render_markdown(run: Dict, sections: Optional[Sequence[str]] = None,
                    heading: str = '####') -> str:
    """The tables of a run record (only ``sections`` if given) as Markdown, under a line with
    the run's date, machine and command."""
    tables = [Table.from_json(t) for t in run['tables']
              if sections is None or t['section'] in sections]
    if sections is not None:
        missing = sorted(set(sections) - {t.section for t in tables})
        if missing:
            known = sorted({t['section'] for t in run['tables']})
            raise ValueError(f'sections {missing} are not in the run (it has {known})')
    lines = [f'Run of {run["date"][:10]} ({run["date"]}) on {describe_machine(run["machine"])}.',
             '', f'`{run["command"]}`']
    for table in tables:
        lines += ['', table.markdown(heading)]
    return '\n'.join(lines) + '\n'

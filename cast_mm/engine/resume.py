"""Which checkpoint of a work folder ``--resume`` continues from."""
import glob
import logging
import os
import os.path as osp
import re
from typing import List, Optional

from mmengine.logging import print_log

from cast_mm.checkpoints import checkpoint_problem
from .hooks.atomic_checkpoint_hook import TEMP_SUFFIX


def _step(path: str) -> int:
    match = re.search(r'(\d+)\.pth$', osp.basename(path))
    return int(match.group(1)) if match else -1


def checkpoint_candidates(work_dir: str) -> List[str]:
    """Checkpoint files of ``work_dir``, newest first (by modification time, then step)."""
    paths = [p for p in glob.glob(osp.join(glob.escape(work_dir), '*.pth'))
             if not p.endswith(TEMP_SUFFIX) and osp.isfile(p)]
    return sorted(paths, key=lambda p: (os.stat(p).st_mtime, _step(p)), reverse=True)


def find_resumable_checkpoint(work_dir: str) -> Optional[str]:
    """The newest readable checkpoint of ``work_dir`` (None when there is none).

    The newest is the one ``last_checkpoint`` names. When that file is missing or unreadable
    (:func:`~cast_mm.checkpoints.checkpoint_problem`: no unpickling, one read of the file), the
    newest readable checkpoint file of the folder is taken instead, with a warning that names
    both.

    Args:
        work_dir (str): The training work folder.
    """
    pointer = osp.join(work_dir, 'last_checkpoint')
    latest = None
    if osp.isfile(pointer):
        with open(pointer) as f:
            latest = f.read().strip() or None
    candidates = checkpoint_candidates(work_dir)
    if latest is not None:
        problem = checkpoint_problem(latest)
        if problem is None:
            return latest
        skipped = {osp.abspath(latest)}
    elif candidates:
        latest, problem, skipped = candidates[0], None, set()
    else:
        return None
    for path in candidates:
        if osp.abspath(path) in skipped:
            continue
        other = checkpoint_problem(path)
        if other is None:
            if problem is not None:
                print_log(f'The newest {problem}; resuming from the newest readable one, {path}.',
                          logger='current', level=logging.WARNING)
            return path
        print_log(f'Skipping an unreadable checkpoint: {other}.', logger='current',
                  level=logging.WARNING)
        if problem is None:
            problem = other
    print_log(f'No readable checkpoint in {work_dir} (the newest: {problem}); training starts '
              'from the beginning.', logger='current', level=logging.WARNING)
    return None


#: Environment variables in which a launcher counts the restarts of a job.
RESTART_COUNT_VARIABLES = ('TORCHELASTIC_RESTART_COUNT', 'SLURM_RESTART_COUNT')


def restart_count() -> int:
    """How often the launcher has restarted this job: ``torchrun --max-restarts`` after a
    failed process (``TORCHELASTIC_RESTART_COUNT``), or Slurm after a requeue
    (``SLURM_RESTART_COUNT``); 0 for a first start."""
    counts = []
    for name in RESTART_COUNT_VARIABLES:
        value = os.environ.get(name, '').strip()
        if value:
            try:
                counts.append(int(value))
            except ValueError:
                raise ValueError(f'{name}={value!r} is not a number of restarts') from None
    return max(counts, default=0)

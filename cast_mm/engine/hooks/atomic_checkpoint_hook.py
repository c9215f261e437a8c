"""A checkpoint hook whose files are complete or absent, and that carries what exact resumption
needs (per-rank RNG states and the sampler's state)."""
import glob
import os
import os.path as osp
from typing import Optional

from mmengine.dist import all_gather_object, is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook

from ...registry import HOOKS
from ..rng import get_rng_states

#: Suffix of a checkpoint being written; the file gets its final name only once it is complete.
TEMP_SUFFIX = '.tmp'
#: Name of a checkpoint written on a preemption signal (the number: completed iterations).
PREEMPTION_FILENAME_TMPL = 'preempted_iter_{}.pth'


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_atomically(temp_path: str, path: str) -> None:
    """Flush ``temp_path`` to disk and rename it to ``path`` (same folder), then flush the folder.

    Args:
        temp_path (str): A complete file in the folder of ``path``.
        path (str): The final name; an existing file of that name is replaced in one step.
    """
    _fsync(temp_path)
    os.replace(temp_path, path)
    try:
        _fsync(osp.dirname(osp.abspath(path)))
    except OSError:  # folders cannot be opened for fsync on some file systems
        pass


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """MMEngine's ``CheckpointHook`` with crash-safe writes and resumable state.

    - Each checkpoint is written to ``<name>.tmp`` in the output folder, flushed to disk and
      renamed to ``<name>``, and ``last_checkpoint`` is replaced the same way, so a kill during a
      save leaves the previous checkpoint and ``last_checkpoint`` intact.
    - With ``max_keep_ckpts`` the oldest kept checkpoint is removed only after the new one is
      complete (MMEngine removes it before writing the new one).
    - Checkpoints written on a preemption signal (``preempted_iter_N.pth``, see
      :class:`~cast_mm.engine.PreemptionCheckpointHook`) are removed once a newer regular
      checkpoint is complete, when ``max_keep_ckpts`` is set.
    - Every saved checkpoint carries ``resume_state``: the random-number states of every rank and
      the train sampler's state, which :class:`~cast_mm.engine.ResumableIterBasedTrainLoop` and
      :class:`~cast_mm.engine.ResumableEpochBasedTrainLoop` restore on resume.

    Takes the arguments of ``mmengine.hooks.CheckpointHook``. Files go through the usual file
    backend; the temporary-name-and-rename protocol applies to local folders (other backends
    write as MMEngine does).
    """

    _resume_state: Optional[dict] = None
    _loaded_resume_state: Optional[dict] = None
    #: Completed iterations of the last checkpoint this hook wrote (None before the first).
    saved_iters: Optional[int] = None

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if is_main_process() and isinstance(self.file_backend, LocalBackend):
            for stale in glob.glob(osp.join(glob.escape(self.out_dir), '*' + TEMP_SUFFIX)):
                os.remove(stale)  # an unfinished save of a killed run

    def collect_resume_state(self, runner) -> dict:
        """RNG states of all ranks (a collective call) and the train sampler's state."""
        state = dict(rng=all_gather_object(get_rng_states()))
        loop = runner.train_loop
        sampler_state = getattr(loop, 'sampler_state', None)
        if callable(sampler_state):
            state['sampler'] = sampler_state()
        return state

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._resume_state is not None:
            checkpoint['resume_state'] = self._resume_state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._loaded_resume_state = checkpoint.get('resume_state')

    def pop_loaded_resume_state(self) -> dict:
        """The ``resume_state`` of the last loaded checkpoint, once ({} if it had none)."""
        state, self._loaded_resume_state = self._loaded_resume_state, None
        return state or {}

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        outdated = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids
                                            and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        self.save_checkpoint_now(runner, self.filename_tmpl.format(step), meta)
        if not is_main_process() or self.max_keep_ckpts <= 0:
            return
        if outdated is not None:
            path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(outdated))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):
                self.file_backend.rmtree(path)
        if isinstance(self.file_backend, LocalBackend):
            # Checkpoints written on a preemption signal are superseded by this one.
            pattern = PREEMPTION_FILENAME_TMPL.format('*')
            for path in glob.glob(osp.join(glob.escape(self.out_dir), pattern)):
                if path != self.last_ckpt and not path.endswith(TEMP_SUFFIX):
                    os.remove(path)

    def save_checkpoint_now(self, runner, filename: str, meta: dict) -> None:
        """Write a checkpoint of the current training state (with ``resume_state``) as
        ``filename`` in the output folder and point ``last_checkpoint`` at it.

        A collective call: every rank contributes its RNG states; the main process writes.
        Checkpoints written here directly (as on a preemption signal) do not count towards
        ``max_keep_ckpts``.

        Args:
            runner (Runner): The runner.
            filename (str): The file name, e.g. ``iter_1000.pth``.
            meta (dict): ``epoch`` and ``iter`` to resume from (completed ones).
        """
        # Every rank takes part in gathering the RNG states; only the main process writes.
        self._resume_state = self.collect_resume_state(runner)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        local = isinstance(self.file_backend, LocalBackend)
        try:
            runner.save_checkpoint(
                self.out_dir,
                filename + TEMP_SUFFIX if local else filename,
                self.file_client_args,
                save_optimizer=self.save_optimizer,
                save_param_scheduler=self.save_param_scheduler,
                meta=meta,
                by_epoch=self.by_epoch,
                backend_args=self.backend_args,
                **self.args)
        finally:
            self._resume_state = None
        self.saved_iters = int(meta['iter'])
        if not is_main_process():
            return
        if local:
            replace_atomically(self.last_ckpt + TEMP_SUFFIX, self.last_ckpt)
        pointer = osp.join(runner.work_dir, 'last_checkpoint')
        with open(pointer + TEMP_SUFFIX, 'w') as f:
            f.write(self.last_ckpt)
        replace_atomically(pointer + TEMP_SUFFIX, pointer)

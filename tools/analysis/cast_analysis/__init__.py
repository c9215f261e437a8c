"""Building blocks of the analysis tools in ``tools/analysis``; not part of the installed package.

The tools import it as a sibling (``python tools/analysis/benchmark.py`` puts
``tools/analysis`` first on ``sys.path``); it finds the configs and tools it needs relative to
its own file, so it runs from a checkout of the repository.

Models built from the shipped configs (:func:`model_specs`, :func:`literal_cfg_options`,
:func:`profile_switches`, :class:`Step`), batches of photographs through a config's own
pipeline (:func:`make_batch`), timing (:func:`interleaved_times`), memory probes
(:func:`peak_memory`, :func:`rss_bytes`), host syncs and kernel launches
(:func:`count_host_syncs`, :func:`kernel_launches`), and run records
with their tables (:func:`new_run`, :class:`Table`, :func:`write_json`,
:func:`render_markdown`). Everything a measurement depends on is passed explicitly
(:class:`Settings`); nothing here changes module state.

The benchmark's sections, the data loader timing, the saved-tensor ledger, the resume timing,
the explorer timing and the check against the official outputs are the submodules
:mod:`cast_analysis.benchmark`, :mod:`cast_analysis.loader`, :mod:`cast_analysis.saved_tensors`,
:mod:`cast_analysis.resume`, :mod:`cast_analysis.explorer`, :mod:`cast_analysis.parity` and the
parameter and FLOP count :mod:`cast_analysis.flops`.
It may use every package of cast_mm; nothing in cast_mm imports it, and it imports no tool.
"""
from .batches import (cast_like_points, make_batch, photo_mosaic, photographs, region_labels,
                      resized_photos, superpixel_count)
from .measure import (Step, count_host_syncs, interleaved_times, kernel_launches, max_rel_diff,
                      op_profile, peak_memory, release_free_heap, reset_peak_rss, rss_bytes, sync,
                      task_batch)
from .models import (AMP_OPTIONS, INFERENCE_GROUPS, TRAIN_GROUPS, ModelSpec, Settings, build_model,
                     build_optim_wrapper, literal_cfg_options, load_config, model_spec, model_specs,
                     profile_switches, quiet_logs)
from .report import Table, add_table, machine_info, new_run, read_json, render_markdown, write_json

__all__ = [
    'cast_like_points', 'make_batch', 'photo_mosaic', 'photographs', 'region_labels',
    'resized_photos', 'superpixel_count', 'Step', 'count_host_syncs', 'interleaved_times',
    'kernel_launches', 'max_rel_diff', 'op_profile', 'peak_memory', 'release_free_heap',
    'reset_peak_rss', 'rss_bytes', 'sync', 'task_batch', 'AMP_OPTIONS', 'INFERENCE_GROUPS',
    'TRAIN_GROUPS', 'ModelSpec', 'Settings', 'build_model', 'build_optim_wrapper',
    'literal_cfg_options', 'load_config', 'model_spec', 'model_specs', 'profile_switches',
    'quiet_logs', 'Table', 'add_table', 'machine_info', 'new_run', 'read_json', 'render_markdown',
    'write_json'
]

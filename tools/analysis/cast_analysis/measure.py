"""Probes: one model step on a packed batch, timing, peak memory, host syncs, kernel launches.

Timing calls ``torch.cuda.synchronize`` before and after every timed call on CUDA. Peak memory
on CUDA is ``torch.cuda.max_memory_allocated`` (after ``reset_peak_memory_stats``) above the
memory allocated before the call; on CPU it is the peak resident set of a fresh child process
running one call, above its resident set before that call (after returning the C heap's free
memory to the system). A train step is measured after one untimed step, so the memory before it
holds the model, its optimiser state and the batch.
"""
import importlib.util
import multiprocessing
import statistics
import time
import warnings
from typing import Callable, Dict, List, Optional, Tuple

import torch

from .batches import make_batch
from .models import (AMP_OPTIONS, CLS_CONFIG, SEG_CONFIG, ModelSpec, Settings, build_model,
                     build_optim_wrapper, load_config, model_spec, quiet_logs)

#: The text of the warning ``torch.cuda.set_sync_debug_mode('warn')`` gives per host sync.
CUDA_SYNC_WARNING = 'called a synchronizing CUDA operation'


class Step:
    """One model's inference (``kind='test'``) or train step (``kind='train'``) on its task's
    batch, ready to call.

    Inference is ``model(**data_preprocessor(batch), mode='predict')`` under ``torch.no_grad``;
    a train step is ``model.train_step(batch, optim_wrapper)`` with the config's optimiser
    wrapper (preprocessing, batch augments, forward, loss, backward, optimiser step).

    Args:
        name (str): a model of :func:`cast_analysis.model_specs`.
        kind (str): ``'test'`` or ``'train'``.
        settings (Settings): device and sizes.
        amp (bool): mixed precision: for a train step the config's optimiser wrapper becomes
            ``AmpOptimWrapper`` as ``tools/train.py --amp`` makes it; for inference the call
            runs under ``torch.autocast(dtype=torch.float16)``. CUDA only.
        spec (ModelSpec, optional): the model, where it is not one of :func:`model_specs`
            (``name`` then only labels it).
    """

    def __init__(self, name: str, kind: str, settings: Settings, amp: bool = False,
                 spec: Optional[ModelSpec] = None) -> None:
        if kind not in ('test', 'train'):
            raise ValueError(f"kind must be 'test' or 'train', got {kind!r}")
        device = settings.torch_device
        if amp and device.type != 'cuda':
            raise ValueError("amp=True needs a CUDA device (MMEngine's AmpOptimWrapper and "
                             'float16 autocast are GPU features)')
        spec = spec or model_spec(name, settings)
        self.name, self.kind, self.amp, self.device = name, kind, amp, device
        options = dict(spec.options, **(AMP_OPTIONS if amp and kind == 'train' else {}))
        cfg = load_config(spec.config, options)
        self.model = build_model(cfg, device)
        self.batch = task_batch(spec.task, settings)
        if kind == 'train':
            self.model.train()
            self.optim_wrapper = build_optim_wrapper(cfg, self.model)
        else:
            self.model.eval()
            with torch.no_grad():
                self.prepared = self.model.data_preprocessor(self.batch, False)

    def __call__(self):
        if self.kind == 'train':
            return self.model.train_step(self.batch, self.optim_wrapper)
        with torch.no_grad(), torch.autocast(self.device.type, dtype=torch.float16,
                                             enabled=self.amp):
            return self.model(**self.prepared, mode='predict')

    def superpixels(self) -> torch.Tensor:
        """The ``(B, H, W)`` superpixel maps the model runs the prepared batch on."""
        if self.kind != 'test':
            raise ValueError('superpixels() is defined for inference steps')
        if hasattr(self.model, 'batch_superpixels'):
            return self.model.batch_superpixels(self.prepared['inputs'],
                                                self.prepared['data_samples'])
        # The maps the data preprocessor padded into the samples (classifiers).
        maps = [s.superpixels for s in self.prepared['data_samples']]
        return torch.stack([m if isinstance(m, torch.Tensor) else m.data[0] for m in maps])


def task_batch(task: str, settings: Settings):
    """The batch every model of ``task`` runs on: photographs through the fast CAST config's
    pipeline, at the settings' size (reference models take the same batch)."""
    config = CLS_CONFIG if task == 'cls' else SEG_CONFIG
    size, count = settings.task_size(task)
    return make_batch(task, load_config(config, settings.task_options(task)), size, count)


# ----------------------------------------------------------------------------------- timing
def sync(device) -> None:
    """Wait for the device's queued work (CUDA); nothing on CPU."""
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize(device)


def interleaved_times(fns: Dict[str, Callable[[], object]], device, warmup: int, repeats: int,
                      max_seconds: Optional[float] = None) -> Tuple[Dict[str, float], int]:
    """Median seconds per call of each function, the calls of all functions interleaved.

    ``warmup`` untimed rounds, then up to ``repeats`` timed rounds, each calling every function
    once in turn, so that load from other processes affects all alike. With ``max_seconds``,
    no new timed round starts once the timed rounds have taken that long (at least one runs).

    Returns:
        tuple: ``({name: median seconds}, timed rounds run)``.
    """
    times: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    started = time.perf_counter()
    rounds = 0
    while rounds < max(repeats, 1):
        if rounds and max_seconds is not None and time.perf_counter() - started > max_seconds:
            break
        for name, fn in fns.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
        rounds += 1
    return {name: statistics.median(values) for name, values in times.items()}, rounds


# ----------------------------------------------------------------------------------- memory
def rss_bytes(field: str = 'VmRSS') -> int:
    """``VmRSS`` (current) or ``VmHWM`` (peak) resident set of this process in bytes (Linux)."""
    with open('/proc/self/status') as f:
        line = next((line for line in f if line.startswith(field + ':')), None)
    if line is None:
        raise ValueError(f'/proc/self/status has no {field!r} field')
    return int(line.split()[1]) * 1024


def reset_peak_rss() -> None:
    """Make ``VmHWM`` restart from the current resident set (Linux ``clear_refs``)."""
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')


def release_free_heap() -> None:
    """Return the C heap's free memory to the system (glibc), so the resident set is live data.

    glibc keeps freed blocks below its (adaptive, up to 32 MiB) mmap threshold in the heap for
    reuse; without this, a second step would reuse the first step's freed memory and its peak
    above the resident level would miss everything it allocates again (gradients among them).
    """
    import ctypes
    import ctypes.util
    import gc
    gc.collect()
    name = ctypes.util.find_library('c')
    libc = ctypes.CDLL(name) if name else None
    if libc is not None and hasattr(libc, 'malloc_trim'):
        libc.malloc_trim(0)


def _cpu_peak_child(name: str, kind: str, settings: Settings, spec: Optional[ModelSpec],
                    queue) -> None:
    settings.apply()
    quiet_logs()
    step = Step(name, kind, settings, spec=spec)
    if kind == 'train':
        step()  # optimiser state and lazily built buffers become resident
    release_free_heap()
    reset_peak_rss()  # a child starts with its own loading peak
    before = rss_bytes('VmRSS')
    step()
    queue.put(rss_bytes('VmHWM') - before)


def cuda_peak_memory(step: Step) -> int:
    """Peak bytes one call of a CUDA ``step`` allocates above what is allocated before it (the
    step is called once first, so a train step's optimiser state is resident)."""
    device = step.device
    step()
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    step()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


def peak_memory(name: str, kind: str, settings: Settings, amp: bool = False,
                spec: Optional[ModelSpec] = None) -> int:
    """Peak bytes one call of :class:`Step` ``(name, kind, settings, amp, spec)`` needs above
    what is held before it (CUDA: in this process; CPU: in a fresh child process)."""
    device = settings.torch_device
    if device.type == 'cuda':
        return cuda_peak_memory(Step(name, kind, settings, amp, spec))
    if amp:
        raise ValueError('amp=True needs a CUDA device')
    ctx = multiprocessing.get_context('spawn')
    queue = ctx.Queue()
    child = ctx.Process(target=_cpu_peak_child, args=(name, kind, settings, spec, queue))
    child.start()
    result = queue.get()
    child.join()
    return result


# ------------------------------------------------------------------------- syncs and launches
def host_read_counter_available() -> bool:
    """Whether the cast_mm installed marks its host values (:mod:`cast_mm.utils.host_values`),
    which the CPU count of host reads (:mod:`cast_analysis.host_reads`) needs."""
    return importlib.util.find_spec('cast_mm.utils.host_values') is not None


def count_host_syncs(fn: Callable[[], object], device) -> Optional[int]:
    """Host synchronisations during one call of ``fn``.

    CUDA: the warnings of ``torch.cuda.set_sync_debug_mode('warn')``, one per synchronising
    operation. CPU: the host reads of tensor values that
    :class:`cast_analysis.host_reads.HostReadCounter` counts (the reads that stall a GPU);
    None where that counter is not available.
    """
    device = torch.device(device)
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            torch.cuda.set_sync_debug_mode('warn')
            try:
                fn()
            finally:
                torch.cuda.set_sync_debug_mode('default')
        torch.cuda.synchronize(device)
        return sum(CUDA_SYNC_WARNING in str(w.message) for w in caught)
    if not host_read_counter_available():
        return None
    from .host_reads import HostReadCounter
    with HostReadCounter() as reads:
        fn()
    return reads.count


def kernel_launches(fn: Callable[[], object], device) -> Optional[int]:
    """GPU kernels one call of ``fn`` launches (torch profiler; memory copies and sets not
    counted); None off CUDA."""
    device = torch.device(device)
    if device.type != 'cuda':
        return None
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile
    fn()
    torch.cuda.synchronize(device)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize(device)
    return sum(1 for e in prof.events() if e.device_type == DeviceType.CUDA
               and not e.name.startswith(('Memcpy', 'Memset')))


#: Operators counted as matrix products, attention and convolution (forward and backward).
DENSE_OPS = ('mm', 'addmm', 'bmm', 'baddbmm', 'addbmm', 'matmul', 'dot', '_sparse_mm',
             '_sparse_addmm', 'sparse_mm', 'convolution', 'scaled_dot_product', 'attention',
             'conv2d', 'mkldnn_convolution', 'linear')


def is_dense(op: str) -> bool:
    """Whether an ``aten::`` operator is a matrix product, attention or a convolution."""
    name = op.split('::')[-1]
    return any(name == key or name.startswith(key + '_') or key in name
               for key in DENSE_OPS if len(key) > 3) or name in DENSE_OPS


def op_profile(fn: Callable[[], object], device) -> Tuple[float, List[Tuple[str, float]]]:
    """Share of one call's operator self time (CUDA: device time) in dense operators, and the
    other operators with their shares, largest first."""
    from torch.profiler import ProfilerActivity, profile
    device = torch.device(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA]
                                           if device.type == 'cuda' else [])
    fn()
    with profile(activities=activities) as prof:
        fn()
        sync(device)
    attr = 'self_device_time_total' if device.type == 'cuda' else 'self_cpu_time_total'
    ops = [(e.key, getattr(e, attr)) for e in prof.key_averages() if e.key.startswith('aten::')]
    total = sum(t for _, t in ops) or 1.
    dense = sum(t for k, t in ops if is_dense(k))
    others = sorted(((k, t / total) for k, t in ops if not is_dense(k)), key=lambda x: -x[1])
    return dense / total, others


def max_rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """``max |a - b| / max |b|`` in float64."""
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())

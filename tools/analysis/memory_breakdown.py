"""What the peak memory of a CAST train step is made of: saved activations per module.

    python tools/analysis/memory_breakdown.py [--models cast_seg_literal cast_seg_fast ...]
        [--threads 2] [--top 12] [--json out.json] [--smoke]

The models and batches are those of ``tools/analysis/benchmark.py`` (built from the shipped
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
import collections
import importlib
import json
import os.path as osp
import sys
from typing import Dict, List, Tuple

import torch

ANALYSIS = osp.dirname(osp.abspath(__file__))

#: (module path inside the model, method name, label) of methods that run outside ``forward``.
LABELLED_METHODS = [
    ('decode_head', 'loss', 'decode_head.loss (outside submodules)'),
    ('decode_head', 'loss_by_feat', 'decode_head.loss_by_feat (pixel logits, mmseg loss)'),
    ('decode_head', 'loss_by_segments', 'decode_head.loss_by_segments (superpixel loss)'),
    ('decode_head', 'segment_scores', 'decode_head.segment_scores'),
    ('backbone', 'segment_tokens', 'backbone.segment_tokens (stem features -> segments)'),
]


def benchmark_module():
    if ANALYSIS not in sys.path:
        sys.path.insert(0, ANALYSIS)
    return importlib.import_module('benchmark')


def _rss_bytes(field: str) -> int:
    with open('/proc/self/status') as f:
        line = next(line for line in f if line.startswith(field + ':'))
    return int(line.split()[1]) * 1024


class SavedTensorLedger:
    """Counts the storages autograd saves during a step, by the place that saved them."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.stack: List[str] = ['(model, outside submodules)']
        self.resident = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self.resident |= {b.untyped_storage().data_ptr() for b in model.buffers()}
        self.seen: Dict[int, Tuple[str, int, Tuple[int, ...], str]] = {}
        self.handles = []
        self.wrapped = []

    # -------------------------------------------------------------------------------- hooks
    def _push(self, name: str):
        def hook(module, args):
            self.stack.append(name)
        return hook

    def _pop(self, module, args, output):
        self.stack.pop()

    def _wrap(self, owner: torch.nn.Module, method: str, label: str) -> None:
        original = getattr(owner, method)

        def wrapper(*args, **kwargs):
            self.stack.append(label)
            try:
                return original(*args, **kwargs)
            finally:
                self.stack.pop()

        setattr(owner, method, wrapper)  # an instance attribute: removed in __exit__
        self.wrapped.append((owner, method))

    def _pack(self, tensor: torch.Tensor):
        if tensor.layout != torch.strided or tensor.device.type == 'meta':
            size = 0
            ptr = id(tensor)
        else:
            storage = tensor.untyped_storage()
            ptr, size = storage.data_ptr(), storage.nbytes()
        if ptr not in self.resident and ptr not in self.seen:
            self.seen[ptr] = (self.stack[-1], size, tuple(tensor.shape), str(tensor.dtype))
        return tensor

    def __enter__(self):
        for name, module in self.model.named_modules():
            if module is self.model:
                continue
            self.handles.append((module.register_forward_pre_hook(self._push(name)),
                                 module.register_forward_hook(self._pop)))
        modules = dict(self.model.named_modules())
        for path, method, label in LABELLED_METHODS:
            owner = modules.get(path)
            if owner is not None and hasattr(owner, method):
                self._wrap(owner, method, label)
        self.saved_hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self.saved_hooks.__enter__()
        return self

    def __exit__(self, *exc):
        self.saved_hooks.__exit__(*exc)
        for pre, post in self.handles:
            pre.remove()
            post.remove()
        for owner, method in self.wrapped:
            delattr(owner, method)
        return False

    # ------------------------------------------------------------------------------ reports
    def by_place(self, depth: int) -> List[Tuple[str, int, int]]:
        """(place truncated to ``depth`` dotted parts, bytes, tensors), largest first."""
        totals: Dict[str, List[int]] = collections.defaultdict(lambda: [0, 0])
        for place, size, _, _ in self.seen.values():
            # Labels (they contain a space) are kept whole; module paths are truncated.
            key = place if ' ' in place else '.'.join(place.split('.')[:depth])
            totals[key][0] += size
            totals[key][1] += 1
        return sorted(((k, v[0], v[1]) for k, v in totals.items()), key=lambda x: -x[1])

    def largest(self, top: int) -> List[Tuple[str, int, Tuple[int, ...], str]]:
        return sorted(self.seen.values(), key=lambda x: -x[1])[:top]

    def total(self) -> int:
        return sum(size for _, size, _, _ in self.seen.values())


def breakdown(bench, name: str, top: int) -> Dict:
    runner = bench.Runner(name, 'train', torch.device('cpu'))
    runner.call()  # optimiser state and lazily built buffers become resident
    model = runner.model
    grads = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    bench.release_free_heap()
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')
    before = _rss_bytes('VmRSS')
    with SavedTensorLedger(model) as ledger:
        runner.call()
    peak = _rss_bytes('VmHWM') - before
    return dict(model=name, peak_above_resident=peak, saved_total=ledger.total(),
                saved_tensors=len(ledger.seen), parameter_gradients=grads,
                by_module=ledger.by_place(2), by_block=ledger.by_place(3),
                largest=ledger.largest(top))


def mib(value: float) -> str:
    return f'{value / 2**20:.0f}'


def report(result: Dict, top: int) -> None:
    bench = benchmark_module()
    print(f'\n### {result["model"]}\n')
    print(f'peak above resident {mib(result["peak_above_resident"])} MiB; saved for backward '
          f'{mib(result["saved_total"])} MiB in {result["saved_tensors"]} storages; parameter '
          f'gradients {mib(result["parameter_gradients"])} MiB')
    rows = [[place, mib(size), count,
             f'{100 * size / max(result["saved_total"], 1):.1f}%']
            for place, size, count in result['by_module'] if size >= 2**20]
    bench.print_table('saved for backward, by module', ['module', 'MiB', 'tensors', 'share'],
                      rows)
    rows = [[place, mib(size), 'x'.join(map(str, shape)), dtype.replace('torch.', '')]
            for place, size, shape, dtype in result['largest'][:top]]
    bench.print_table(f'{top} largest saved tensors', ['saved in', 'MiB', 'shape', 'dtype'],
                      rows)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--models', nargs='+',
                        default=['cast_seg_literal', 'cast_seg_fast', 'cast_seg_fast+cp'],
                        help='benchmark model names (tools/analysis/benchmark.py)')
    parser.add_argument('--threads', type=int, default=torch.get_num_threads())
    parser.add_argument('--top', type=int, default=12, help='largest tensors listed')
    parser.add_argument('--smoke', action='store_true', help='tiny images (checks that it runs)')
    parser.add_argument('--json', help='also write the numbers to this file')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    bench = benchmark_module()
    known = bench.model_specs(torch.device('cpu'))
    unknown = [m for m in args.models if m not in known or not m.startswith('cast_')]
    if unknown:
        raise SystemExit(f'unknown CAST model names {unknown}; choose from '
                         f'{[m for m in known if m.startswith("cast_")]}')
    torch.set_num_threads(args.threads)
    bench.quiet_logs()
    if args.smoke:
        bench.use_smoke_sizes()
    print(f'# Saved activations of one train step (torch {torch.__version__}, cpu, '
          f'{args.threads} threads; tasks {bench.TASKS})')
    results = []
    for name in args.models:
        results.append(breakdown(bench, name, args.top))
        report(results[-1], args.top)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())

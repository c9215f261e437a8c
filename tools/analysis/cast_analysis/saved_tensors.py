"""What a train step saves for the backward pass, by the module (or labelled method) saving it.

:class:`SavedTensorLedger` records, through ``torch.autograd.graph.saved_tensors_hooks``, every
tensor autograd keeps for the backward pass, attributed to the innermost module (or labelled
method) running when it was saved, counted once per storage; parameters and buffers are resident
and left out. Saved activations are all alive when the backward pass starts, which is where a
train step peaks.
"""
import collections
from typing import Dict, List, Tuple

import torch

from .measure import Step, release_free_heap, reset_peak_rss, rss_bytes
from .models import Settings

#: (module path inside the model, method name, label) of methods that run outside ``forward``.
LABELLED_METHODS = [
    ('decode_head', 'loss', 'decode_head.loss (outside submodules)'),
    ('decode_head', 'loss_by_feat', 'decode_head.loss_by_feat (pixel logits, mmseg loss)'),
    ('decode_head', 'loss_by_segments', 'decode_head.loss_by_segments (superpixel loss)'),
    ('decode_head', 'segment_scores', 'decode_head.segment_scores'),
    ('backbone', 'segment_tokens', 'backbone.segment_tokens (stem features -> segments)'),
]


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


def breakdown(name: str, settings: Settings, top: int) -> Dict:
    """Saved tensors of a second train step of ``name`` (CPU), with the peak resident set above
    the level before the step (the first step makes the optimiser state resident)."""
    step = Step(name, 'train', settings)
    step()
    model = step.model
    grads = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    release_free_heap()
    reset_peak_rss()
    before = rss_bytes('VmRSS')
    with SavedTensorLedger(model) as ledger:
        step()
    peak = rss_bytes('VmHWM') - before
    return dict(model=name, peak_above_resident=peak, saved_total=ledger.total(),
                saved_tensors=len(ledger.seen), parameter_gradients=grads,
                by_module=ledger.by_place(2), by_block=ledger.by_place(3),
                largest=ledger.largest(top))

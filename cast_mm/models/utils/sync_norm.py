"""Batch norms of CAST: a synchronised BN for any device, and the builder the backbone uses."""
import functools
from typing import Callable, Dict, Optional

import torch
import torch.distributed as dist
import torch.nn as nn
from torch import Tensor

from cast_mm.ops.precision import autocast_disabled
from cast_mm.registry import MODELS


def _world_size(group) -> int:
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size(group)


class _SumAllReduce(torch.autograd.Function):
    """Differentiable sum all-reduce: the backward of a sum over processes is the sum of the
    processes' output gradients."""

    @staticmethod
    def forward(ctx, tensor: Tensor, group) -> Tensor:
        ctx.group = group
        total = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total, group=group)
        return total

    @staticmethod
    def backward(ctx, grad: Tensor):
        return _SumAllReduce.apply(grad, ctx.group), None


def _all_reduce_sum(tensor: Tensor, group) -> Tensor:
    """The sum of ``tensor`` over the processes of ``group``, differentiable."""
    return _SumAllReduce.apply(tensor, group)


@MODELS.register_module('MaskedSyncBN')
class MaskedSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics are taken over every process of the group.

    Each process all-reduces the sum, the sum of squared deviations and the number of its
    elements, so the statistics are those of the global batch even when processes hold
    different numbers of elements (segment tokens: callers pass only the real tokens, see
    :func:`norm_segment_tokens`). The reductions are differentiable, so gradients are those of
    BN over the global batch. Unlike ``torch.nn.SyncBatchNorm`` it runs on any device and
    backend (CPU tensors with gloo included). In a single process, in eval mode, or with
    ``track_running_stats`` and no batch statistics, it is exactly ``F.batch_norm``.

    Inputs are ``(N, C)``, ``(N, C, L)`` or ``(N, C, H, W)``; parameter and buffer names are
    those of ``nn.BatchNorm*d``, so checkpoints load either way.

    Args:
        num_features (int): channels ``C``.
        eps (float): added to the variance. Defaults to 1e-5.
        momentum (float, optional): running-statistics momentum; None for a cumulative
            average. Defaults to 0.1.
        affine (bool): learnable scale and shift. Defaults to True.
        track_running_stats (bool): keep running statistics. Defaults to True.
        process_group (optional): the group to synchronise over. Defaults to all processes.
    """

    def __init__(self,
                 num_features: int,
                 eps: float = 1e-5,
                 momentum: Optional[float] = 0.1,
                 affine: bool = True,
                 track_running_stats: bool = True,
                 process_group=None) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        self.process_group = process_group

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() not in (2, 3, 4):
            raise ValueError(f'MaskedSyncBatchNorm expects (N, C), (N, C, L) or (N, C, H, W) '
                             f'inputs, got {input.dim()}-D')

    def synchronises(self) -> bool:
        """Whether training statistics are all-reduced (more than one process in the group)."""
        return _world_size(self.process_group) > 1

    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)
        use_batch_stats = self.training or not self.track_running_stats
        if not use_batch_stats or not self.synchronises():
            return super().forward(input)
        return batch_norm_with_statistics(self, input, group=self.process_group
                                          or dist.group.WORLD)


def batch_norm_with_statistics(norm: nn.modules.batchnorm._BatchNorm,
                               input: Tensor,
                               valid: Optional[Tensor] = None,
                               group=None) -> Tensor:
    """Training-mode batch norm computed here, over the rows ``valid`` selects, optionally
    synchronised over the processes of ``group``.

    What :class:`MaskedSyncBatchNorm` runs across processes, and what a batch norm over only
    some elements of a batch runs without selecting them (a selection's size would be read
    on the host). Statistics are float32 (or float64) whatever the input dtype and outside
    autocast; the running statistics of ``norm`` are updated as by ``F.batch_norm``. No
    tensor value is read on the host, but for the error below.

    Args:
        norm: the batch norm whose parameters, buffers, ``eps`` and ``momentum`` are used.
        input (Tensor): ``(N, C)``, ``(N, C, L)`` or ``(N, C, H, W)``.
        valid (Tensor, optional): ``(N,)`` bool, the rows that enter the statistics (the
            others are normalised with them too). None: every row.
        group (optional): process group to all-reduce the statistics over; None for this
            process alone.

    Raises:
        ValueError: without ``valid``, if this process holds fewer than 2 elements per
            channel and so do all processes together (the total is only read in that case).
            With ``valid``, a selection of one row normalises to the bias instead.
    """
    dims = [0] + list(range(2, input.dim()))
    shape = [1, -1] + [1] * (input.dim() - 2)
    with autocast_disabled(input.device):
        x = input if input.dtype in (torch.float32, torch.float64) else input.float()
        per_row = x[0, 0].numel() if x.shape[0] else 1
        if valid is None:
            weight = None
            local = x.numel() // max(x.shape[1], 1)
            count = x.new_full((1, ), local)
        else:
            weight = valid.to(x.dtype).view([-1] + [1] * (x.dim() - 1))
            local = None  # only the device knows how many rows are valid
            count = weight.sum().view(1) * per_row
        sums = (x * weight if weight is not None else x).sum(dims)
        stats = torch.cat([sums, count])
        if group is not None:
            stats = _all_reduce_sum(stats, group)
        count = stats[-1].detach()  # element counts carry no gradient
        if local is not None and local < 2 and float(count) < 2:
            # The global count is read only when this process cannot vouch for it.
            raise ValueError('batch norm needs more than one element per channel over all '
                             f'processes in training, got {int(count)}')
        if local is None:  # a selection of fewer than 2 rows: zero variance, no error
            count = count.clamp(min=1)
        mean = stats[:-1] / count
        centred = x - mean.view(shape)
        sq = centred.pow(2)
        sq_sum = (sq * weight if weight is not None else sq).sum(dims)
        if group is not None:
            sq_sum = _all_reduce_sum(sq_sum, group)
        var = sq_sum / count
        if norm.track_running_stats and norm.training:
            with torch.no_grad():
                norm.num_batches_tracked.add_(1)
                momentum = norm.momentum
                if momentum is None:  # cumulative average, kept on the device
                    momentum = 1. / norm.num_batches_tracked.to(var.dtype)
                unbiased = var * (count / (count - 1).clamp(min=1))
                norm.running_mean.mul_(1 - momentum).add_(mean.detach() * momentum)
                norm.running_var.mul_(1 - momentum).add_(unbiased.detach() * momentum)
        out = centred * torch.rsqrt(var + norm.eps).view(shape)
        if norm.affine:
            out = out * norm.weight.view(shape) + norm.bias.view(shape)
    return out.to(input.dtype)


#: Norm types of CAST's batch norms that mean "plain BatchNorm of the layer's dimensionality".
PLAIN_BN_TYPES = ('BN', 'BN1d', 'BN2d')


def build_batch_norm(norm_cfg: Optional[Dict], num_features: int,
                     spatial: bool) -> nn.modules.batchnorm._BatchNorm:
    """Build one of CAST's batch norms from an MMCV-style ``norm_cfg``.

    Args:
        norm_cfg (dict, optional): ``dict(type='BN')`` (plain ``nn.BatchNorm2d`` for the stem,
            ``nn.BatchNorm1d`` for token features; also ``'BN1d'`` / ``'BN2d'``),
            ``dict(type='SyncBN')`` (``torch.nn.SyncBatchNorm``: CUDA only with several
            processes) or ``dict(type='cast_mm.MaskedSyncBN')`` (:class:`MaskedSyncBatchNorm`,
            any device), plus keyword arguments of the layer (``eps``, ``momentum``, ...)
            and MMCV's ``requires_grad``. None means ``'BN'``.
        num_features (int): channels.
        spatial (bool): True for ``(N, C, H, W)`` maps, False for ``(N, C, L)`` tokens.

    Returns:
        the batch norm (a ``torch.nn.modules.batchnorm._BatchNorm``, so state-dict keys are
        the same for every type).
    """
    cfg = dict(norm_cfg or dict(type='BN'))
    if 'type' not in cfg:
        raise ValueError(f"norm_cfg needs a 'type', got {norm_cfg}")
    kind = cfg.pop('type')
    requires_grad = cfg.pop('requires_grad', True)
    if kind in PLAIN_BN_TYPES:
        layer_cls = nn.BatchNorm2d if spatial else nn.BatchNorm1d
    else:
        layer_cls = MODELS.get(kind) if isinstance(kind, str) else kind
        if layer_cls is None:
            raise ValueError(f'norm_cfg type {kind!r} is not registered')
    if not (isinstance(layer_cls, type)
            and issubclass(layer_cls, nn.modules.batchnorm._BatchNorm)):
        raise ValueError(f'CAST batch norms must be a BatchNorm type (BN, SyncBN, '
                         f'cast_mm.MaskedSyncBN), got {kind!r}')
    layer = layer_cls(num_features, **cfg)
    for param in layer.parameters():
        param.requires_grad = requires_grad
    return layer


def batch_norm_factory(norm_cfg: Optional[Dict],
                       spatial: bool) -> Callable[[int], nn.modules.batchnorm._BatchNorm]:
    """``num_features -> batch norm`` for plain-torch layers that take a norm constructor."""
    return functools.partial(build_batch_norm, norm_cfg, spatial=spatial)

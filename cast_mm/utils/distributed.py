"""Distributed runs without GPUs (torchrun + gloo on CPU) under MMEngine's Runner."""
import datetime

import torch
import torch.distributed as dist
from mmengine.config import Config


def setup_cpu_distributed(cfg: Config) -> bool:
    """Prepare ``cfg`` for a multi-process run on a machine without CUDA.

    MMEngine's PyTorch launcher selects a CUDA device per process and hands DDP that device;
    without CUDA both fail. Here the process group is initialised with gloo from the torchrun
    environment (so the Runner finds it ready) and DDP gets no device ids. Nothing happens on
    CUDA machines or for ``launcher='none'``.

    Returns:
        bool: whether the CPU set-up was applied.
    """
    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available():
        return False
    if not dist.is_initialized():
        timeout = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('timeout')
        # Seconds, as MMEngine's init_dist reads env_cfg.dist_cfg.timeout.
        kwargs = {} if timeout is None else dict(timeout=datetime.timedelta(seconds=timeout))
        dist.init_process_group(backend='gloo', **kwargs)
    wrapper = dict(cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel'))
    wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    return True


def close_distributed() -> None:
    """Destroy the process group, if any, before the interpreter exits.

    A gloo group left alive at exit can abort the process ("terminate called without an
    active exception") after a run that otherwise succeeded, so the tools close it explicitly.
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()

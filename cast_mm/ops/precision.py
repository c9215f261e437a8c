"""Blocks that must run in full precision, also inside mixed-precision (autocast) code."""
import contextlib
from typing import ContextManager

import torch


def autocast_disabled(device: torch.device) -> ContextManager:
    """Autocast off on ``device`` for the block: ops run in the dtype of their inputs.

    A no-op where autocast is not on (or the device has none, e.g. ``meta``), so traced
    graphs (``torch.export``) only carry the switch where it does something.
    """
    device_type = torch.device(device).type
    if torch.amp.is_autocast_available(device_type) and torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()

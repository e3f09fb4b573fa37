"""Small constant tensors made once per device and dtype.

``torch.tensor(values, device="cuda")`` copies from pageable host memory and waits for the GPU to
finish its queue every time it is called: in a fitting loop that is a stall per call, and the
CPU can no longer run ahead of the GPU. The render path takes its constants from here instead.
"""

from __future__ import annotations

from functools import lru_cache

import torch

__all__ = ["device_constant"]


@lru_cache(maxsize=128)
def _cached(values: tuple, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype, device=device)


def device_constant(values: tuple, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """The tensor of ``values`` (a tuple, nested for more dimensions) on ``device``, shared
    between calls: read it, never write to it in place.

    Args:
        values: numbers, e.g. ``(1.0, 2.0)`` or ``((1.0, 0.0), (0.0, 1.0))``.
        dtype: torch dtype of the tensor.
        device: torch device (``None``: the CPU).
    """
    return _cached(values, dtype, torch.device(device if device is not None else "cpu"))

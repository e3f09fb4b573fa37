"""Turning a device name from the user into a torch device, with one clear error."""

from __future__ import annotations

import torch

from flamefit.utils import UsageError

__all__ = ["resolve_device"]


def resolve_device(name: str | torch.device) -> torch.device:
    """The torch device ``name`` means: ``"auto"`` is the first CUDA device when one is
    available, else the CPU; ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` as in torch.

    Raises:
        UsageError: an unknown name, or a device this machine does not have (with what to use
            instead).
    """
    if isinstance(name, torch.device):
        device = name
    elif name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            device = torch.device(name)
        except (RuntimeError, ValueError):
            raise UsageError(f"--device {name!r} is not a device: use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: CUDA is not available on this machine (no GPU, or a "
                             "CPU-only torch): use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA "
                             f"device(s), numbered from 0")
    elif device.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise UsageError(f"--device {name}: MPS is not available on this machine: use --device cpu")
    elif device.type != "cpu":
        raise UsageError(f"--device {name}: flamefit runs on cpu, cuda or mps")
    return device

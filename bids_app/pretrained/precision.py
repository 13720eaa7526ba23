"""Numerical precision of the pretrained networks' inference."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


def use_mixed_precision(device: torch.device, precision: str = "auto") -> bool:
    """Decide whether a network's inference runs under autocast.

    Parameters
    ----------
    device : torch.device
        Where the network runs.
    precision : {"auto", "float32", "mixed"}, default="auto"
        ``--precision``; ``auto`` is mixed on a GPU and float32 on the CPU.

    Returns
    -------
    bool
        True for mixed precision.

    Examples
    --------
    >>> use_mixed_precision(torch.device("cpu"))
    False
    >>> use_mixed_precision(torch.device("cpu"), "mixed")
    True
    """
    if precision == "auto":
        return device.type == "cuda"
    return precision == "mixed"


@contextlib.contextmanager
def inference_mode(device: torch.device, precision: str = "auto") -> Iterator[None]:
    """Run a block without autograd and, where asked, under autocast.

    Autocast takes float16 on a GPU and bfloat16 on the CPU (the half type each supports
    natively); layers that need float32 (softmax, normalisation) stay in float32.

    Parameters
    ----------
    device : torch.device
        Where the network runs.
    precision : {"auto", "float32", "mixed"}, default="auto"
        See :func:`use_mixed_precision`.

    Yields
    ------
    None
    """
    with torch.inference_mode():
        if use_mixed_precision(device, precision):
            dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
            with torch.autocast(device_type=device.type, dtype=dtype):
                yield
        else:
            yield

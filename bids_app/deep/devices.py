"""Choice of the torch device and a fallback for GPUs that run out of memory."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import torch

from bids_app.errors import UsageError

LOGGER = logging.getLogger(__name__)

T = TypeVar("T")


class DeviceError(UsageError, RuntimeError):
    """The requested device does not exist on this machine."""


def resolve_device(name: str = "auto") -> torch.device:
    """Return the torch device for a ``--device`` choice.

    Parameters
    ----------
    name : {"auto", "cuda", "cpu"} or "cuda:<index>", default="auto"
        "auto" takes the GPU where CUDA is available and the CPU otherwise.

    Returns
    -------
    torch.device
        The device.

    Raises
    ------
    DeviceError
        A CUDA device is asked for but not available, or the name is unknown.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    name = name.strip().lower()
    if name == "cpu":
        return torch.device("cpu")
    if name == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        LOGGER.info("Deep learning runs on %s (--device auto).", device)
        return device
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceError(
                f"--device {name}: CUDA is not available (no GPU visible, no driver, or a CPU "
                "build of torch; in a container pass the GPU with docker run --gpus all or "
                "singularity run --nv, on an image built for CUDA); use --device cpu or auto."
            )
        try:
            device = torch.device(name)
        except RuntimeError as error:
            raise DeviceError(f"--device {name}: {error}; use --device cuda or auto.") from error
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(
                f"--device {name}: only {torch.cuda.device_count()} GPU(s) visible; use "
                "--device cuda or auto."
            )
        return device
    raise DeviceError(f"--device {name}: unknown device; use auto, cuda or cpu.")


def with_oom_fallback(
    fn: Callable[[int, torch.device], T],
    batch_size: int,
    device: torch.device,
    logger: logging.Logger = LOGGER,
) -> T:
    """Call ``fn(batch_size, device)``, halving the batch and then leaving the GPU on OOM.

    On :class:`torch.cuda.OutOfMemoryError` on a GPU the CUDA cache is emptied and ``fn`` is
    called again with half the batch, down to a batch of one; if that also runs out of memory,
    ``fn`` runs on the CPU with the original batch size (CPU memory is usually larger, and the
    batch size then stays the one asked for). ``fn`` must start its work afresh at each call.

    Parameters
    ----------
    fn : callable
        ``fn(batch_size, device)`` doing the work.
    batch_size : int
        Batch size of the first call.
    device : torch.device
        Device of the first call.
    logger : logging.Logger, optional
        Receives a warning at each fallback.

    Returns
    -------
    object
        What ``fn`` returns.

    Raises
    ------
    torch.cuda.OutOfMemoryError
        Raised by ``fn`` on the CPU (where there is nothing left to fall back to).
    """
    current = batch_size
    while True:
        try:
            return fn(current, device)
        except torch.cuda.OutOfMemoryError:
            if device.type != "cuda":
                raise
        # Outside the except block, so that the failed call's tensors can be freed.
        torch.cuda.empty_cache()
        if current > 1:
            logger.warning(
                "Out of GPU memory with batches of %d; retrying with %d.", current, current // 2
            )
            current //= 2
        else:
            logger.warning(
                "Out of GPU memory even with batches of 1; falling back to the CPU "
                "(much slower) with batches of %d.",
                batch_size,
            )
            device, current = torch.device("cpu"), batch_size

"""Logging set-up and progress display: bars on a terminal, plain lines elsewhere (CI)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator, Sized
from pathlib import Path
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")
LOGGER_NAME = "bids_app"
_FORMAT = "%(asctime)s | %(levelname)-7s | %(message)s"


def setup_logging(verbosity: int, log_file: Path | None = None) -> logging.Logger:
    """Configure the package logger: console at the chosen level, a file at DEBUG.

    Parameters
    ----------
    verbosity : int
        0 is INFO; 1 or more DEBUG; -1 WARNING; -2 or less ERROR.
    log_file : Path, optional
        File that receives every message of the run.

    Returns
    -------
    logging.Logger
        The ``bids_app`` logger.
    """
    level = {-1: logging.WARNING, 0: logging.INFO}.get(
        verbosity, logging.DEBUG if verbosity > 0 else logging.ERROR
    )
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.DEBUG)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(level)
    console.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger.addHandler(console)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setLevel(logging.DEBUG)
        file_handler.setFormatter(logging.Formatter(_FORMAT))
        logger.addHandler(file_handler)
    logger.propagate = False
    for name in ("nipype.workflow", "nipype.interface", "nipype.utils"):
        logging.getLogger(name).setLevel(logging.INFO if verbosity > 1 else logging.WARNING)
    return logger


def format_seconds(seconds: float) -> str:
    """Format a duration as ``1h02m``, ``3m04s`` or ``5s``.

    Examples
    --------
    >>> format_seconds(3725), format_seconds(184), format_seconds(4.2)
    ('1h02m', '3m04s', '4s')
    """
    seconds = round(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def track(
    items: Iterable[T], description: str, logger: logging.Logger, total: int | None = None
) -> Iterator[T]:
    """Iterate with progress: a tqdm bar with ETA on a terminal, log lines with ETA otherwise.

    Parameters
    ----------
    items : iterable
        What to iterate over; its length gives the total when it has one.
    description : str
        What is being done, e.g. ``"participant"``.
    logger : logging.Logger
        Where plain progress lines go when stderr is not a terminal.
    total : int or None
        Number of items when ``items`` has no length (a generator).

    Yields
    ------
    object
        The items, unchanged.
    """
    if total is None and isinstance(items, Sized):
        total = len(items)
    if sys.stderr.isatty():
        yield from tqdm(items, desc=description, total=total, unit="item", file=sys.stderr)
        return
    start = time.monotonic()
    for index, item in enumerate(items):
        if index and total:
            elapsed = time.monotonic() - start
            eta = elapsed / index * (total - index)
            logger.info("%s: %d/%d done, ETA %s", description, index, total, format_seconds(eta))
        yield item
    logger.info("%s: finished in %s", description, format_seconds(time.monotonic() - start))


def progress_line(description: str, fraction: float, eta: float | None, detail: str = "") -> str:
    """One plain progress line with a bar of ten cells, for logs that are not a terminal.

    Examples
    --------
    >>> progress_line("demo", 0.43, 190, "group level")
    'demo:  43 % [####......] ETA 3m10s, group level'
    >>> progress_line("demo", 0.0, None)
    'demo:   0 % [..........] ETA --'
    """
    cells = min(int(fraction * 10), 10)
    eta_text = "--" if eta is None else format_seconds(eta)
    bar = "#" * cells + "." * (10 - cells)
    line = f"{description}: {int(100 * fraction + 1e-9):3d} % [{bar}] ETA {eta_text}"  # floored
    return f"{line}, {detail}" if detail else line

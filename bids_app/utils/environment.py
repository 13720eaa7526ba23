"""Environment variables set for the duration of a block."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


@contextlib.contextmanager
def environment_variable(name: str, value: str) -> Iterator[None]:
    """Set an environment variable inside a ``with`` block, then restore it.

    Parameters
    ----------
    name : str
        The variable.
    value : str
        Its value inside the block (child processes started there inherit it).

    Yields
    ------
    None
        Nothing.

    Examples
    --------
    >>> with environment_variable("NEUROSTRAT_EXAMPLE", "1"):
    ...     os.environ["NEUROSTRAT_EXAMPLE"]
    '1'
    >>> "NEUROSTRAT_EXAMPLE" in os.environ
    False
    """
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old

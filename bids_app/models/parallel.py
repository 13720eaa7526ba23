"""Embarrassingly parallel loops of the group level: joblib processes, or a Dask cluster.

The classifier grid (feature set x classifier) and the folds of a network are independent
jobs, each seeded by its own settings, so their results do not depend on how many run at once
(:func:`parallel_map`). With ``--dask-scheduler`` the same loops run on a
``dask.distributed`` cluster through joblib's ``dask`` backend (:func:`dask_backend`).
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import joblib

from bids_app.errors import UsageError

T = TypeVar("T")


def parallel_map(function: Callable[..., T], items: Iterable[tuple], n_jobs: int) -> list[T]:
    """Call ``function(*item)`` for each item, ``n_jobs`` at a time; results in item order.

    Parameters
    ----------
    function : callable
        A picklable function (run in other processes when ``n_jobs`` is not 1).
    items : iterable of tuple
        The arguments of each call.
    n_jobs : int
        1 runs the calls here, one after the other; more uses joblib's processes (or the Dask
        workers inside :func:`dask_backend`; -1: all of them).

    Returns
    -------
    list
        The results, in the order of ``items``.

    Examples
    --------
    >>> parallel_map(pow, [(2, 3), (3, 2)], n_jobs=1)
    [8, 9]
    """
    if n_jobs == 1:
        return [function(*item) for item in items]
    return list(joblib.Parallel(n_jobs=n_jobs)(joblib.delayed(function)(*item) for item in items))


def require_dask() -> None:
    """Check that ``dask.distributed`` can be imported (``--dask-scheduler`` needs it).

    Raises
    ------
    UsageError
        If it is not installed.
    """
    if importlib.util.find_spec("dask") is None or importlib.util.find_spec("distributed") is None:
        raise UsageError(
            "--dask-scheduler needs dask.distributed, which is not installed: "
            "pip install 'dask[distributed]', or leave the option out to use --nprocs processes"
        )


@contextlib.contextmanager
def dask_backend(address: str | None) -> Iterator[Any]:
    """Run the joblib loops inside the block on a Dask scheduler (nothing changes for None).

    Parameters
    ----------
    address : str or None
        The scheduler's address, e.g. ``tcp://10.0.0.1:8786``.

    Yields
    ------
    distributed.Client or None
        The client connected to the scheduler.

    Raises
    ------
    UsageError
        If ``dask.distributed`` is not installed.
    """
    if address is None:
        yield None
        return
    require_dask()
    from distributed import Client

    with Client(address) as client, joblib.parallel_backend("dask"):
        yield client

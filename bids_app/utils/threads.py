"""The per-process thread budget of the multi-threaded libraries (ITK, OpenMP, BLAS, torch)."""

from __future__ import annotations

import os
import sys

#: Environment variables read by the libraries the pipeline calls: ITK (ANTsPy), OpenMP, the
#: BLAS builds of numpy/scipy, and torch's intra-op pool.
THREAD_VARIABLES = (
    "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
)


def limit_threads(n_threads: int) -> None:
    """Give every multi-threaded library of this process (and its children) ``n_threads``.

    ITK reads its variable once, at its first multi-threaded call, so this must run before any
    ANTsPy call of the process; the CLI calls it right after reading the options. ITK's
    multi-threaded metrics sum in a varying order, so only ``n_threads == 1`` makes registrations
    repeat run after run (as fMRIPrep documents for ``--omp-nthreads 1``); a voxel in 400,000 of
    a brain mask still differed once (``tests/test_participant_robustness.py``).

    Parameters
    ----------
    n_threads : int
        Threads per process (``--omp-nthreads``).
    """
    for name in THREAD_VARIABLES:
        os.environ[name] = str(n_threads)
    torch = sys.modules.get("torch")  # only if already imported: importing it costs seconds
    if torch is not None:
        torch.set_num_threads(n_threads)

"""One run at a time per subject/session: a lock file in the work folder.

The lock is an exclusive ``flock`` on ``<work>/locks/<sub-X[_ses-Y]>.lock``, whose content names
the holder (``pid N on host H``). The kernel releases it when the holder's process ends, however
it ends, so a crashed or killed run never leaves a stale lock; the files themselves stay (an
empty file is harmless, and removing a lock file races with a run about to take it).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path


class SessionLockedError(Exception):
    """Another run holds the session's lock.

    Parameters
    ----------
    holder : str
        Who holds it, e.g. ``pid 123 on host node1`` (``another run`` when unknown).
    """

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


def lock_path(work_dir: Path, key: str) -> Path:
    """Return the lock file of a subject/session.

    Parameters
    ----------
    work_dir : Path
        The work folder.
    key : str
        ``sub-X[_ses-Y]``.

    Returns
    -------
    Path
        ``work_dir/locks/<key>.lock``.

    Examples
    --------
    >>> lock_path(Path("/w"), "sub-01_ses-1").as_posix()
    '/w/locks/sub-01_ses-1.lock'
    """
    return work_dir / "locks" / f"{key}.lock"


@contextlib.contextmanager
def session_lock(work_dir: Path, key: str) -> Iterator[None]:
    """Hold the lock of a subject/session for a ``with`` block.

    Parameters
    ----------
    work_dir : Path
        The work folder.
    key : str
        ``sub-X[_ses-Y]``.

    Yields
    ------
    None
        Nothing; the lock is released after the block.

    Raises
    ------
    SessionLockedError
        If another process holds it (without waiting).
    """
    path = lock_path(work_dir, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(descriptor, 200, 0).decode("utf-8", "replace").strip()
            raise SessionLockedError(holder or "another run") from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"pid {os.getpid()} on host {socket.gethostname()}".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(descriptor, 0)
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)

"""Atomic file writing: write to a temporary name in the same folder, then rename."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path that replaces ``path`` when the block finishes without error.

    The temporary file keeps the final extension (``.nii.gz`` stays last) so that writers that
    choose the format from the name still work. On error the temporary file is removed and
    ``path`` is left as it was: nothing is ever half-written under the final name.

    Parameters
    ----------
    path : Path
        The final file name.

    Yields
    ------
    Path
        The temporary name to write to.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     target = Path(tmp) / "a.txt"
    ...     with atomic_path(target) as part:
    ...         _ = part.write_text("done")
    ...     print(target.read_text(), sorted(p.name for p in Path(tmp).iterdir()))
    done ['a.txt']
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    stem, dot, extension = path.name.partition(".")
    temporary = path.with_name(f".{stem}.part-{uuid.uuid4().hex[:8]}{dot}{extension}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


def write_text_atomic(path: Path, text: str) -> Path:
    """Write text to ``path`` atomically.

    Parameters
    ----------
    path : Path
        The final file name.
    text : str
        The content, written as UTF-8.

    Returns
    -------
    Path
        ``path``.
    """
    with atomic_path(path) as part:
        part.write_text(text, encoding="utf-8")
    return path

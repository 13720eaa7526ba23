"""The version string, read from the top-level ``version`` file (its single source)."""

from importlib import metadata
from pathlib import Path

_VERSION_FILE = Path(__file__).resolve().parent.parent / "version"


def _read_version() -> str:
    """Return the version from a source checkout's ``version`` file, else the installed metadata.

    Returns
    -------
    str
        The version string, e.g. ``"0.1.0"``.
    """
    if _VERSION_FILE.is_file():
        return _VERSION_FILE.read_text(encoding="utf-8").strip()
    try:
        return metadata.version("neurostrat")
    except metadata.PackageNotFoundError:  # neither a checkout nor installed
        return "0+unknown"


__version__ = _read_version()

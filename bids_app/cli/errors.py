"""Exit codes of the command line, and the one-line message of an error.

The exceptions of :mod:`bids_app.errors` (and their subclasses elsewhere, such as
``ClusteringError``) say what went wrong; this module alone decides how a run ends.
"""

from __future__ import annotations

from enum import IntEnum

from bids_app.errors import (
    DataError,
    InvalidBIDSError,
    NoInputError,
    NoMatchError,
    OutputError,
    SchedulerError,
    UsageError,
)


class ExitCode(IntEnum):
    """Exit codes of the BIDS-Apps execution specification draft (and ``sysexits.h``)."""

    OK = 0
    SUBJECTS_FAILED = 1
    INVALID_BIDS = 16
    UNKNOWN_LEVEL = 17
    NO_MATCH = 18
    USAGE = 64
    DATA = 65
    NO_INPUT = 66
    UNAVAILABLE = 69
    CANT_CREATE = 73


class UnknownLevelError(UsageError):
    """The analysis level is neither participant nor group."""


#: Exit code of each error class; a subclass takes the code of its nearest listed ancestor.
EXIT_CODES: dict[type[Exception], ExitCode] = {
    UnknownLevelError: ExitCode.UNKNOWN_LEVEL,
    UsageError: ExitCode.USAGE,
    NoInputError: ExitCode.NO_INPUT,
    InvalidBIDSError: ExitCode.INVALID_BIDS,
    NoMatchError: ExitCode.NO_MATCH,
    DataError: ExitCode.DATA,
    OutputError: ExitCode.CANT_CREATE,
    SchedulerError: ExitCode.UNAVAILABLE,
}


def exit_code(error: BaseException) -> ExitCode:
    """Return the exit code of a NeuroStrat error.

    Parameters
    ----------
    error : BaseException
        The error.

    Returns
    -------
    ExitCode
        The code of the nearest class in :data:`EXIT_CODES`; :attr:`ExitCode.DATA` if none.

    Examples
    --------
    >>> int(exit_code(NoMatchError("no subject 09")))
    18
    >>> class ClusteringError(DataError): ...
    >>> exit_code(ClusteringError("too few patients")).name
    'DATA'
    """
    for cls in type(error).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return ExitCode.DATA


def error_message(error: BaseException, prog: str = "neurostrat") -> str:
    r"""Return the one line printed on stderr for an error.

    Parameters
    ----------
    error : BaseException
        The error.
    prog : str
        The program's name.

    Returns
    -------
    str
        ``"<prog>: error: <message>"`` on one line.

    Examples
    --------
    >>> error_message(DataError("a.nii: bad\nre-convert it"))
    'neurostrat: error: a.nii: bad re-convert it'
    """
    return f"{prog}: error: " + " ".join(str(error).split("\n"))

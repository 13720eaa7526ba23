"""Exceptions that carry their exit code, following the BIDS-Apps execution-spec draft.

Every error a user can cause is raised as a subclass of :class:`NeuroStratError`; the CLI turns
it into one line on stderr and the matching exit code. Nothing below the CLI calls ``sys.exit``.
"""

from enum import IntEnum


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
    CANT_CREATE = 73


class NeuroStratError(Exception):
    """Base class of the errors a user can cause; ``exit_code`` says how the run ends."""

    exit_code: ExitCode = ExitCode.DATA


class UsageError(NeuroStratError):
    """Invalid combination of options or an unreadable configuration file."""

    exit_code = ExitCode.USAGE


class NoInputError(NeuroStratError):
    """The input dataset (or a required input file) does not exist."""

    exit_code = ExitCode.NO_INPUT


class InvalidBIDSError(NeuroStratError):
    """The input is not a valid BIDS dataset."""

    exit_code = ExitCode.INVALID_BIDS


class NoMatchError(NeuroStratError):
    """The participant or session filters matched nothing."""

    exit_code = ExitCode.NO_MATCH


class DataError(NeuroStratError):
    """An input file exists but its content is unusable (corrupt image, bad table...)."""

    exit_code = ExitCode.DATA


class OutputError(NeuroStratError):
    """The output folder or a file in it cannot be created."""

    exit_code = ExitCode.CANT_CREATE

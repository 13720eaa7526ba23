"""The errors a user can cause: plain, specific exceptions.

Each subclasses the builtin it refines (a :class:`DataError` is a :class:`ValueError`, a
:class:`NoInputError` a :class:`FileNotFoundError`), so code that does not know NeuroStrat can
still catch it. They carry no exit code: the CLI (:mod:`bids_app.cli.errors`) maps each class to
its exit code and prints the message on one line. Nothing below the CLI calls ``sys.exit``.
"""


class NeuroStratError(Exception):
    """Base class of the errors a user can cause (bad options, inputs or data)."""


class UsageError(NeuroStratError, ValueError):
    """Invalid combination of options or an unreadable configuration file."""


class NoInputError(NeuroStratError, FileNotFoundError):
    """The input dataset (or a required input file) does not exist."""


class InvalidBIDSError(NeuroStratError, ValueError):
    """The input is not a valid BIDS dataset."""


class NoMatchError(NeuroStratError, LookupError):
    """The participant or session filters matched nothing."""


class DataError(NeuroStratError, ValueError):
    """An input file exists but its content is unusable (corrupt image, bad table...)."""


class OutputError(NeuroStratError, OSError):
    """The output folder or a file in it cannot be created."""


class SchedulerError(NeuroStratError, RuntimeError):
    """The cluster's scheduler cannot be reached or refused a job (``sbatch`` missing, failing)."""

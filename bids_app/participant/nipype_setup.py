"""Configure nipype for a run (crash files in the work folder, quiet logs, no telemetry)."""

from __future__ import annotations

import os
import re
from pathlib import Path

os.environ.setdefault("NIPYPE_NO_ET", "1")  # no network call to check for nipype updates

from nipype import config as nipype_config
from nipype import logging as nipype_logging

_ERROR_LINE = re.compile(r"^\s*(?:[\w.]+\.)?(\w+(?:Error|Exception)): (.+)$", re.MULTILINE)


def configure_nipype(work_dir: Path, verbosity: int) -> None:
    """Set nipype's execution and logging options for this run.

    Parameters
    ----------
    work_dir : Path
        The work folder; crash files go to ``work_dir/crash``.
    verbosity : int
        The run's verbosity; nipype's own messages show from 2 up.
    """
    level = "INFO" if verbosity > 1 else "CRITICAL"
    nipype_config.update_config(
        {
            "execution": {
                "crashdump_dir": str(work_dir / "crash"),
                "crashfile_format": "txt",
                "stop_on_first_crash": True,
                "remove_unnecessary_outputs": False,
                "check_version": False,
                "poll_sleep_duration": 0.2,
            },
            "logging": {
                "workflow_level": level,
                "interface_level": level,
                "utils_level": level,
                "log_to_file": False,
            },
        }
    )
    nipype_logging.update_logging(nipype_config)


def failure_reason(exc: BaseException) -> str:
    r"""Return the one-line cause of a failed node, e.g. ``DataError: file.nii.gz is corrupt``.

    Nipype wraps the interface's exception in a ``NodeExecutionError`` whose message holds the
    original traceback as text; the last ``...Error: message`` line in it is the cause.

    Parameters
    ----------
    exc : BaseException
        The exception raised by ``Workflow.run``.

    Returns
    -------
    str
        The cause.

    Examples
    --------
    >>> failure_reason(RuntimeError("Traceback...\nbids_app.errors.DataError: a.nii: bad\n"))
    'DataError: a.nii: bad'
    """
    matches = _ERROR_LINE.findall(str(exc))
    if matches:
        kind, message = matches[-1]
        return f"{kind}: {message.strip()}"
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc) else ''}"

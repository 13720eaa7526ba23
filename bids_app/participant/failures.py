"""The one-line cause of a failed nipype run (nipype is configured by :mod:`bids_app.runtime`)."""

from __future__ import annotations

import re

_ERROR_LINE = re.compile(r"^\s*(?:[\w.]+\.)?(\w+(?:Error|Exception)): (.+)$", re.MULTILINE)


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

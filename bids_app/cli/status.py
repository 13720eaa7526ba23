"""The state of each subject in an output folder: done, failed (with its cause) or pending.

A session is done when its completion marker exists (the QC metrics, written last). A run of
the participant level writes ``logs/summary_<run>.txt`` with one ``FAILED <key>: <cause>`` line
per failed session (:func:`summary_lines`); the latest run that names a session decides its
cause, and its ``logs/log_<run>.txt`` is the log to read. The same summaries serve runs on
this machine and the tasks of a SLURM array, since each task is a run of its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bids_app.derivatives.naming import log_path, log_run_id
from bids_app.derivatives.writer import DerivativesWriter
from bids_app.inputs.inventory import SessionInputs

#: The states a subject can be in, in the order of the counts.
STATES = ("done", "failed", "pending")
_FAILED = re.compile(r"^  FAILED (\S+): (.*)$", re.MULTILINE)


@dataclass(frozen=True)
class SubjectState:
    """Where one subject stands.

    Parameters
    ----------
    subject : str
        The label, without ``sub-``.
    state : {"done", "failed", "pending"}
        Done: every session complete; failed: a session's latest run failed; pending: neither
        (not run yet, queued, running, or stopped without a summary, e.g. killed).
    cause : str
        The one-line cause of the failure (empty otherwise).
    log : Path or None
        The failed run's log, relative to the output folder.
    """

    subject: str
    state: str
    cause: str = ""
    log: Path | None = None


def summary_lines(counts: dict[str, int], failed: Iterable[tuple[str, str]]) -> list[str]:
    """Return the lines of a participant run's summary, which :func:`recorded_failures` reads.

    Parameters
    ----------
    counts : dict of str to int
        Number of sessions per outcome (done, skipped, failed, not applicable).
    failed : iterable of (str, str)
        The key and the cause of each failed session.

    Returns
    -------
    list of str
        ``participant level: <counts>``, then ``  FAILED <key>: <cause>`` per failure.

    Examples
    --------
    >>> summary_lines({"done": 1, "failed": 1}, [("sub-02", "DataError: bad")])
    ['participant level: 1 done, 1 failed', '  FAILED sub-02: DataError: bad']
    """
    summary = ", ".join(f"{n} {status}" for status, n in counts.items())
    return [f"participant level: {summary}"] + [f"  FAILED {key}: {cause}" for key, cause in failed]


def recorded_failures(output_dir: Path) -> dict[str, tuple[str, Path]]:
    """Return the cause and the log of each session whose latest recorded run failed.

    Parameters
    ----------
    output_dir : Path
        The output folder.

    Returns
    -------
    dict of str to (str, Path)
        ``sub-X[_ses-Y]`` to its cause and the failed run's log (relative to ``output_dir``).
    """
    summaries = {}
    for path in output_dir.glob(log_path("*", "summary").as_posix()):
        run_id = log_run_id(path.name, "summary")
        if run_id is not None:
            summaries[run_id] = path
    failures: dict[str, tuple[str, Path]] = {}
    for run_id in sorted(summaries):  # run ids start with their time: the latest wins
        text = summaries[run_id].read_text(encoding="utf-8", errors="replace")
        for key, cause in _FAILED.findall(text):
            failures[key] = (cause, log_path(run_id, "log"))
    return failures


def subject_states(
    inventory: Sequence[SessionInputs], writer: DerivativesWriter
) -> list[SubjectState]:
    """Return the state of each subject of the inventory with anatomical images.

    Parameters
    ----------
    inventory : sequence of SessionInputs
        The sessions (those without anatomical images are left out).
    writer : DerivativesWriter
        The output folder.

    Returns
    -------
    list of SubjectState
        One per subject, in the order of the inventory.
    """
    failures = recorded_failures(writer.output_dir)
    sessions: dict[str, list[SessionInputs]] = {}
    for item in inventory:
        if item.anatomical:
            sessions.setdefault(item.subject, []).append(item)
    states = []
    for subject, items in sessions.items():
        missing = [item for item in items if not writer.session_complete(item.entities)]
        failed = [failures[item.key] for item in missing if item.key in failures]
        if not missing:
            states.append(SubjectState(subject, "done"))
        elif failed:
            states.append(SubjectState(subject, "failed", *failed[0]))
        else:
            states.append(SubjectState(subject, "pending"))
    return states


def incomplete_subjects(inventory: Sequence[SessionInputs], writer: DerivativesWriter) -> list[str]:
    """Return the subjects with a session whose outputs are incomplete (failed or pending).

    Parameters
    ----------
    inventory : sequence of SessionInputs
        The sessions.
    writer : DerivativesWriter
        The output folder.

    Returns
    -------
    list of str
        Labels without ``sub-``, in the order of the inventory.
    """
    return [s.subject for s in subject_states(inventory, writer) if s.state != "done"]


def status_text(states: Sequence[SubjectState]) -> str:
    """Return the status table: one line per subject, then the counts.

    Parameters
    ----------
    states : sequence of SubjectState
        From :func:`subject_states`.

    Returns
    -------
    str
        ``sub-X  <state>[  <cause> (log: <path>)]`` lines and ``<n> done, <n> failed, <n>
        pending``.

    Examples
    --------
    >>> print(status_text([SubjectState("01", "done"),
    ...                    SubjectState("02", "failed", "DataError: bad", Path("logs/x"))]))
    sub-01  done
    sub-02  failed  DataError: bad (log: logs/x)
    1 done, 1 failed, 0 pending
    """
    lines = []
    for item in states:
        line = f"sub-{item.subject}  {item.state}"
        lines.append(f"{line}  {item.cause} (log: {item.log})" if item.state == "failed" else line)
    counts = ", ".join(f"{sum(s.state == state for s in states)} {state}" for state in STATES)
    return "\n".join([*lines, counts])

"""The time each step of a session's workflow takes (``--profile``): wall, CPU, peak memory.

Nipype's own resource monitor is not used: it needs psutil (not a dependency), samples once a
second (missing short peaks), reports the highest CPU *rate* rather than CPU seconds, and sleeps
0.2 s at the start of every node. Instead, nipype's status callback reads this process's CPU
time and peak memory around each node. With the ``Linear`` plugin (one step at a time in this
process: every session when ``--nprocs`` is 1, or when sessions run side by side) that is
exactly the step's cost; under ``MultiProc`` the steps run in other processes, and only their
wall time is recorded. The peak is reset before each step, so the maximum resident set that
``wait4`` or ``/usr/bin/time`` report for a profiled run is that of its last step: the run's peak
is the table's largest ``peak_rss_mb``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from bids_app.runtime import cpu_seconds, peak_rss_mb, reset_peak_rss

#: Columns of the profile table with their descriptions (the table's data dictionary).
PROFILE_COLUMNS: dict[str, dict[str, str]] = {
    "workflow": {"Description": "the sub-workflow of the step (nipype hierarchy)"},
    "step": {"Description": "the nipype node"},
    "start_s": {"Description": "when the step started, after the first step's start", "Units": "s"},
    "wall_s": {
        "Description": "wall-clock time of the step, nipype's cache check included",
        "Units": "s",
    },
    "cpu_s": {
        "Description": "user + system CPU time of the step, all threads and subprocesses; n/a "
        "when the steps ran in other processes (MultiProc)",
        "Units": "s",
    },
    "peak_rss_mb": {
        "Description": "peak resident memory of the process during the step; n/a when not "
        "measurable (MultiProc, or no /proc)",
        "Units": "MiB",
    },
}


@dataclass
class StepProfiler:
    """Record each node's wall time, CPU time and peak memory from nipype's status callback.

    Parameters
    ----------
    in_process : bool
        Whether the nodes run in this process (nipype's ``Linear`` plugin); CPU time and peak
        memory are recorded only then.
    clock : callable
        Monotonic clock in seconds.
    """

    in_process: bool = True
    clock: Callable[[], float] = time.perf_counter
    rows: list[dict[str, Any]] = field(default_factory=list)
    _started: dict[str, tuple[float, float | None]] = field(default_factory=dict)
    _origin: float | None = None

    def __call__(self, node: Any, event: str) -> None:
        """Nipype's status callback: ``event`` is ``start``, ``end`` or ``exception``.

        Parameters
        ----------
        node : nipype.pipeline.engine.Node
            The node (``fullname`` is ``<workflow>.<sub-workflow>.<node>``).
        event : str
            What happened to it.
        """
        now = self.clock()
        if event == "start":
            if self._origin is None:
                self._origin = now
            measured = self.in_process and reset_peak_rss()
            self._started[node.fullname] = (now, cpu_seconds() if measured else None)
            return
        started, cpu_start = self._started.pop(node.fullname, (now, None))
        hierarchy, _, name = node.fullname.rpartition(".")
        self.rows.append(
            {
                "workflow": hierarchy.partition(".")[2] or hierarchy,
                "step": name,
                "start_s": started - (started if self._origin is None else self._origin),
                "wall_s": now - started,
                "cpu_s": None if cpu_start is None else cpu_seconds() - cpu_start,
                "peak_rss_mb": None if cpu_start is None else peak_rss_mb(),
            }
        )

    def table(self) -> pd.DataFrame:
        """Return the steps grouped by sub-workflow (in the order each first ran), then by start.

        Returns
        -------
        pandas.DataFrame
            One row per step, columns :data:`PROFILE_COLUMNS`; times rounded to 10 ms.
        """
        table = pd.DataFrame(self.rows, columns=list(PROFILE_COLUMNS))
        first = table.groupby("workflow", sort=False)["start_s"].transform("min")
        table = table.assign(_first=first).sort_values(["_first", "start_s"], kind="stable")
        rounded = {"start_s": 2, "wall_s": 2, "cpu_s": 2, "peak_rss_mb": 1}
        return table.drop(columns="_first").round(rounded).reset_index(drop=True)


def slowest_steps(table: pd.DataFrame, count: int = 5) -> pd.DataFrame:
    """Return the slowest steps of a profile table with their share of the total wall time.

    Parameters
    ----------
    table : pandas.DataFrame
        A :meth:`StepProfiler.table`.
    count : int
        How many steps.

    Returns
    -------
    pandas.DataFrame
        Columns ``step`` (``<sub-workflow>.<node>``), ``wall_s``, ``cpu_s``, ``share_%``.

    Examples
    --------
    >>> table = pd.DataFrame({"workflow": ["a", "b"], "step": ["x", "y"], "wall_s": [1.0, 3.0],
    ...                       "cpu_s": [1.0, 5.0]})
    >>> slowest_steps(table, 1).to_dict("records")
    [{'step': 'b.y', 'wall_s': 3.0, 'cpu_s': 5.0, 'share_%': 75.0}]
    """
    total = float(table["wall_s"].sum()) or 1.0
    slowest = table.nlargest(count, "wall_s")
    return pd.DataFrame(
        {
            "step": slowest["workflow"] + "." + slowest["step"],
            "wall_s": slowest["wall_s"],
            "cpu_s": slowest["cpu_s"],
            "share_%": (100 * slowest["wall_s"] / total).round(1),
        }
    ).reset_index(drop=True)

"""Read ``--cluster-table``: the user's own metrics (e.g. FreeSurfer's) to cluster the patients on.

The file is a tab-separated table with a ``participant_id`` column (``sub-01`` or ``01``), an
optional ``session_id`` column (``ses-1`` or ``1``) and one column per metric. It is joined to
the dataset by participant, and by session when it has a ``session_id`` column; the clustering
takes one row per participant, its first session in ``session_id`` order, as it does with the
participant-level features.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from bids_app.errors import DataError, NoInputError
from bids_app.inputs.participants import _read_table

LOGGER = logging.getLogger("bids_app.inputs")

#: Form of a BIDS label (the part after ``sub-`` or ``ses-``).
_LABEL = r"[A-Za-z0-9]+"


def read_cluster_table(path: Path, sessions: pd.DataFrame) -> pd.DataFrame:
    """Read and check the metrics table of ``--cluster-table`` and join it to the dataset.

    Parameters
    ----------
    path : Path
        The TSV file.
    sessions : pandas.DataFrame
        The dataset's sessions with participant-level outputs: ``participant_id``
        (``sub-<label>``) and, for a dataset with sessions, ``session_id`` (``ses-<label>``).

    Returns
    -------
    pandas.DataFrame
        One row per participant of the dataset found in the file (its first session), index
        ``participant_id`` (``sub-<label>``); every other column of the file but ``session_id``,
        as floats where each value is a number or ``n/a``, as text otherwise.

    Raises
    ------
    NoInputError
        If the file does not exist (exit 66).
    DataError
        If it is not a UTF-8 tab-separated table, has no ``participant_id`` column, holds a
        malformed or repeated identifier, or shares no participant (and session) with the
        dataset (exit 65); the message names the file and the fix.
    """
    if not path.is_file():
        raise NoInputError(
            f"--cluster-table {path} does not exist; give a TSV file with a participant_id "
            "column and one column per metric"
        )
    table = _read_table(path)
    if "participant_id" not in table.columns:
        raise DataError(
            f"{path}: column 'participant_id' is missing (found {list(table.columns)}); add it, "
            "with the subjects' labels (sub-01 or 01)"
        )
    keys = ["participant_id"]
    table["participant_id"] = _labels(table, "participant_id", "sub-", path)
    if "session_id" in table.columns:
        table["session_id"] = _labels(table, "session_id", "ses-", path)
        keys.append("session_id")
    repeated = table[table.duplicated(keys, keep=False)]
    if len(repeated):
        shown = sorted({"_".join(row) for row in repeated[keys].to_numpy()})[:5]
        each = "participant and session" if len(keys) == 2 else "participant"
        raise DataError(
            f"{path}: {shown} appear more than once; keep one row per {each} (add a session_id "
            "column for repeated scans)"
        )
    dataset = sessions[[k for k in keys if k in sessions]].drop_duplicates()
    if len(keys) == 2 and "session_id" not in dataset:
        raise DataError(
            f"{path}: has a session_id column but the dataset has no sessions; remove the column"
        )
    joined = table.merge(dataset, on=keys, how="inner")
    if joined.empty:
        shown = sorted(table["participant_id"])[:3]
        raise DataError(
            f"{path}: no {' and '.join(keys)} in common with the dataset's processed subjects "
            f"(the file lists {shown}...); use the dataset's labels"
        )
    left_out = len(table) - len(joined)
    if left_out:
        LOGGER.warning(
            "%s: %d row(s) not in the dataset's processed sessions, ignored", path, left_out
        )
    joined = joined.sort_values(keys).drop_duplicates("participant_id")
    metrics = joined.drop(columns=keys).set_index(joined["participant_id"])
    for column in metrics.columns:
        values = pd.to_numeric(metrics[column], errors="coerce")
        if values.notna().sum() == metrics[column].notna().sum():
            metrics[column] = values.astype(float)
    return metrics


def _labels(table: pd.DataFrame, column: str, prefix: str, path: Path) -> pd.Series:
    """Return a column of BIDS identifiers with their prefix, or raise naming the bad rows."""
    labels = table[column].str.removeprefix(prefix)
    bad = labels.isna() | ~labels.fillna("").str.fullmatch(_LABEL)
    if bad.any():
        rows = ", ".join(str(i + 2) for i in bad[bad].index[:5])
        raise DataError(
            f"{path}: {column} must be '{prefix}<label>' or '<label>' with letters and digits "
            f"only (line(s) {rows}); fix them"
        )
    return prefix + labels

"""Read ``participants.tsv`` and ``participants.json`` with type checks and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from bids_app.errors import DataError, NoInputError

PARTICIPANTS_TSV = "participants.tsv"

#: Columns that must be numeric whenever they are present (``n/a`` allowed).
NUMERIC_COLUMNS = (
    "age",
    "age_at_onset",
    "edss",
    "alsfrs_r",
    "disease_duration",
    "disease_duration_months",
    "progression_rate",
    "onset_to_diagnosis_months",
    "odi",
    "survival_months",
    "event",
)

#: Accepted spellings of ``sex`` (BIDS recommends M/F/O), mapped to one letter.
SEX_LEVELS = {
    "m": "M",
    "male": "M",
    "f": "F",
    "female": "F",
    "o": "O",
    "other": "O",
}


def read_participants(bids_dir: Path) -> pd.DataFrame:
    """Read and check ``participants.tsv`` (and its data dictionary when present).

    Checks: a ``participant_id`` column of unique ``sub-<label>`` values; numeric columns
    (:data:`NUMERIC_COLUMNS`, and any column that ``participants.json`` gives ``Units`` without
    ``Levels``) hold numbers or ``n/a``; columns with ``Levels`` hold only those levels;
    ``sex`` holds M/F/O in any common spelling (normalised to one letter).

    Parameters
    ----------
    bids_dir : Path
        The dataset root.

    Returns
    -------
    pandas.DataFrame
        One row per participant, indexed by the label without ``sub-``; numeric columns are
        floats, missing values NaN. An empty frame when the file does not exist or is empty.
        A UTF-8 byte-order mark, CRLF line ends and spaces around names and values are
        accepted (and stripped).

    Raises
    ------
    DataError
        Naming the file, the column and the offending rows.
    """
    path = bids_dir / PARTICIPANTS_TSV
    dictionary = _read_dictionary(bids_dir / "participants.json")
    if not path.is_file() or not path.read_bytes().strip():
        return pd.DataFrame(index=pd.Index([], name="subject"))
    table = _read_table(path)
    if "participant_id" not in table.columns:
        raise DataError(
            f"{path}: column 'participant_id' is missing (found {list(table.columns)}); "
            "the first column must be participant_id"
        )
    ids = table["participant_id"].str.strip()
    bad = ids[ids.isna() | ~ids.fillna("").str.fullmatch(r"sub-[A-Za-z0-9]+")]
    if len(bad):
        rows = ", ".join(str(i + 2) for i in bad.index[:5])
        raise DataError(
            f"{path}: participant_id must look like 'sub-<label>' (line(s) {rows}); fix them"
        )
    duplicated = sorted(set(ids[ids.duplicated()]))
    if duplicated:
        raise DataError(f"{path}: duplicate participant_id {duplicated}; each must appear once")
    table["participant_id"] = ids
    for column in table.columns.drop("participant_id"):
        spec = dictionary.get(column, {})
        levels = spec.get("Levels") if isinstance(spec, dict) else None
        if column == "sex":
            table[column] = _normalise_sex(table[column], path)
        elif levels:
            _check_levels(table, column, [str(level) for level in levels], path)
        elif column in NUMERIC_COLUMNS or (isinstance(spec, dict) and "Units" in spec):
            table[column] = _to_numeric(table, column, path)
    return table.set_index(table["participant_id"].str.removeprefix("sub-")).rename_axis("subject")


def read_sessions(bids_dir: Path, subjects: list[str]) -> pd.DataFrame:
    """Read the subjects' ``sub-<label>_sessions.tsv`` files (per-session variables).

    Numeric columns (:data:`NUMERIC_COLUMNS`, e.g. the age or EDSS at the session) are checked
    as in :func:`read_participants`; ``acq_time`` and other columns stay text.

    Parameters
    ----------
    bids_dir : Path
        The dataset root.
    subjects : list of str
        Subject labels without ``sub-``.

    Returns
    -------
    pandas.DataFrame
        ``participant_id, session_id`` and the files' columns, one row per listed session; empty
        when no subject has such a file.

    Raises
    ------
    DataError
        Naming the file when it lacks ``session_id`` or holds non-numbers in a numeric column.
    """
    frames = []
    for subject in subjects:
        path = bids_dir / f"sub-{subject}" / f"sub-{subject}_sessions.tsv"
        if not path.is_file():
            continue
        table = _read_table(path)
        if "session_id" not in table.columns:
            raise DataError(f"{path}: column 'session_id' is missing (found {list(table.columns)})")
        table.insert(0, "participant_id", f"sub-{subject}")
        for column in table.columns.intersection(NUMERIC_COLUMNS):
            table[column] = _to_numeric(table, column, path)
        frames.append(table)
    if not frames:
        return pd.DataFrame(columns=["participant_id", "session_id"])
    return pd.concat(frames, ignore_index=True)


def participants_warnings(bids_dir: Path, table: pd.DataFrame, subjects: list[str]) -> list[str]:
    """Say what participants.tsv lacks or lists in excess, compared with the subjects on disk.

    Parameters
    ----------
    bids_dir : Path
        The dataset root.
    table : pandas.DataFrame
        From :func:`read_participants`.
    subjects : list of str
        Labels (without ``sub-``) of the subjects on disk.

    Returns
    -------
    list of str
        One warning per finding; empty when the file lists exactly the subjects on disk.
    """
    path = bids_dir / PARTICIPANTS_TSV
    if not path.is_file():
        return [f"{path} is missing: no demographics; the group level will need it"]
    if table.empty:
        return [f"{path} lists no participant: no demographics; the group level will need it"]
    listed = set(table.index)
    absent = sorted(listed - set(subjects))
    unlisted = sorted(set(subjects) - listed)
    return [
        *(f"{path}: sub-{label} is listed but not on disk; ignored" for label in absent),
        *(
            f"sub-{label} is not listed in {path}: it has no demographics; add a row for it"
            for label in unlisted
        ),
    ]


def require_participants(bids_dir: Path, table: pd.DataFrame, columns: list[str]) -> None:
    """Fail up front when the group level has no participants table to work with.

    Parameters
    ----------
    bids_dir : Path
        The dataset root.
    table : pandas.DataFrame
        From :func:`read_participants`.
    columns : list of str
        The columns the group level reads (group column, ``--target``...), for the message.

    Raises
    ------
    NoInputError
        If participants.tsv does not exist (exit 66).
    DataError
        If it lists no participant (empty or header only, exit 65).
    """
    path = bids_dir / PARTICIPANTS_TSV
    needed = ", ".join(["participant_id", *columns])
    if not path.is_file():
        raise NoInputError(
            f"{path} is missing; the group level needs it, with one row per subject and the "
            f"columns {needed}"
        )
    if table.empty:
        raise DataError(
            f"{path} lists no participant; the group level needs one row per subject with "
            f"the columns {needed}"
        )


def _read_table(path: Path) -> pd.DataFrame:
    """Read a BIDS TSV file as text, without its UTF-8 BOM and the spaces around cells."""
    try:
        table = pd.read_csv(
            path,
            sep="\t",
            dtype=str,
            na_values=["n/a", ""],
            keep_default_na=False,
            encoding="utf-8-sig",
        )
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text; save it as UTF-8") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(
            f"{path} cannot be read as a tab-separated table ({exc}); separate columns by tabs"
        ) from exc
    table.columns = table.columns.str.strip()
    for column in table.columns:
        table[column] = table[column].str.strip().replace({"": None, "n/a": None})
    return table


def _read_dictionary(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text; save it as UTF-8") from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); fix it") from exc
    if not isinstance(data, dict):
        raise DataError(
            f"{path} must hold a JSON object of column descriptions; write "
            '{"column": {"Description": ...}}'
        )
    return data


def _to_numeric(table: pd.DataFrame, column: str, path: Path) -> pd.Series:
    values = pd.to_numeric(table[column], errors="coerce")
    bad = table.loc[values.isna() & table[column].notna(), ["participant_id", column]]
    if len(bad):
        examples = ", ".join(f"{pid}: {value!r}" for pid, value in bad.head(3).to_numpy())
        raise DataError(
            f"{path}: column {column!r} must be numeric or n/a; non-numeric values ({examples})"
        )
    return values.astype(float)


def _normalise_sex(values: pd.Series, path: Path) -> pd.Series:
    mapped = values.str.strip().str.lower().map(SEX_LEVELS)
    bad = values[mapped.isna() & values.notna()]
    if len(bad):
        raise DataError(
            f"{path}: column 'sex' has unknown values {sorted(set(bad))[:5]}; use M, F, O or n/a"
        )
    return mapped


def _check_levels(table: pd.DataFrame, column: str, levels: list[str], path: Path) -> None:
    present = table[column].dropna().str.strip()
    bad = sorted(set(present) - set(levels))
    if bad:
        raise DataError(
            f"{path}: column {column!r} has values {bad[:5]} that participants.json does not "
            f"list in its Levels {levels}"
        )

"""Subject rows for the classification: the ``rates`` family and ``--predict-from first-session``.

The brain-stem PhD proposal's last objective, "predict the evolution of ALS from early exams"
from "very short time series" (Challenges, c), asks for one row per subject rather than per
session: its first session's features (what is known early), the annualised rates of change of
its morphometry over its sessions (:mod:`bids_app.features.longitudinal`) and the target at its
last session (the later label). Each subject is one row, so the folds keep its sessions together
by construction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from bids_app.features.longitudinal import annualised_rates, session_years, timelines
from bids_app.models.design import DesignError, GroupDesign

#: The feature family of the annualised rates (``--feature-sets rates volumes+rates``).
RATES_FAMILY = "rates"
#: Families whose rates the ``rates`` family holds: the morphometry (radiomics, histograms and
#: deep features have no meaning as a change per year).
RATE_SOURCES = ("volumes", "thickness", "meshnet")
#: sessions.tsv columns that time the sessions, in the order they are looked for.
TIME_COLUMNS = ("acq_time", "age")
#: ``--predict-from`` value that gives one row per subject without the rates.
FIRST_SESSION = "first-session"

#: Data dictionary of the timeline columns of :attr:`SubjectRows.rates`.
TIMELINE_COLUMNS = {
    "first_session": {"Description": "the subject's first session (its features are the row's)"},
    "last_session": {"Description": "the subject's last session (the target is its value)"},
    "n_sessions": {"Description": "sessions with features"},
    "span_years": {"Description": "time from the first to the last session", "Units": "years"},
}


@dataclass(frozen=True)
class SubjectRows:
    """One row per subject: first-session features, rates and the target at the last session.

    Parameters
    ----------
    features : pandas.DataFrame
        Index ``sub-X``: ``participant_id``, ``session_id`` (the first session's), the first
        session's features and, when asked, the rate columns.
    families : dict of str to list of str
        Family to its columns (``rates`` among them when asked).
    clinical : pandas.DataFrame
        Same index: the first session's clinical values, but the target's at the last session.
    rates : pandas.DataFrame or None
        ``participant_id``, the timeline (first and last session, count, span) and the rates of
        the subjects that have them; None when the rates were not asked for.
    exclusions : pandas.DataFrame
        ``participant_id, session_id, reason`` of the subjects left out.
    time_column : str or None
        The sessions.tsv column that timed the sessions.
    """

    features: pd.DataFrame
    families: dict[str, list[str]]
    clinical: pd.DataFrame
    rates: pd.DataFrame | None
    exclusions: pd.DataFrame
    time_column: str | None


def uses_rates(feature_sets: Sequence[str]) -> bool:
    """Whether a feature set holds the ``rates`` family.

    Parameters
    ----------
    feature_sets : sequence of str
        The feature sets (``volumes``, ``volumes+rates``...).

    Returns
    -------
    bool
        True when one of them names :data:`RATES_FAMILY`.

    Examples
    --------
    >>> uses_rates(["volumes", "volumes+rates"]), uses_rates(["volumes"])
    (True, False)
    """
    return any(RATES_FAMILY in name.split("+") for name in feature_sets)


def wants_subject_rows(feature_sets: Sequence[str], predict_from: str) -> bool:
    """Whether the classification takes one row per subject.

    Parameters
    ----------
    feature_sets : sequence of str
        The feature sets (``volumes``, ``volumes+rates``...).
    predict_from : str
        ``--predict-from``.

    Returns
    -------
    bool
        True when a feature set holds the ``rates`` family or the prediction is from the first
        session.

    Examples
    --------
    >>> wants_subject_rows(["volumes", "volumes+rates"], "all-sessions")
    True
    >>> wants_subject_rows(["volumes"], "all-sessions")
    False
    """
    return uses_rates(feature_sets) or predict_from == FIRST_SESSION


def time_column(sessions: pd.DataFrame, chosen: str | None) -> str | None:
    """Pick the sessions.tsv column that times the sessions.

    Parameters
    ----------
    sessions : pandas.DataFrame
        From :func:`~bids_app.inputs.participants.read_sessions`.
    chosen : str or None
        ``--session-time``; None picks the first of :data:`TIME_COLUMNS` with a value.

    Returns
    -------
    str or None
        The column, None when no sessions.tsv has one.

    Raises
    ------
    DesignError
        If the chosen column is in no sessions.tsv.
    """
    if chosen is not None:
        if chosen not in sessions:
            raise DesignError(
                f"--session-time: no column {chosen!r} in the sessions.tsv files (columns: "
                f"{sorted(sessions.columns)})"
            )
        return chosen
    return next((c for c in TIME_COLUMNS if c in sessions and sessions[c].notna().any()), None)


def check_times(sessions: pd.DataFrame, feature_sets: Sequence[str], chosen: str | None) -> None:
    """Check, before anything is written, that the sessions can be timed for the rates.

    Parameters
    ----------
    sessions : pandas.DataFrame
        From :func:`~bids_app.inputs.participants.read_sessions`.
    feature_sets : sequence of str
        ``--feature-sets``.
    chosen : str or None
        ``--session-time``.

    Raises
    ------
    DesignError
        If ``--session-time`` names an absent column, or the rates are asked for and no
        sessions.tsv has a time.
    """
    column = time_column(sessions, chosen)
    if column is None and uses_rates(feature_sets):
        raise DesignError(
            f"feature set {RATES_FAMILY!r} needs the time of every session: no sessions.tsv "
            f"has a column {' or '.join(TIME_COLUMNS)}; add one, or name another with "
            "--session-time"
        )


def subject_rows(
    features: pd.DataFrame,
    families: Mapping[str, Sequence[str]],
    clinical: pd.DataFrame,
    sessions: pd.DataFrame,
    target_column: str,
    with_rates: bool,
    rate_units: str = "per-year",
    session_time: str | None = None,
) -> SubjectRows:
    """Turn the session rows into subject rows, with the ``rates`` family when asked.

    Parameters
    ----------
    features : pandas.DataFrame
        From :func:`~bids_app.models.design.join_families` (index ``sub-X[_ses-Y]``).
    families : mapping of str to sequence of str
        Family to its columns.
    clinical : pandas.DataFrame
        Per-session clinical values (same index as ``features``).
    sessions : pandas.DataFrame
        From :func:`~bids_app.inputs.participants.read_sessions`: the sessions' times.
    target_column : str
        The target, taken at the last session.
    with_rates : bool
        Whether to add the ``rates`` family (then only subjects with rates are kept, so that
        every feature set is compared on the same subjects).
    rate_units : {"per-year", "percent-per-year"}
        Units of the rates.
    session_time : str or None
        ``--session-time``; None: ``acq_time``, else ``age``.

    Returns
    -------
    SubjectRows
        The subject rows, their families and clinical values, the rates and the exclusions.

    Raises
    ------
    DesignError
        If the rates are asked for without a morphometry family, or ``--session-time`` names
        an absent column.
    """
    column = time_column(sessions, session_time)
    if column is not None:
        keys = sessions["participant_id"] + "_" + sessions["session_id"]
        times = sessions.set_index(keys)[column].reindex(features.index)
        years = session_years(times)
    else:
        years = pd.Series(float("nan"), index=features.index)
    participants = features["participant_id"]
    timeline = timelines(participants, years)
    timeline.loc[timeline["reason"] != "", "reason"] += (
        f" ({column} in sessions.tsv)" if column else " (no acq_time or age in sessions.tsv)"
    )
    families = {family: list(columns) for family, columns in families.items()}
    rates = None
    reasons = timeline["reason"]
    if with_rates:
        sources = [c for f in RATE_SOURCES for c in families.get(f, ())]
        if not sources:
            raise DesignError(
                f"feature set {RATES_FAMILY!r}: no {' or '.join(RATE_SOURCES)} features to take "
                "the rates of; run the participant level with volumes or thickness in --features"
            )
        values = features[sources].apply(pd.to_numeric, errors="coerce")
        rates, excluded = annualised_rates(values, participants, years, rate_units)
        reasons = reasons.copy()
        for row in excluded.itertuples():
            if not reasons[row.participant_id]:
                reasons[row.participant_id] = row.reason
        families[RATES_FAMILY] = list(rates.columns)
    kept = reasons.index[reasons == ""]
    first = pd.Index(timeline.loc[kept, "first"])
    last = pd.Index(timeline.loc[kept, "last"])
    rows = features.loc[first].set_axis(kept)
    subject_clinical = clinical.reindex(first).set_axis(kept)
    subject_clinical[target_column] = clinical[target_column].reindex(last).to_numpy()
    if rates is not None:
        rows = rows.join(rates)
        rates = timeline.loc[rates.index, ["first", "last", "n_sessions", "span_years"]].join(rates)
        rates = rates.rename(columns={"first": "first_session", "last": "last_session"})
        rates = rates.rename_axis("participant_id").reset_index()
    exclusions = pd.DataFrame(
        {
            "participant_id": reasons.index[reasons != ""],
            "session_id": pd.NA,
            "reason": reasons[reasons != ""].to_numpy(),
        }
    )
    return SubjectRows(
        features=rows,
        families=families,
        clinical=subject_clinical,
        rates=rates,
        exclusions=exclusions,
        time_column=column,
    )


def with_exclusions(design: GroupDesign, exclusions: pd.DataFrame) -> GroupDesign:
    """Return the design with subjects left out before it listed first among its exclusions.

    Parameters
    ----------
    design : GroupDesign
        From :func:`~bids_app.models.design.build_design`.
    exclusions : pandas.DataFrame
        ``participant_id, session_id, reason``.

    Returns
    -------
    GroupDesign
        The same design, its ``exclusions`` extended.
    """
    frames = [f for f in (exclusions, design.exclusions) if len(f)]
    joined = pd.concat(frames, ignore_index=True) if frames else design.exclusions
    return dataclasses.replace(design, exclusions=joined)

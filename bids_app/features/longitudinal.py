"""Longitudinal features: each subject's sessions in time, and its annualised rates of change.

The brain-stem PhD proposal (Sublime and Marchand-Pauvert, "MRI Segmentation of brainstem
structures using Deep Learning techniques: Application to ALS") sets as its last objective to
"predict the evolution of ALS from early exams", and names as its last challenge "the predictive
aspect using very short time series, as time series related with ALS patient tend to be short
due to the somewhat fast nature of the disease and relative cost of MRI exams" (Challenges, c).
With two or three sessions per subject, the simplest summary that uses them all is the
least-squares slope of each feature over time: the annualised rate of change (with two sessions
the difference divided by the years between them), optionally relative to the first session's
value (% per year), as atrophy rates are usually reported.

Pure functions on tables (pandas, numpy): the group level picks the times and the families.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Days per year of the dates' differences (Julian year).
DAYS_PER_YEAR = 365.25
#: Suffix of a rate column, by unit: per year, or percent of the first session's value per year.
RATE_SUFFIXES = {"per-year": "_per_year", "percent-per-year": "_pct_per_year"}
#: Columns of :func:`timelines`.
TIMELINE_COLUMNS = ("first", "last", "n_sessions", "span_years", "reason")


def session_years(times: pd.Series) -> pd.Series:
    """Convert the sessions' times to years: numbers as they are, text as dates.

    Parameters
    ----------
    times : pandas.Series
        An age in years (numbers, e.g. sessions.tsv ``age``) or dates and times (text, e.g.
        sessions.tsv ``acq_time`` in ISO 8601, ``2020-01-31T10:00:00``).

    Returns
    -------
    pandas.Series
        Float years (dates as years since 1970-01-01), NaN where the time is missing or not
        readable; same index.

    Examples
    --------
    >>> session_years(pd.Series([61.5, None])).tolist()
    [61.5, nan]
    >>> years = session_years(pd.Series(["2020-01-01", "2022-01-01T00:00:00", "n/a"]))
    >>> round(float(years[1] - years[0]), 4), bool(np.isnan(years[2]))
    (2.0014, True)
    """
    numbers = pd.to_numeric(times, errors="coerce")
    if numbers.notna().sum() == times.notna().sum():
        return numbers.astype(float)
    dates = pd.to_datetime(times, errors="coerce", format="ISO8601", utc=True)
    epoch = pd.Timestamp("1970-01-01", tz="UTC")
    return ((dates - epoch) / pd.Timedelta(days=DAYS_PER_YEAR)).astype(float)


def timelines(participants: pd.Series, years: pd.Series) -> pd.DataFrame:
    """Order each subject's sessions in time: first and last session, count and span.

    Parameters
    ----------
    participants : pandas.Series
        The subject of each session (index: session keys).
    years : pandas.Series
        The time of each session in years (same index), NaN where unknown.

    Returns
    -------
    pandas.DataFrame
        One row per subject (index: the subject, sorted): ``first`` and ``last`` (session keys),
        ``n_sessions``, ``span_years`` (last minus first time; 0 with one session) and ``reason``,
        empty when the sessions can be ordered, else why not (a subject with one session needs
        no time).
    """
    rows = {}
    for subject, keys in participants.groupby(participants, sort=True).groups.items():
        times = years.reindex(keys)
        if len(keys) == 1:
            rows[subject] = (keys[0], keys[0], 1, 0.0, "")
            continue
        untimed = times.index[times.isna()]
        if len(untimed):
            reason = f"no time for session(s) {', '.join(map(str, untimed))}"
            rows[subject] = (pd.NA, pd.NA, len(keys), np.nan, reason)
            continue
        ordered = times.sort_values(kind="stable")
        span = float(ordered.iloc[-1] - ordered.iloc[0])
        reason = "" if span > 0 else f"its {len(keys)} sessions have the same time"
        rows[subject] = (ordered.index[0], ordered.index[-1], len(keys), span, reason)
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(TIMELINE_COLUMNS))


def annualised_rates(
    values: pd.DataFrame,
    participants: pd.Series,
    years: pd.Series,
    units: str = "per-year",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Least-squares slope of every feature over each subject's sessions, per year.

    The slope of a feature is ``sum((t - mean t) (x - mean x)) / sum((t - mean t)^2)`` over the
    subject's sessions where the feature is known (with two sessions: the difference divided by
    the years between them); it is NaN where fewer than two of them are known. In
    ``percent-per-year`` it is divided by the first session's value and multiplied by 100.

    Parameters
    ----------
    values : pandas.DataFrame
        Numeric features, one row per session (index: session keys).
    participants : pandas.Series
        The subject of each session (same index).
    years : pandas.Series
        The time of each session in years (same index), e.g. from :func:`session_years`.
    units : {"per-year", "percent-per-year"}
        Units of the rates (keys of :data:`RATE_SUFFIXES`).

    Returns
    -------
    rates : pandas.DataFrame
        One row per subject with at least two sessions ordered in time (index: the subject);
        one column per feature, named ``<feature>_per_year`` or ``<feature>_pct_per_year``.
    exclusions : pandas.DataFrame
        ``participant_id, reason`` of the subjects without rates (one session, sessions without
        a time, or all at the same time).

    Raises
    ------
    ValueError
        For unknown ``units``.

    Examples
    --------
    >>> values = pd.DataFrame({"v": [10.0, 8.0, 7.5, 5.0]}, index=["a1", "a2", "a3", "b1"])
    >>> subjects = pd.Series(["a", "a", "a", "b"], index=values.index)
    >>> years = pd.Series([0.0, 1.0, 3.0, 0.0], index=values.index)
    >>> rates, excluded = annualised_rates(values, subjects, years)
    >>> rates
       v_per_year
    a       -0.75
    >>> excluded.reason.tolist()
    ['one session: a rate needs at least two']
    """
    if units not in RATE_SUFFIXES:
        raise ValueError(f"units must be one of {sorted(RATE_SUFFIXES)}, got {units!r}")
    timeline = timelines(participants, years)
    one = timeline["n_sessions"] < 2
    timeline.loc[one, "reason"] = "one session: a rate needs at least two"
    kept = timeline.index[timeline["reason"] == ""]
    exclusions = pd.DataFrame({"participant_id": timeline.index[timeline["reason"] != ""]}).assign(
        reason=timeline.loc[timeline["reason"] != "", "reason"].to_numpy()
    )
    rows = participants.isin(kept)
    x = values.loc[rows].astype(float)
    subject = participants[rows]
    known = x.notna()
    t = pd.DataFrame(
        np.where(known, years[rows].to_numpy()[:, None], np.nan), index=x.index, columns=x.columns
    )
    dt = t - t.groupby(subject).transform("mean")
    dx = x - x.groupby(subject).transform("mean")
    sxx = (dt**2).groupby(subject).sum()
    sxy = (dt * dx).groupby(subject).sum()
    enough = known.groupby(subject).sum() >= 2
    slopes = (sxy / sxx).where(enough & (sxx > 0))
    if units == "percent-per-year":
        first = x.loc[timeline.loc[kept, "first"]].set_axis(kept)
        slopes = 100.0 * slopes / first.where(first != 0)
    slopes = slopes.reindex(kept).rename(columns=lambda c: f"{c}{RATE_SUFFIXES[units]}")
    return slopes.rename_axis(None), exclusions

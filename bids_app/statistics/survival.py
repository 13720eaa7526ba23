"""Survival by group: Kaplan-Meier, log-rank tests, long vs short survivors, odds and hazards.

Milella et al. (Milella 2023, "Statistical Analysis" and "Survival Analysis") compared the survival
of their radiologic clusters of ALS patients: time from symptom onset to death or tracheostomy
(a composite outcome) or to the censoring date; Kaplan-Meier curves with log-rank tests between
the clusters and the estimated median survival with its 95 % CI per cluster (their Table); the
patients split into long and short survivors by a two-step cluster analysis of the outcome
status and the time, and logistic regression of that split on the cluster, reported as odds
ratios (OR) with 95 % CI.

Every estimator and test is lifelines' (Kaplan-Meier, log-rank, Cox) or statsmodels'
(logistic regression); this module checks and arranges the inputs and tabulates the results.
:func:`prepare_survival` is the common check: negative or infinite times are errors (a data
error, not a missing value), subjects with a missing time, event status or group are left out
and listed with the reason; every function below applies it and leaves out the same subjects.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd
import statsmodels.api as sm
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.statistics import multivariate_logrank_test, pairwise_logrank_test
from lifelines.utils import median_survival_times
from sklearn.cluster import KMeans
from sklearn.preprocessing import MinMaxScaler
from statsmodels.tools.sm_exceptions import ConvergenceWarning, PerfectSeparationWarning
from threadpoolctl import threadpool_limits

#: Columns of :func:`kaplan_meier_by_group`.
KM_COLUMNS = [
    "group",
    "time",
    "n_at_risk",
    "n_events",
    "n_censored",
    "survival",
    "ci_lower",
    "ci_upper",
]
#: Columns of :func:`median_survival`.
MEDIAN_COLUMNS = ["group", "n", "n_events", "median", "ci_lower", "ci_upper"]
#: Columns of :func:`logrank_tests`.
LOGRANK_COLUMNS = [
    "comparison",
    "groups",
    "n",
    "n_events",
    "test_statistic",
    "df",
    "p_value",
    "p_bonferroni",
]
#: Columns of :func:`odds_ratios`.
ODDS_COLUMNS = [
    "model",
    "predictor",
    "term",
    "n",
    "n_positive",
    "odds_ratio",
    "ci_lower",
    "ci_upper",
    "p_value",
    "note",
]
#: Columns of :func:`cox_model`.
COX_COLUMNS = ["covariate", "n", "n_events", "hazard_ratio", "ci_lower", "ci_upper", "p_value"]
#: Label of the single curve when no groups are given.
ALL = "all"
#: Random restarts of the two-cluster k-means of :func:`long_short_survivors`.
N_INIT = 10


def prepare_survival(
    time: pd.Series | Sequence[float],
    event: pd.Series | Sequence[float],
    groups: pd.Series | Sequence | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check survival data; leave out and list the subjects with missing values.

    Parameters
    ----------
    time : pandas.Series or sequence of float
        Time to the event or to censoring, >= 0 (Milella 2023: months from symptom onset).
    event : pandas.Series or sequence
        1 or True when the event (death or tracheostomy) happened at ``time``, 0 or False
        when the subject was censored then.
    groups : pandas.Series or sequence, optional
        The subjects' groups (e.g. clusters); None puts everyone in one group, ``"all"``.

    Returns
    -------
    data : pandas.DataFrame
        The complete subjects, indexed like ``time`` (a range for a sequence), with columns
        ``time`` (float), ``event`` (int 0/1) and ``group``.
    exclusions : pandas.DataFrame
        One row per left-out subject with the column ``reason`` (``missing survival time``,
        ``missing event status``, ``missing group``, joined by ``"; "``).

    Raises
    ------
    ValueError
        If the inputs differ in length or index, a time is negative or infinite or not a
        number, an event status is not 0/1, or no subject is complete. The rows at fault
        are named.

    Examples
    --------
    >>> data, exclusions = prepare_survival([5.0, None, 7.0], [1, 0, None])
    >>> data
       time  event group
    0   5.0      1   all
    >>> exclusions["reason"].tolist()
    ['missing survival time', 'missing event status']
    """
    time = _series(time, None, "time")
    event = _series(event, time.index, "event")
    groups = (
        pd.Series(ALL, index=time.index)
        if groups is None
        else _series(groups, time.index, "groups")
    )
    if not (pd.api.types.is_numeric_dtype(time) or time.isna().all()):
        raise ValueError("survival times must be numbers")
    time = time.astype(float)
    bad = time.notna() & ~(np.isfinite(time) & (time >= 0))
    if bad.any():
        raise ValueError(f"survival times must be finite and >= 0; rows: {_rows(bad)}")
    as_number = event.map(
        lambda value: float(value) if isinstance(value, bool | np.bool_) else value
    )
    status = pd.to_numeric(as_number, errors="coerce")
    bad = event.notna() & ~status.isin([0, 1])
    if bad.any():
        raise ValueError(f"event status must be 0/1 or True/False; rows: {_rows(bad)}")
    reasons = pd.DataFrame(
        {
            "missing survival time": time.isna(),
            "missing event status": event.isna(),
            "missing group": groups.isna(),
        }
    )
    excluded = reasons.any(axis=1)
    exclusions = pd.DataFrame(
        {"reason": ["; ".join(reasons.columns[row]) for row in reasons[excluded].to_numpy()]},
        index=time.index[excluded],
    )
    if excluded.all():
        raise ValueError("no subject has a survival time, an event status and a group")
    data = pd.DataFrame(
        {"time": time, "event": status.astype(float), "group": groups}, index=time.index
    )[~excluded]
    return data.astype({"event": int}), exclusions


def kaplan_meier_by_group(
    time: pd.Series | Sequence[float],
    event: pd.Series | Sequence[float],
    groups: pd.Series | Sequence | None = None,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Kaplan-Meier survival curve of every group, in one tidy table (Milella 2023, Fig. 2).

    Each curve is lifelines' :class:`~lifelines.KaplanMeierFitter`, its pointwise confidence
    band from Greenwood's variance on the log(-log) scale (lifelines' default, which keeps the
    band inside 0-1). Subjects are left out as :func:`prepare_survival` says.

    Parameters
    ----------
    time, event, groups
        As in :func:`prepare_survival`.
    alpha : float, default 0.05
        One minus the band's confidence level (0.05: 95 %).

    Returns
    -------
    pandas.DataFrame
        The columns of ``KM_COLUMNS``: one row per group (sorted) and time of the curve
        (from 0, then every time with an event or censoring): ``n_at_risk`` just before
        ``time``, ``n_events`` and ``n_censored`` at ``time``, ``survival``, ``ci_lower``
        and ``ci_upper``.

    Examples
    --------
    >>> km = kaplan_meier_by_group([1, 2, 3, 4], [1, 1, 0, 1], ["a", "a", "b", "b"])
    >>> km[["group", "time", "n_at_risk", "survival"]]
      group  time  n_at_risk  survival
    0     a   0.0          2       1.0
    1     a   1.0          2       0.5
    2     a   2.0          1       0.0
    3     b   0.0          2       1.0
    4     b   3.0          2       1.0
    5     b   4.0          1       0.0
    """
    data, _ = prepare_survival(time, event, groups)
    curves = []
    for group, part in data.groupby("group", sort=True):
        fitter = _kaplan_meier(part, alpha)
        table = fitter.event_table
        band = fitter.confidence_interval_survival_function_
        curves.append(
            pd.DataFrame(
                {
                    "group": group,
                    "time": fitter.survival_function_.index.to_numpy(dtype=float),
                    "n_at_risk": table["at_risk"].to_numpy(),
                    "n_events": table["observed"].to_numpy(),
                    "n_censored": table["censored"].to_numpy(),
                    "survival": fitter.survival_function_.iloc[:, 0].to_numpy(),
                    "ci_lower": band.iloc[:, 0].to_numpy(),
                    "ci_upper": band.iloc[:, 1].to_numpy(),
                }
            )
        )
    return pd.concat(curves, ignore_index=True)[KM_COLUMNS]


def median_survival(
    time: pd.Series | Sequence[float],
    event: pd.Series | Sequence[float],
    groups: pd.Series | Sequence | None = None,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Kaplan-Meier median survival per group with its confidence interval (Milella 2023, Table).

    The median is where the Kaplan-Meier curve falls to 0.5; its CI (Brookmeyer and Crowley's
    construction) is where the curve's confidence band falls to 0.5, lifelines'
    :func:`~lifelines.utils.median_survival_times` applied to the band. Milella 2023 reports
    SPSS's symmetric interval (median ± 1.96 SE) instead, e.g. 46.63 (37.95-55.31) months;
    the interval here is asymmetric, as the curve is.

    Parameters
    ----------
    time, event, groups
        As in :func:`prepare_survival`.
    alpha : float, default 0.05
        One minus the confidence level.

    Returns
    -------
    pandas.DataFrame
        The columns of ``MEDIAN_COLUMNS``, one row per group (sorted): ``n``, ``n_events``,
        ``median``, ``ci_lower``, ``ci_upper``; ``inf`` where the curve (or the band) does
        not fall to 0.5 (median not reached).

    Examples
    --------
    >>> median_survival([1, 2, 3, 4, 5, 6], [1, 0, 1, 1, 0, 1])
      group  n  n_events  median  ci_lower  ci_upper
    0   all  6         4     4.0       1.0       6.0
    """
    data, _ = prepare_survival(time, event, groups)
    rows = []
    for group, part in data.groupby("group", sort=True):
        fitter = _kaplan_meier(part, alpha)
        band = median_survival_times(fitter.confidence_interval_survival_function_)
        rows.append(
            {
                "group": group,
                "n": len(part),
                "n_events": int(part["event"].sum()),
                "median": float(fitter.median_survival_time_),
                "ci_lower": float(band.iloc[0, 0]),
                "ci_upper": float(band.iloc[0, 1]),
            }
        )
    return pd.DataFrame(rows, columns=MEDIAN_COLUMNS)


def logrank_tests(
    time: pd.Series | Sequence[float],
    event: pd.Series | Sequence[float],
    groups: pd.Series | Sequence,
) -> pd.DataFrame:
    """Log-rank tests between every pair of groups and over all of them (Milella 2023).

    Milella 2023 ("Survival Analysis") reported the pair-wise log-rank statistics and p-values
    between its clusters, uncorrected; here ``p_value`` is lifelines'
    :func:`~lifelines.statistics.pairwise_logrank_test` (uncorrected, as 002) and
    ``p_bonferroni`` multiplies it by the number of pairs. With more than two groups the
    overall test is lifelines' :func:`~lifelines.statistics.multivariate_logrank_test`
    (k - 1 degrees of freedom). Subjects are left out as :func:`prepare_survival` says.

    Parameters
    ----------
    time, event, groups
        As in :func:`prepare_survival`; ``groups`` is required.

    Returns
    -------
    pandas.DataFrame
        The columns of ``LOGRANK_COLUMNS``: one ``comparison == "pairwise"`` row per pair of
        groups (sorted; ``groups`` is ``"a vs b"``), then with more than two groups one
        ``"overall"`` row (``"a vs b vs c"``); ``n`` and ``n_events`` of the groups compared,
        the χ² ``test_statistic``, its ``df``, ``p_value`` and ``p_bonferroni`` (missing on
        the overall row).

    Raises
    ------
    ValueError
        If there are fewer than two groups, or no event at all (every subject censored).

    Examples
    --------
    >>> out = logrank_tests([1, 2, 3, 4, 5, 6], [1, 1, 1, 1, 0, 1], [0, 0, 0, 1, 1, 1])
    >>> out[["comparison", "groups", "n", "n_events", "df"]]
      comparison  groups  n  n_events  df
    0   pairwise  0 vs 1  6         5   1
    """
    data, _ = prepare_survival(time, event, groups)
    levels = sorted(data["group"].unique())
    if len(levels) < 2:
        raise ValueError(f"the log-rank test needs at least two groups, got {len(levels)}")
    if not data["event"].any():
        raise ValueError(
            f"the log-rank test needs at least one event; all {len(data)} subjects are censored"
        )
    pairs = list(combinations(levels, 2))
    pairwise = pairwise_logrank_test(data["time"], data["group"], data["event"]).summary
    rows = []
    for a, b in pairs:
        part = data[data["group"].isin([a, b])]
        p_value = float(pairwise.loc[(a, b), "p"])
        rows.append(
            _logrank_row("pairwise", [a, b], part, pairwise.loc[(a, b), "test_statistic"], 1)
            | {"p_value": p_value, "p_bonferroni": min(1.0, p_value * len(pairs))}
        )
    if len(levels) > 2:
        overall = multivariate_logrank_test(data["time"], data["group"], data["event"])
        rows.append(
            _logrank_row(
                "overall", levels, data, overall.test_statistic, overall.degrees_of_freedom
            )
            | {"p_value": float(overall.p_value)}
        )
    return pd.DataFrame(rows, columns=LOGRANK_COLUMNS)


def long_short_survivors(
    time: pd.Series | Sequence[float],
    event: pd.Series | Sequence[float],
    threshold: float | None = None,
    random_state: int = 0,
) -> tuple[pd.Series, pd.DataFrame]:
    """Split the patients into long and short survivors.

    With ``threshold=None`` (the default) the split of Milella 2023 ("Statistical Analysis"):
    "dichotomized ... into long and short survivors using the 2-step cluster analysis", with
    the outcome status (reached or not) and the time to the outcome or censoring in the model.
    Here: two-cluster k-means, Euclidean as in 002's clustering, on the event indicator (0/1)
    and the time min-max scaled to 0-1, both on the same 0-1 scale. The cluster with the lower
    share of events is "long" (ties: the longer mean time). Because the indicator spans the
    whole scale, the split mostly follows the event status, as 002's did (their 26 long
    survivors had no event, their 64 short survivors all had one); a censored patient with a
    short follow-up then counts as a long survivor, which a threshold avoids.

    With a ``threshold`` (same unit as the times): "long" when the time is beyond it (whether
    or not the event came later), "short" when the event came at or before it; a subject
    censored at or before it is left out, since whether they would have survived it is
    unknown.

    Parameters
    ----------
    time, event
        As in :func:`prepare_survival`.
    threshold : float, optional
        The survival time separating long from short survivors; None clusters as 002 did.
    random_state : int, default 0
        Seed of the k-means initialisations.

    Returns
    -------
    survivors : pandas.Series
        ``"long"`` or ``"short"`` per subject, named ``survivor``, indexed like ``time``;
        missing for the left-out subjects.
    exclusions : pandas.DataFrame
        The left-out subjects with the column ``reason``: those of :func:`prepare_survival`
        and, with a threshold, ``"censored at <t>, not beyond the threshold <threshold>"``.

    Raises
    ------
    ValueError
        As :func:`prepare_survival`; without a threshold, if all the subjects have the same
        event status and time.

    Examples
    --------
    >>> survivors, exclusions = long_short_survivors([10, 50, 20, 60], [1, 0, 0, 1], 30)
    >>> survivors.tolist()
    ['short', 'long', nan, 'long']
    >>> exclusions["reason"].tolist()
    ['censored at 20, not beyond the threshold 30']
    """
    data, exclusions = prepare_survival(time, event)
    index = _series(time, None, "time").index
    survivors = pd.Series(np.nan, index=index, dtype=object, name="survivor")
    if threshold is not None:
        short = (data["time"] <= threshold) & (data["event"] == 1)
        unknown = (data["time"] <= threshold) & (data["event"] == 0)
        survivors.loc[data.index[short]] = "short"
        survivors.loc[data.index[~short & ~unknown]] = "long"
        censored = pd.DataFrame(
            {
                "reason": [
                    f"censored at {t:g}, not beyond the threshold {threshold:g}"
                    for t in data.loc[unknown, "time"]
                ]
            },
            index=data.index[unknown],
        )
        return survivors, pd.concat([exclusions, censored])
    features = np.column_stack(
        [data["event"], MinMaxScaler().fit_transform(data[["time"]]).ravel()]
    )
    if len(np.unique(features, axis=0)) < 2:
        raise ValueError("the two-cluster split needs at least two different (event, time) pairs")
    with threadpool_limits(limits=1):
        labels = KMeans(2, n_init=N_INIT, random_state=random_state).fit_predict(features)
    summary = data.groupby(labels).agg(events=("event", "mean"), time=("time", "mean"))
    long_label = summary.sort_values(["events", "time"], ascending=[True, False]).index[0]
    survivors.loc[data.index] = np.where(labels == long_label, "long", "short")
    return survivors, exclusions


def odds_ratios(
    table: pd.DataFrame,
    outcome: str,
    predictors: Sequence[str],
    positive: object = None,
    categorical: Sequence[str] = (),
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Odds ratios of a binary outcome from logistic regression, with CI (Milella 2023).

    Milella 2023 ("Statistical Analysis", "Survival Analysis") tested the shares of short and
    long survivors between clusters by logistic regression and reported OR with 95 % CI
    (e.g. cluster 1 vs 2: 4.17, 1.11-15.87). Each model is statsmodels'
    :class:`~statsmodels.discrete.discrete_model.Logit` with an intercept, fitted by maximum
    likelihood; the OR, its CI and p come from the Wald test of the coefficient (or of the
    contrast of two coefficients), exponentiated.

    * ``"univariable"`` models: one per predictor, on the rows where the outcome and that
      predictor are known;
    * a ``"multivariable"`` model with all the predictors (each OR adjusted for the others),
      on the rows where all are known, when there is more than one predictor.

    A numeric predictor gives one OR per unit. A categoric predictor (listed in
    ``categorical``, or not numeric) is dummy-coded against its first level (sorted) and gives
    one OR per pair of levels, ``"a vs b"``: the odds of the outcome at level ``a`` over those
    at level ``b``, as 002's cluster comparisons.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per subject.
    outcome : str
        The binary outcome column (e.g. the survivor split of :func:`long_short_survivors`).
    predictors : sequence of str
        Predictor columns (e.g. ``["cluster"]``, plus age and sex to adjust).
    positive : optional
        The outcome value modelled as 1 (e.g. ``"short"``); others are 0. None: the outcome
        must already be 0/1 or boolean.
    categorical : sequence of str, optional
        Numeric predictors to treat as categoric (e.g. integer cluster labels).
    alpha : float, default 0.05
        One minus the CI's confidence level.

    Returns
    -------
    pandas.DataFrame
        The columns of ``ODDS_COLUMNS``, one row per model and term: ``model``,
        ``predictor``, ``term`` (the predictor's name, or ``"a vs b"``), ``n`` and
        ``n_positive`` of the model, ``odds_ratio``, ``ci_lower``, ``ci_upper``, ``p_value``
        and ``note``: empty, or why the model has no estimates (a constant or collinear
        predictor, complete or quasi-complete separation, no convergence, a single outcome
        value) or the row none (a categoric predictor with a single level).

    Raises
    ------
    ValueError
        If a column is missing, or the outcome is not binary and ``positive`` is None.

    Examples
    --------
    >>> df = pd.DataFrame({"short": [1, 1, 1, 0, 1, 0, 0, 1, 0, 0, 0, 1],
    ...                    "cluster": [1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2]})
    >>> out = odds_ratios(df, "short", ["cluster"], categorical=["cluster"])
    >>> out[["model", "term", "n", "n_positive"]]
             model    term   n  n_positive
    0  univariable  1 vs 2  12           6
    >>> round(float(out.loc[0, "odds_ratio"]), 2)
    4.0
    """
    absent = [name for name in [outcome, *predictors] if name not in table.columns]
    if absent:
        raise ValueError(f"columns not in the table: {', '.join(absent)}")
    known = table[outcome].notna()
    if positive is not None:
        response = (table[outcome] == positive).astype(float)
    else:
        response = pd.to_numeric(table[outcome].astype(object), errors="coerce").astype(float)
        if not response[known].isin([0.0, 1.0]).all():
            raise ValueError(
                f"the outcome {outcome!r} is not 0/1; give the value modelled as 1 in positive"
            )
    models = [("univariable", [name]) for name in predictors]
    if len(predictors) > 1:
        models.append(("multivariable", list(predictors)))
    rows = []
    for model, names in models:
        rows.extend(
            _logit_rows(model, table.loc[known], response[known], names, categorical, alpha)
        )
    return pd.DataFrame(rows, columns=ODDS_COLUMNS)


def cox_model(
    time: pd.Series | Sequence[float],
    event: pd.Series | Sequence[float],
    covariates: pd.DataFrame,
    categorical: Sequence[str] = (),
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Hazard ratios of a Cox proportional-hazards model with CI (an option beyond Milella 2023).

    lifelines' :class:`~lifelines.CoxPHFitter` (Efron's ties, no penalty) on the covariates,
    e.g. the cluster with age and sex. Categoric covariates (listed in ``categorical``, or not
    numeric) are dummy-coded against their first level (sorted). Subjects are left out as
    :func:`prepare_survival` says and where a covariate is missing.

    Parameters
    ----------
    time, event
        As in :func:`prepare_survival`.
    covariates : pandas.DataFrame
        One row per subject, with the index of ``time``.
    categorical : sequence of str, optional
        Numeric covariates to treat as categoric.
    alpha : float, default 0.05
        One minus the CI's confidence level.

    Returns
    -------
    pandas.DataFrame
        The columns of ``COX_COLUMNS``, one row per coefficient: ``covariate`` (the name, or
        ``"<name>: <level> vs <reference>"``), ``n`` and ``n_events`` of the model,
        ``hazard_ratio``, ``ci_lower``, ``ci_upper`` and the Wald ``p_value``.

    Raises
    ------
    ValueError
        As :func:`prepare_survival`; if no event remains.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> group = np.repeat([0, 1], 40)
    >>> time = rng.exponential(np.where(group == 1, 10.0, 30.0))
    >>> out = cox_model(time, np.ones(80), pd.DataFrame({"group": group}))
    >>> out[["covariate", "n", "n_events"]]
      covariate   n  n_events
    0     group  80        80
    >>> bool(out.loc[0, "hazard_ratio"] > 1)
    True
    """
    data, _ = prepare_survival(time, event)
    if not covariates.index.equals(_series(time, None, "time").index):
        raise ValueError("covariates must have the index of time")
    design, terms, _ = _dummy_code(
        covariates.loc[data.index], list(covariates.columns), categorical
    )
    frame = pd.concat([design, data[["time", "event"]]], axis=1).dropna()
    if not frame["event"].any():
        raise ValueError("the Cox model needs at least one event; every subject is censored")
    fitter = CoxPHFitter(alpha=alpha).fit(frame, duration_col="time", event_col="event")
    bounds = np.exp(fitter.confidence_intervals_.loc[design.columns].to_numpy())
    return pd.DataFrame(
        {
            "covariate": [terms[column] for column in design.columns],
            "n": len(frame),
            "n_events": int(frame["event"].sum()),
            "hazard_ratio": np.exp(fitter.params_[design.columns].to_numpy()),
            "ci_lower": bounds[:, 0],
            "ci_upper": bounds[:, 1],
            "p_value": fitter.summary.loc[design.columns, "p"].to_numpy(),
        },
        columns=COX_COLUMNS,
    )


def _kaplan_meier(data: pd.DataFrame, alpha: float) -> KaplanMeierFitter:
    """Fit lifelines' Kaplan-Meier estimator to one group's ``time`` and ``event``."""
    return KaplanMeierFitter(alpha=alpha).fit(data["time"], data["event"], label="survival")


def _logrank_row(
    comparison: str, groups: Sequence, part: pd.DataFrame, statistic: float, df: int
) -> dict[str, object]:
    """Return the common columns of one row of :func:`logrank_tests`."""
    return {
        "comparison": comparison,
        "groups": " vs ".join(map(str, groups)),
        "n": len(part),
        "n_events": int(part["event"].sum()),
        "test_statistic": float(statistic),
        "df": int(df),
    }


def _logit_rows(
    model: str,
    table: pd.DataFrame,
    response: pd.Series,
    names: list[str],
    categorical: Sequence[str],
    alpha: float,
) -> list[dict[str, object]]:
    """Fit one logistic regression and return its rows of :func:`odds_ratios`."""
    complete = table[names].notna().all(axis=1)
    design, _, coded = _dummy_code(table.loc[complete], names, categorical)
    design = sm.add_constant(design, has_constant="add")
    y = response[complete]
    contrasts = []  # (predictor, term, contrast vector over the design's columns)
    for name in names:
        if name not in coded:
            contrasts.append((name, name, (design.columns == name).astype(float)))
        elif len(coded[name]) < 2:
            contrasts.append((name, name, None))
        for a, b in combinations(coded.get(name, ()), 2):
            vector = (design.columns == coded[name][a]).astype(float)
            vector -= design.columns == coded[name][b]
            contrasts.append((name, f"{a} vs {b}", vector))
    note = _logit_problem(design, y)
    fit = None
    if not note:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit = sm.Logit(y, design).fit(disp=0)
        trouble = (PerfectSeparationWarning, ConvergenceWarning)
        if any(issubclass(w.category, trouble) for w in caught) or not fit.mle_retvals["converged"]:
            note, fit = "complete or quasi-complete separation, or no convergence", None
    base = {"model": model, "n": len(y), "n_positive": int(y.sum()), "note": note}
    rows = []
    for predictor, term, vector in contrasts:
        row = base | {"predictor": predictor, "term": term}
        if vector is None:
            row["note"] = "the predictor has a single level"
        elif fit is not None:
            test = fit.t_test(vector)
            low, high = np.exp(test.conf_int(alpha=alpha)[0])
            row |= {
                "odds_ratio": float(np.exp(np.squeeze(test.effect))),
                "ci_lower": float(low),
                "ci_upper": float(high),
                "p_value": float(np.squeeze(test.pvalue)),
            }
        rows.append(row)
    return rows


def _logit_problem(design: pd.DataFrame, y: pd.Series) -> str:
    """Say why a logistic regression cannot be fitted, or return an empty string."""
    if y.nunique() < 2:
        return "the outcome has a single value"
    if np.linalg.matrix_rank(design.to_numpy(dtype=float)) < design.shape[1]:
        return "a predictor is constant or collinear with the others"
    return ""


def _dummy_code(
    table: pd.DataFrame, names: list[str], categorical: Sequence[str]
) -> tuple[pd.DataFrame, dict[str, str], dict[str, dict[object, str | None]]]:
    """Code the predictors as design columns.

    Numeric predictors not in ``categorical`` are kept as they are (column ``name``). The
    others become one indicator per level after the first (sorted), in columns
    ``name[level]``. Rows missing a predictor stay missing.

    Returns
    -------
    design : pandas.DataFrame
        The design columns, without intercept.
    terms : dict of str to str
        A readable name of every column: ``name``, or ``"name: level vs first"``.
    coded : dict
        For every categoric predictor, its levels (sorted) to their column (None for the
        first level, the reference).
    """
    columns, terms, coded = {}, {}, {}
    for name in names:
        values = table[name]
        numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        if numeric and name not in categorical:
            columns[name] = values.astype(float)
            terms[name] = name
            continue
        levels = sorted(values.dropna().unique())
        coded[name] = {levels[0]: None} if levels else {}
        for level in levels[1:]:
            column = f"{name}[{level}]"
            columns[column] = (values == level).astype(float).where(values.notna())
            terms[column] = f"{name}: {level} vs {levels[0]}"
            coded[name][level] = column
    return pd.DataFrame(columns, index=table.index), terms, coded


def _series(values: pd.Series | Sequence, index: pd.Index | None, name: str) -> pd.Series:
    """Return values as a Series; with an index, check that it matches (or give it to a list)."""
    if isinstance(values, pd.Series):
        if index is not None and not values.index.equals(index):
            raise ValueError(f"{name} must have the index of time")
        return values
    values = pd.Series(list(values), dtype=object if index is None else None)
    if index is not None:
        if len(values) != len(index):
            raise ValueError(f"{name} has {len(values)} values for {len(index)} times")
        values.index = index
    return values.infer_objects()


def _rows(mask: pd.Series) -> str:
    """Name the rows where mask is true."""
    return ", ".join(map(str, mask.index[mask]))

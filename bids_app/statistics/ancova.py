"""ANCOVA of many features between groups, with FDR control over the features.

Milella et al. (Milella 2023, "Statistical Analysis") compared the MR imaging metrics between study
groups with an ANCOVA, the group as categoric independent variable and age and sex as
covariates, and plotted the estimated marginal means per group (their Fig. 1). Here every
feature gets that model, ``feature ~ C(group) + covariates`` fitted by ordinary least squares:

* the group effect is the Type II F test of the group term (the model without interactions, so
  it compares the full model with the covariates-only model, as ``anova_lm(typ=2)`` does), with
  its partial η² = SS_group / (SS_group + SS_residual);
* the estimated marginal mean (EMM) of a group is the model's prediction for that group with
  numeric covariates at their mean and the indicator columns of categoric covariates at their
  observed proportions: the prediction averaged over the levels of, say, sex weighted by how
  often each level occurs. This is what SPSS (002's software for its clustering) reports when
  sex is entered as a 0/1 covariate rather than as a factor, whose levels it would weight
  equally. The EMM's standard error comes from the coefficients' covariance;
* with more than two groups, each pair of groups is compared with the t test of the difference
  of their EMMs from the fitted model, Bonferroni-corrected for the number of pairs compared
  (those whose groups both have values for the feature): simpler than Tukey's range test, and
  valid whatever the dependence between the comparisons, at the price of being conservative;
* the group p-values are corrected over the features with the Benjamini-Hochberg FDR.

The design matrix is built with the statsmodels formula API (group and string covariates as
``C(...)``, numeric covariates as they are, every name quoted with ``Q("...")``). Features are
fitted together, one least-squares solve for all the features that are missing in the same
rows; the results equal ``statsmodels.formula.api.ols(...).fit()`` and
``statsmodels.stats.anova.anova_lm(typ=2)`` feature by feature.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.stats.multitest import multipletests

#: Leading columns of :func:`ancova`, before the per-group and per-pair columns.
ANCOVA_COLUMNS = [
    "feature",
    "n",
    "df_group",
    "df_resid",
    "F",
    "p_value",
    "partial_eta2",
    "q_value",
    "significant",
    "note",
]


def ancova(
    table: pd.DataFrame,
    features: Sequence[str],
    group_column: str,
    covariates: Sequence[str] = (),
    fdr_alpha: float = 0.05,
) -> pd.DataFrame:
    """Test every feature for a group effect adjusted for covariates (Milella 2023's ANCOVA).

    Rows where the group or a covariate is missing are left out of every model; rows where
    a feature is missing (NaN or infinite) are left out of that feature's model only.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per subject, with the features, ``group_column`` and the covariates.
    features : sequence of str
        Numeric columns to test.
    group_column : str
        The grouping column (its sorted first value is the model's reference level).
    covariates : sequence of str, optional
        Covariate columns: numeric ones enter the model as they are, the others (strings,
        booleans, categories, e.g. sex) as categoric terms.
    fdr_alpha : float, optional
        Level of the Benjamini-Hochberg FDR over the features.

    Returns
    -------
    pandas.DataFrame
        One row per feature, in the order given, with the columns of ``ANCOVA_COLUMNS``:
        ``feature``; ``n`` the subjects in its model; ``df_group`` and ``df_resid`` the
        degrees of freedom of the F test; ``F`` and ``p_value`` of the group term;
        ``partial_eta2``; ``q_value`` the Benjamini-Hochberg adjusted p-value over the
        features that could be tested; ``significant`` (``q_value < fdr_alpha``); ``note``,
        empty, or why the statistics are missing (no values, constant feature, fewer than
        two groups with values, too few subjects for the model, group collinear with the
        covariates). Then for every group ``g`` (as text, sorted): ``n_<g>``, ``emm_<g>``
        and ``emm_se_<g>`` (estimated marginal mean and its standard error) and ``sd_<g>``
        (the standard deviation of the group's observed values, to draw 002's Fig. 1); and,
        with more than two groups, for every pair ``p_<a>_vs_<b>``, the Bonferroni-corrected
        p-value of the difference of their EMMs.

    Raises
    ------
    ValueError
        If a feature is not numeric.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"dx": np.repeat(["CN", "ALS"], 30), "age": rng.normal(60, 8, 60),
    ...                    "sex": rng.choice(["M", "F"], 60), "flat": 1.0})
    >>> df["thick"] = 2.5 - 0.3 * (df.dx == "ALS") - 0.01 * df.age + rng.normal(0, 0.1, 60)
    >>> out = ancova(df, ["thick", "flat"], "dx", ["age", "sex"])
    >>> out[["feature", "n", "df_group", "df_resid", "significant"]]
      feature   n  df_group  df_resid  significant
    0   thick  60       1.0      56.0         True
    1    flat  60       NaN       NaN        False
    >>> out["note"].tolist()
    ['', 'constant feature']
    >>> round(out.loc[0, "emm_CN"] - out.loc[0, "emm_ALS"], 1)
    np.float64(0.3)
    """
    groups = sorted(table[group_column].dropna().unique())
    labels = [str(group) for group in groups]
    pairs = list(combinations(range(len(groups)), 2)) if len(groups) > 2 else []
    pair_columns = [f"p_{labels[a]}_vs_{labels[b]}" for a, b in pairs]
    base = table.dropna(subset=[group_column, *covariates])
    values = base[list(features)].astype(float)
    values = values.where(np.isfinite(values))
    finite = values.notna().to_numpy()
    membership = np.array([(base[group_column] == group).to_numpy() for group in groups])
    columns = {"feature": list(features), "n": finite.sum(axis=0)}
    for label, members in zip(labels, membership, strict=True):
        columns[f"n_{label}"] = values[members].count().to_numpy()
        columns[f"sd_{label}"] = values[members].std(ddof=1).to_numpy()
    model_columns = ["df_group", "df_resid", "F", "p_value", "partial_eta2"]
    model_columns += [f"{kind}_{label}" for label in labels for kind in ("emm", "emm_se")]
    columns |= {name: np.full(len(features), np.nan) for name in model_columns + pair_columns}
    columns["note"] = np.full(len(features), "no values", dtype=object)
    if len(base):
        design, is_group = _design(base, group_column, covariates)
        response = values.to_numpy()
        # one least-squares solve for all the features missing in the same rows
        patterns, pattern_of = np.unique(finite, axis=1, return_inverse=True)
        for index, rows in enumerate(patterns.T):
            positions = np.flatnonzero(pattern_of.ravel() == index)
            fitted = _fit(
                design[rows],
                is_group,
                membership[:, rows],
                response[rows][:, positions],
                labels,
                pairs,
            )
            for name, column in fitted.items():
                columns[name][positions] = column
    p_values = columns["p_value"]
    tested = np.isfinite(p_values)
    columns["q_value"] = np.full(len(features), np.nan)
    if tested.any():
        columns["q_value"][tested] = multipletests(p_values[tested], method="fdr_bh")[1]
    columns["significant"] = columns["q_value"] < fdr_alpha
    per_group = [f"{kind}_{label}" for label in labels for kind in ("n", "emm", "emm_se", "sd")]
    return pd.DataFrame(columns)[ANCOVA_COLUMNS + per_group + pair_columns]


def _design(
    data: pd.DataFrame, group_column: str, covariates: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Build the design matrix of ``C(group) + covariates`` with the statsmodels formula API.

    Returns
    -------
    design : numpy.ndarray
        One row per row of ``data``, treatment coding with an intercept.
    is_group : numpy.ndarray
        Boolean mask of the columns coding the group.
    """
    terms = [f'C(Q("{group_column}"))'] + [
        f'Q("{name}")' if _is_numeric(data[name]) else f'C(Q("{name}"))' for name in covariates
    ]
    # the response is a placeholder: only the right-hand side is used
    response = "__ancova_response__"
    model = smf.ols(f"{response} ~ " + " + ".join(terms), data=data.assign(**{response: 0.0}))
    is_group = np.array([name.startswith(terms[0] + "[") for name in model.exog_names])
    return model.exog, is_group


def _fit(
    design: np.ndarray,
    is_group: np.ndarray,
    membership: np.ndarray,
    response: np.ndarray,
    labels: list[str],
    pairs: list[tuple[int, int]],
) -> dict[str, np.ndarray]:
    """Fit the ANCOVA of features that are complete in the same rows, all at once.

    Parameters
    ----------
    design : numpy.ndarray
        Design matrix of the rows (subjects x coefficients); columns that are zero in these
        rows (a level absent from them) make it rank-deficient, which the pseudo-inverse and
        the degrees of freedom from the ranks take care of.
    is_group : numpy.ndarray
        Boolean mask of the design's group columns.
    membership : numpy.ndarray
        Boolean matrix, groups x rows.
    response : numpy.ndarray
        The features' values, rows x features.
    labels : list of str
        The groups' labels.
    pairs : list of tuple of int
        The pairs of groups (indices into ``labels``) to compare.

    Returns
    -------
    dict of str to numpy.ndarray
        The model's columns of :func:`ancova` and ``note``, one value per feature; the
        statistics are left out when the model cannot be fitted.
    """
    notes = np.full(response.shape[1], "", dtype=object)
    present = membership.any(axis=1)
    if not len(design):
        return {"note": notes + "no values"}
    if present.sum() < 2:
        return {"note": notes + "fewer than two groups with values"}
    pseudo_inverse = np.linalg.pinv(design)
    coefficients = pseudo_inverse @ response
    rss = ((response - design @ coefficients) ** 2).sum(axis=0)
    reduced = design[:, ~is_group]
    rss_reduced = ((response - reduced @ (np.linalg.pinv(reduced) @ response)) ** 2).sum(axis=0)
    rank = np.linalg.matrix_rank(design)
    df_group = rank - np.linalg.matrix_rank(reduced)
    df_resid = len(design) - rank
    if df_resid < 1:
        return {"note": notes + "too few subjects for the model"}
    if df_group < 1:
        return {"note": notes + "group collinear with the covariates"}
    constant = np.ptp(response, axis=0) == 0
    notes[constant] = "constant feature"
    missing = np.where(constant, np.nan, 1.0)  # multiplies every statistic
    ss_group = np.clip(rss_reduced - rss, 0.0, None)
    variance = missing * rss / df_resid
    # the EMM of a group is predicted at the mean design row with the group's own indicators
    covariance = pseudo_inverse @ pseudo_inverse.T
    emm_rows = {index: design.mean(axis=0) for index in np.flatnonzero(present)}
    for index, row in emm_rows.items():
        row[is_group] = design[membership[index]][0, is_group]
    with np.errstate(invalid="ignore", divide="ignore"):
        statistic = (ss_group / df_group) / variance
        columns = {
            "note": notes,
            "df_group": missing * df_group,
            "df_resid": missing * df_resid,
            "F": statistic,
            "p_value": stats.f.sf(statistic, df_group, df_resid),
            "partial_eta2": missing * ss_group / (ss_group + rss),
        }
        for index, row in emm_rows.items():
            columns[f"emm_{labels[index]}"] = missing * (row @ coefficients)
            columns[f"emm_se_{labels[index]}"] = np.sqrt(variance * (row @ covariance @ row))
        compared = [(a, b) for a, b in pairs if a in emm_rows and b in emm_rows]
        for a, b in compared:
            contrast = emm_rows[a] - emm_rows[b]
            spread = np.sqrt(variance * (contrast @ covariance @ contrast))
            t = (contrast @ coefficients) / spread
            p_value = 2 * stats.t.sf(np.abs(t), df_resid) * len(compared)
            columns[f"p_{labels[a]}_vs_{labels[b]}"] = np.minimum(p_value, 1.0)
    return columns


def _is_numeric(column: pd.Series) -> bool:
    """Tell whether a covariate enters the model as it is (numbers, not booleans)."""
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)

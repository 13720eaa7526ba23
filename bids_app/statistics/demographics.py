"""Demographics by group, tests of group differences, the clinical profile table, ΔFRS.

The age and sex tests follow Turrisi et al. (Turrisi 2024, §3.1.1 and Table 2): the two-sample
Kolmogorov-Smirnov test for age and Pearson's χ² test (no continuity correction) for sex.

The profile table of :func:`compare_groups` follows the "Statistical Analysis" paragraph of
Milella et al. (Milella 2023): medians with interquartile range for continuous variables and
counts with percentages for categoric ones, the Mann-Whitney U test for continuous variables
and the χ² or Fisher exact test for categoric ones.

Every contingency table (sex here, the categoric variables of :func:`compare_groups`) is tested
with Pearson's χ² when all its expected counts are at least 5 and with Fisher's exact test
otherwise, the usual rule for the validity of the χ² approximation: exactly for a 2×2 table
(:func:`scipy.stats.fisher_exact`), and for larger tables with SciPy's Monte Carlo estimate of
the exact p-value (``MONTE_CARLO_TABLES`` random tables with the observed margins, a fixed seed
so that the result is reproducible), as R's ``fisher.test(simulate.p.value = TRUE)`` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations, pairwise

import numpy as np
import pandas as pd
from scipy import stats

#: Random tables drawn for the Monte Carlo Fisher test of tables larger than 2×2, and the seed.
MONTE_CARLO_TABLES = 9999
MONTE_CARLO_SEED = 0

#: Expected count under which a contingency table is tested with Fisher's exact test.
MIN_EXPECTED_COUNT = 5.0

#: Highest (unimpaired) total score of the ALS Functional Rating Scale - Revised.
ALSFRS_R_MAX = 48


def progression_rate(alsfrs_r: pd.Series, months: pd.Series) -> pd.Series:
    """Return the ALSFRS-R progression rate ΔFRS, points lost per month since symptom onset.

    Milella et al. (Milella 2023, "Population") computed the progression rate as
    ``(48 - ALSFRS-R) / disease duration (months)``, citing Kimura et al. 2006 (Neurology
    66:265), where the disease duration runs from symptom onset to the ALSFRS-R assessment.

    Parameters
    ----------
    alsfrs_r : pandas.Series
        ALSFRS-R total scores (0-48).
    months : pandas.Series
        Months from symptom onset to the assessment, with the index of ``alsfrs_r``.

    Returns
    -------
    pandas.Series
        ΔFRS; missing where either value is missing or the duration is not positive.

    Raises
    ------
    ValueError
        If a score lies outside 0-48 (naming the first such index).

    Examples
    --------
    >>> progression_rate(pd.Series([38.0, 48.0, 40.0]), pd.Series([12.0, 6.0, 0.0])).tolist()
    [0.8333333333333334, 0.0, nan]
    """
    scores, duration = alsfrs_r.astype(float), months.astype(float)
    outside = scores[(scores < 0) | (scores > ALSFRS_R_MAX)]
    if len(outside):
        raise ValueError(
            f"ALSFRS-R {outside.iloc[0]:g} of {outside.index[0]} is outside 0-{ALSFRS_R_MAX}"
        )
    return ((ALSFRS_R_MAX - scores) / duration).where(duration > 0)


def demographics_by_group(table: pd.DataFrame, group_column: str) -> pd.DataFrame:
    """Count subjects and summarise age and sex per group.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per subject, with ``group_column`` and optionally ``age`` and ``sex``.
    group_column : str
        The grouping column; rows where it is missing are left out.

    Returns
    -------
    pandas.DataFrame
        One row per group (sorted): ``group, n, age_mean, age_sd, age_median, age_min,
        age_max, n_male, n_female, n_sex_other_or_missing``.

    Examples
    --------
    >>> df = pd.DataFrame({"dx": ["A", "A", "B"], "age": [60, 70, 50], "sex": ["M", "F", "F"]})
    >>> demographics_by_group(df, "dx")[["group", "n", "age_mean", "n_male"]]
      group  n  age_mean  n_male
    0     A  2      65.0       1
    1     B  1      50.0       0
    """
    rows = []
    for group, part in table.dropna(subset=[group_column]).groupby(group_column, sort=True):
        age = part["age"].astype(float) if "age" in part else pd.Series(dtype=float)
        sex = part["sex"] if "sex" in part else pd.Series(dtype=object)
        rows.append(
            {
                "group": group,
                "n": len(part),
                "age_mean": age.mean(),
                "age_sd": age.std(ddof=1),
                "age_median": age.median(),
                "age_min": age.min(),
                "age_max": age.max(),
                "n_male": int((sex == "M").sum()),
                "n_female": int((sex == "F").sum()),
                "n_sex_other_or_missing": int((~sex.isin(["M", "F"])).sum()),
            }
        )
    return pd.DataFrame(rows)


#: Age bands of Turrisi 2024's patient characteristics (its Table 1): < 60, 60-75, > 75 years.
AGE_BAND_EDGES = (60.0, 75.0)


def characteristics_by_group(
    table: pd.DataFrame, group_column: str, age_edges: Sequence[float] = AGE_BAND_EDGES
) -> pd.DataFrame:
    """Count subjects per sex and age band in each group, with percentages (Turrisi 2024 Table 1).

    Parameters
    ----------
    table : pandas.DataFrame
        One row per subject, with ``group_column`` and optionally ``age`` and ``sex``.
    group_column : str
        The grouping column; rows where it is missing are left out.
    age_edges : sequence of float
        Inner edges of the age bands, increasing: ``(60, 75)`` gives ``<60``, ``60-75`` and
        ``>75`` (a subject aged exactly 60 is in ``60-75``, aged 75 in ``60-75``).

    Returns
    -------
    pandas.DataFrame
        One row per group, variable (``sex``, ``age``) and level: ``group, variable, level, n,
        percent`` (of the group's subjects with a value); a subject without age or sex is counted
        in no level.

    Examples
    --------
    >>> df = pd.DataFrame({"dx": ["A", "A", "A", "B"], "age": [50, 60, 80, 70],
    ...                    "sex": ["F", "M", "M", "F"]})
    >>> characteristics_by_group(df, "dx").query("group == 'A'")[["level", "n", "percent"]]
       level  n    percent
    0      F  1  33.333333
    1      M  2  66.666667
    2    <60  1  33.333333
    3  60-75  1  33.333333
    4    >75  1  33.333333
    """
    edges = [float(edge) for edge in age_edges]
    names = [f"<{edges[0]:g}"]
    names += [f"{low:g}-{high:g}" for low, high in pairwise(edges)]
    names += [f">{edges[-1]:g}"]
    rows = []
    for group, part in table.dropna(subset=[group_column]).groupby(group_column, sort=True):
        levels: dict[str, pd.Series] = {}
        if "sex" in part:
            levels["sex"] = part["sex"].dropna().astype(str)
        if "age" in part:
            age = pd.to_numeric(part["age"], errors="coerce").dropna()
            # right-closed inner bands: < 60, [60, 75], > 75 as the paper's table reads
            bins = [-np.inf, np.nextafter(edges[0], -np.inf), *edges[1:], np.inf]
            levels["age"] = pd.cut(age, bins=bins, labels=names).astype(str)
        for variable, values in levels.items():
            order = names if variable == "age" else sorted(values.unique())
            counts = values.value_counts()
            for level in order:
                n = int(counts.get(level, 0))
                rows.append(
                    {
                        "group": group,
                        "variable": variable,
                        "level": level,
                        "n": n,
                        "percent": 100.0 * n / len(values) if len(values) else np.nan,
                    }
                )
    return pd.DataFrame(rows, columns=["group", "variable", "level", "n", "percent"])


def demographic_tests(table: pd.DataFrame, group_column: str) -> pd.DataFrame:
    """Test group differences in age (two-sample KS) and sex (χ² or Fisher), Turrisi 2024 Table 2.

    With more than two groups, age is compared for every pair of groups and sex with one
    test of the groups × sex contingency table: Pearson's χ² as in Turrisi 2024, or Fisher's exact
    test when an expected count is below 5 (see the module's description).

    Parameters
    ----------
    table : pandas.DataFrame
        One row per subject, with ``group_column`` and optionally ``age`` and ``sex``.
    group_column : str
        The grouping column.

    Returns
    -------
    pandas.DataFrame
        Columns ``variable, groups, test, statistic, p_value, n``; ``test`` names the test
        that ran (``Kolmogorov-Smirnov``, ``Pearson's chi2``, ``Fisher's exact`` whose
        statistic is the odds ratio, or ``Fisher's exact (Monte Carlo, 9999 tables)`` whose
        statistic is the probability of the observed table). A test that cannot be computed
        (e.g. one group, no ages) is absent.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"dx": ["A"] * 50 + ["B"] * 50,
    ...                    "age": np.r_[rng.normal(60, 5, 50), rng.normal(70, 5, 50)],
    ...                    "sex": ["M", "F"] * 50})
    >>> out = demographic_tests(df, "dx")
    >>> out[["variable", "test"]].values.tolist()
    [['age', 'Kolmogorov-Smirnov'], ['sex', "Pearson's chi2"]]
    >>> bool(out.loc[0, "p_value"] < 1e-6), bool(out.loc[1, "p_value"] > 0.5)
    (True, True)
    """
    data = table.dropna(subset=[group_column])
    groups = sorted(data[group_column].unique())
    rows = []
    if "age" in data:
        for first, second in combinations(groups, 2):
            a = data.loc[data[group_column] == first, "age"].dropna().astype(float)
            b = data.loc[data[group_column] == second, "age"].dropna().astype(float)
            if len(a) and len(b):
                result = stats.ks_2samp(a, b)
                rows.append(
                    {
                        "variable": "age",
                        "groups": f"{first} vs {second}",
                        "test": "Kolmogorov-Smirnov",
                        "statistic": float(result.statistic),
                        "p_value": float(result.pvalue),
                        "n": len(a) + len(b),
                    }
                )
    if "sex" in data and len(groups) > 1:
        known = data[data["sex"].isin(["M", "F"])]
        counts = pd.crosstab(known[group_column], known["sex"])
        if counts.shape == (len(groups), 2) and (counts.sum(axis=0) > 0).all():
            test, statistic, p_value = _contingency_test(counts.to_numpy())
            rows.append(
                {
                    "variable": "sex",
                    "groups": " vs ".join(map(str, groups)),
                    "test": test,
                    "statistic": statistic,
                    "p_value": p_value,
                    "n": int(np.asarray(counts).sum()),
                }
            )
    return pd.DataFrame(rows, columns=["variable", "groups", "test", "statistic", "p_value", "n"])


#: Columns of :func:`compare_groups`.
PROFILE_COLUMNS = [
    "variable",
    "row_type",
    "groups",
    "level",
    "n",
    "median",
    "q1",
    "q3",
    "count",
    "percent",
    "test",
    "statistic",
    "p_value",
]


def compare_groups(
    table: pd.DataFrame,
    group_column: str,
    continuous: Sequence[str],
    categorical: Sequence[str],
) -> pd.DataFrame:
    """Describe variables per group and test their group differences (Milella 2023's profile table).

    Continuous variables are summarised with the median and interquartile range (quartiles
    by linear interpolation, pandas' default) and compared with the two-sided Mann-Whitney U
    test for every pair of groups, plus the Kruskal-Wallis test over all groups when there
    are more than two. Categoric variables are summarised with the count and percentage of
    each level and compared with Pearson's χ², or Fisher's exact test when an expected count
    is below 5 (see the module's description), for every pair of groups and over all groups
    when there are more than two. Missing values are left out variable by variable.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per subject, with ``group_column`` and the variables.
    group_column : str
        The grouping column; rows where it is missing are left out.
    continuous : sequence of str
        Numeric columns to summarise with median and IQR.
    categorical : sequence of str
        Columns to summarise with counts per level.

    Returns
    -------
    pandas.DataFrame
        A long table with the columns of ``PROFILE_COLUMNS``, variable by variable (in the
        order given, continuous first) and two kinds of rows told apart by ``row_type``:

        ``"summary"``
            One row per group (``groups`` is the group's label as text) and, for a categoric
            variable, per level (``level``): ``n`` is the group's number of non-missing
            values; ``median, q1, q3`` (continuous) or ``count`` and ``percent`` (of ``n``,
            categoric) are filled.
        ``"test"``
            One row per pair of groups (``groups`` is ``"A vs B"``) and, with more than two
            groups, one over all of them (``"A vs B vs C"``): ``test`` (``Mann-Whitney U``
            with the U statistic of the first group, ``Kruskal-Wallis`` with H, or the
            contingency tests of :func:`demographic_tests`), ``statistic``, ``p_value`` and
            ``n``, the observations tested.

        Columns that do not apply to a row are missing. A test that cannot be computed (a
        group without values, a single level, all values equal for Kruskal-Wallis) is absent.

    Examples
    --------
    >>> df = pd.DataFrame({"dx": ["A"] * 4 + ["B"] * 4,
    ...                    "age": [50, 52, 54, 56, 60, 62, 64, 66],
    ...                    "sex": ["M", "M", "M", "F", "F", "F", "F", "M"]})
    >>> out = compare_groups(df, "dx", ["age"], ["sex"])
    >>> out.loc[out.variable == "age", ["groups", "median", "q1", "q3", "test"]]
       groups  median    q1    q3            test
    0       A    53.0  51.5  54.5             NaN
    1       B    63.0  61.5  64.5             NaN
    2  A vs B     NaN   NaN   NaN  Mann-Whitney U
    >>> out.loc[out.variable == "sex", ["groups", "level", "count", "percent", "test"]]
       groups level  count  percent            test
    3       A     F    1.0     25.0             NaN
    4       B     F    3.0     75.0             NaN
    5       A     M    3.0     75.0             NaN
    6       B     M    1.0     25.0             NaN
    7  A vs B   NaN    NaN      NaN  Fisher's exact
    """
    data = table.dropna(subset=[group_column])
    groups = sorted(data[group_column].unique())
    rows = []
    for variable in continuous:
        values = {
            group: data.loc[data[group_column] == group, variable].dropna().astype(float)
            for group in groups
        }
        for group, x in values.items():
            rows.append(
                {
                    "variable": variable,
                    "row_type": "summary",
                    "groups": str(group),
                    "n": len(x),
                    "median": x.median(),
                    "q1": x.quantile(0.25),
                    "q3": x.quantile(0.75),
                }
            )
        for first, second in combinations(groups, 2):
            a, b = values[first], values[second]
            if len(a) and len(b):
                result = stats.mannwhitneyu(a, b, alternative="two-sided")
                rows.append(
                    _test_row(
                        variable, [first, second], ("Mann-Whitney U", *result), len(a) + len(b)
                    )
                )
        present = [x for x in values.values() if len(x)]
        pooled = pd.concat(present) if present else pd.Series(dtype=float)
        if len(groups) > 2 and len(present) > 1 and pooled.nunique() > 1:
            result = stats.kruskal(*present)
            rows.append(_test_row(variable, groups, ("Kruskal-Wallis", *result), len(pooled)))
    for variable in categorical:
        known = data.dropna(subset=[variable])
        counts = pd.crosstab(known[group_column], known[variable]).reindex(groups, fill_value=0)
        totals = counts.sum(axis=1)
        for level in counts.columns:
            for group in groups:
                rows.append(
                    {
                        "variable": variable,
                        "row_type": "summary",
                        "groups": str(group),
                        "level": level,
                        "n": int(totals[group]),
                        "count": int(counts.loc[group, level]),
                        "percent": 100.0 * counts.loc[group, level] / totals[group]
                        if totals[group]
                        else np.nan,
                    }
                )
        comparisons = list(combinations(groups, 2)) + ([groups] if len(groups) > 2 else [])
        for compared in comparisons:
            part = counts.loc[list(compared)].to_numpy()
            result = _contingency_test(part)
            if result is not None:
                rows.append(_test_row(variable, compared, result, int(part.sum())))
    return pd.DataFrame(rows, columns=PROFILE_COLUMNS)


def _test_row(
    variable: str, groups: Sequence, result: tuple[str, float, float], n: int
) -> dict[str, object]:
    """Return one ``row_type == "test"`` row of :func:`compare_groups`."""
    test, statistic, p_value = result
    return {
        "variable": variable,
        "row_type": "test",
        "groups": " vs ".join(map(str, groups)),
        "n": n,
        "test": test,
        "statistic": float(statistic),
        "p_value": float(p_value),
    }


def _contingency_test(counts: np.ndarray) -> tuple[str, float, float] | None:
    """Test the independence of a contingency table's rows and columns.

    Rows and columns without counts are dropped first. Pearson's χ² (no continuity
    correction) when every expected count is at least ``MIN_EXPECTED_COUNT``, otherwise
    Fisher's exact test: exact for 2×2 tables, a Monte Carlo estimate for larger ones.

    Parameters
    ----------
    counts : numpy.ndarray
        Two-dimensional table of non-negative integer counts.

    Returns
    -------
    tuple of (str, float, float) or None
        The test's name, its statistic and its p-value; None when fewer than two rows or
        columns have counts.
    """
    counts = counts[counts.sum(axis=1) > 0][:, counts.sum(axis=0) > 0]
    if min(counts.shape) < 2:
        return None
    if (stats.contingency.expected_freq(counts) >= MIN_EXPECTED_COUNT).all():
        chi2, p_value, _, _ = stats.chi2_contingency(counts, correction=False)
        return "Pearson's chi2", float(chi2), float(p_value)
    if counts.shape == (2, 2):
        result = stats.fisher_exact(counts)
        return "Fisher's exact", float(result.statistic), float(result.pvalue)
    method = stats.MonteCarloMethod(
        n_resamples=MONTE_CARLO_TABLES, rng=np.random.default_rng(MONTE_CARLO_SEED)
    )
    result = stats.fisher_exact(counts, method=method)
    test = f"Fisher's exact (Monte Carlo, {MONTE_CARLO_TABLES} tables)"
    return test, float(result.statistic), float(result.pvalue)

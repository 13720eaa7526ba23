"""Demographics by group and tests of group differences in age and sex.

The tests follow Turrisi et al. (seed 000, §3.1.1 and Table 2): the two-sample
Kolmogorov-Smirnov test for age and Pearson's χ² test (no continuity correction) for sex.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats


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


def demographic_tests(table: pd.DataFrame, group_column: str) -> pd.DataFrame:
    """Test group differences in age (two-sample KS) and sex (Pearson's χ²), seed 000 Table 2.

    With more than two groups, age is compared for every pair of groups and sex with one
    χ² test of the groups × sex contingency table.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per subject, with ``group_column`` and optionally ``age`` and ``sex``.
    group_column : str
        The grouping column.

    Returns
    -------
    pandas.DataFrame
        Columns ``variable, groups, test, statistic, p_value, n``; a test that cannot be
        computed (e.g. one group, no ages) is absent.

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
            chi2, p_value, _, _ = stats.chi2_contingency(counts.to_numpy(), correction=False)
            rows.append(
                {
                    "variable": "sex",
                    "groups": " vs ".join(map(str, groups)),
                    "test": "Pearson's chi2",
                    "statistic": float(chi2),
                    "p_value": float(p_value),
                    "n": int(np.asarray(counts).sum()),
                }
            )
    return pd.DataFrame(rows, columns=["variable", "groups", "test", "statistic", "p_value", "n"])

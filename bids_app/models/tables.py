"""The result tables of the classification in the formats of Turrisi 2024 (Tables 1, 3 and 4)."""

from __future__ import annotations

import json

import pandas as pd

from bids_app.models.classifiers import CLASSIFIERS
from bids_app.models.metrics import METRICS


def _label(name: str) -> str:
    return CLASSIFIERS[name].label if name in CLASSIFIERS else name


def f1_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Turrisi 2024 Table 3: F1 (%) mean ± SD, classifiers as rows and feature sets as columns.

    Parameters
    ----------
    summary : pandas.DataFrame
        From :func:`~bids_app.models.crossval.summarise`.

    Returns
    -------
    pandas.DataFrame
        Index: the classifiers' labels; cells ``"86.83 ± 2.72"``.

    Examples
    --------
    >>> s = pd.DataFrame({"feature_set": ["volumes"], "classifier": ["knn"],
    ...                   "f1_mean": [0.6899], "f1_sd": [0.0513]})
    >>> f1_table(s).loc["Knn", "volumes"]
    '68.99 ± 5.13'
    """
    cells = summary.assign(
        method=summary["classifier"].map(_label),
        cell=[
            f"{100 * m:.2f} ± {100 * s:.2f}"
            for m, s in zip(summary.f1_mean, summary.f1_sd, strict=True)
        ],
    )
    table = cells.pivot(index="method", columns="feature_set", values="cell")
    order = [_label(c) for c in dict.fromkeys(summary["classifier"])]
    return table.reindex(index=order, columns=list(dict.fromkeys(summary["feature_set"])))


def best_models(summary: pd.DataFrame, metric: str = "f1") -> pd.DataFrame:
    """Turrisi 2024 Table 4: the best classifier of each feature set (by mean ``metric``).

    Parameters
    ----------
    summary : pandas.DataFrame
        From :func:`~bids_app.models.crossval.summarise`.
    metric : str
        The metric that ranks the classifiers (Turrisi 2024 ranks by F1).

    Returns
    -------
    pandas.DataFrame
        One row per feature set: ``feature_set, classifier`` and the mean of every metric.
    """
    best = summary.loc[summary.groupby("feature_set", sort=False)[f"{metric}_mean"].idxmax()]
    columns = ["feature_set", "classifier"] + [f"{m}_mean" for m in METRICS]
    table = best[columns].rename(columns={f"{m}_mean": m for m in METRICS})
    return table.reset_index(drop=True)


def chosen_parameters(folds: pd.DataFrame) -> pd.DataFrame:
    """Turrisi 2024 Table 1: the hyper-parameters the inner search chose, per fold and overall.

    Parameters
    ----------
    folds : pandas.DataFrame
        Stacked :attr:`~bids_app.models.crossval.CVResult.folds`.

    Returns
    -------
    pandas.DataFrame
        ``feature_set, classifier, parameter`` then one column per ``repeat-fold`` and ``mode``
        (the value chosen most often); classifiers without a grid are left out.
    """
    rows = []
    for _, row in folds[folds["trial"] == 0].iterrows():
        for name, value in json.loads(row["params"]).items():
            rows.append(
                {
                    "feature_set": row["feature_set"],
                    "classifier": row["classifier"],
                    "parameter": name,
                    "split": f"repeat{row['repeat']}-fold{row['fold']}",
                    "value": value,
                }
            )
    if not rows:
        return pd.DataFrame(columns=["feature_set", "classifier", "parameter", "mode"])
    long = pd.DataFrame(rows)
    keys = ["feature_set", "classifier", "parameter"]
    wide = long.pivot_table(index=keys, columns="split", values="value", aggfunc="first")
    wide["mode"] = long.groupby(keys)["value"].agg(lambda v: v.mode().iloc[0])
    return wide.reset_index().rename_axis(columns=None)

"""The result tables of the classification in the formats of Turrisi 2024 (Tables 1, 3 and 4)."""

from __future__ import annotations

import json
from collections.abc import Sequence

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


def best_models(
    summary: pd.DataFrame, metric: str = "f1", metrics: Sequence[str] = METRICS
) -> pd.DataFrame:
    """Turrisi 2024 Table 4: the best classifier of each feature set (by mean ``metric``).

    Parameters
    ----------
    summary : pandas.DataFrame
        From :func:`~bids_app.models.crossval.summarise`.
    metric : str
        The metric that ranks the classifiers (Turrisi 2024 ranks by F1; macro-F1 for a
        multi-class target).
    metrics : sequence of str
        The metric columns kept (:func:`~bids_app.models.metrics.metric_names`).

    Returns
    -------
    pandas.DataFrame
        One row per feature set: ``feature_set, classifier`` and the mean of every metric.
    """
    best = summary.loc[summary.groupby("feature_set", sort=False)[f"{metric}_mean"].idxmax()]
    columns = ["feature_set", "classifier"] + [f"{m}_mean" for m in metrics]
    table = best[columns].rename(columns={f"{m}_mean": m for m in metrics})
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


def confusion_table(predictions: pd.DataFrame, classes: Sequence[str]) -> pd.DataFrame:
    """Confusion matrix of every model over its out-of-fold predictions of the first repeat.

    Parameters
    ----------
    predictions : pandas.DataFrame
        Stacked :attr:`~bids_app.models.crossval.CVResult.predictions` with ``feature_set`` and
        ``classifier``; ``y_true`` and ``y_pred`` are class codes.
    classes : sequence of str
        Class names, in the order of the codes.

    Returns
    -------
    pandas.DataFrame
        ``feature_set, classifier, true`` then one count column per predicted class; each
        model's counts sum to its sessions.

    Examples
    --------
    >>> p = pd.DataFrame({"feature_set": "v", "classifier": "knn", "repeat": 0,
    ...                   "y_true": [0, 1, 2, 2], "y_pred": [0, 2, 2, 2]})
    >>> confusion_table(p, ["a", "b", "c"])
      feature_set classifier true  a  b  c
    0           v        knn    a  1  0  0
    1           v        knn    b  0  0  1
    2           v        knn    c  0  0  2
    """
    first = predictions[predictions["repeat"] == 0]
    codes = range(len(classes))
    tables = []
    for (feature_set, classifier), rows in first.groupby(["feature_set", "classifier"], sort=False):
        counts = pd.crosstab(rows["y_true"], rows["y_pred"]).reindex(
            index=codes, columns=codes, fill_value=0
        )
        counts.index, counts.columns = list(classes), list(classes)
        table = counts.rename_axis(index="true", columns=None).reset_index()
        table.insert(0, "classifier", classifier)
        table.insert(0, "feature_set", feature_set)
        tables.append(table)
    return pd.concat(tables, ignore_index=True)

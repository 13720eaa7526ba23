"""Nested, subject-grouped, stratified cross-validation of one classifier on one feature set.

Turrisi 2024 §2.4: "stratified-nested K-fold cross-validation loop with K=3", the data
"shuffled with random state 42", a grid search for the hyper-parameters, SMOTE on the training
set. Coll 2023 §2.1: all scans of one patient in the same fold. The outer folds are
:class:`~sklearn.model_selection.StratifiedGroupKFold` over the participants; the inner grid search
uses the same splitter on the outer training rows only, and everything fitted (scaler, ComBat,
SMOTE, classifier) lives in the pipeline that the search refits on the outer training rows.

A multi-class target (the stage, brainstem/ALS PhD proposal objective c) runs the same folds,
stratified by class; the inner search then ranks by macro-F1 and the metrics are macro-averaged
(:func:`~bids_app.models.metrics.multiclass_metrics`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold

from bids_app.errors import DataError
from bids_app.models.classifiers import ClassifierSpec, param_grid
from bids_app.models.metrics import (
    METRICS,
    binary_metrics,
    class_metrics,
    class_scores,
    positive_scores,
)

#: Outer and inner folds (Turrisi 2024 §2.4: K = 3).
N_FOLDS = 3
#: Default shuffling seed of the splits (Turrisi 2024 §2.4: "random state 42").
SPLIT_SEED = 42


class CrossValidationError(DataError):
    """The data cannot be split as asked (the message says why and what to do)."""


@dataclass(frozen=True)
class Split:
    """One outer split: which rows train and which test."""

    repeat: int
    fold: int
    train: np.ndarray
    test: np.ndarray


@dataclass
class CVResult:
    """What the nested cross-validation of one classifier on one feature set gives.

    Parameters
    ----------
    feature_set, classifier : str
        What was evaluated.
    folds : pandas.DataFrame
        One row per repeat, fold and trial: sizes, :data:`~bids_app.models.metrics.METRICS`,
        the confusion counts and the chosen hyper-parameters (``params``, JSON).
    predictions : pandas.DataFrame
        One row per repeat and test row: ``session, participant_id, repeat, fold, y_true,
        score, y_pred`` (score and prediction averaged over the trials); a multi-class target
        has ``score_<class>`` per class instead of ``score``.
    models : list
        The fitted pipelines of the first repeat, one per fold (first trial), for the majority
        vote of Coll 2023 §2.5.
    """

    feature_set: str
    classifier: str
    folds: pd.DataFrame
    predictions: pd.DataFrame
    models: list


def outer_splits(
    y: np.ndarray, groups: np.ndarray, n_folds: int = N_FOLDS, repeats: int = 1, seed: int = 42
) -> list[Split]:
    """Split the rows into stratified folds that keep each participant's sessions together.

    Parameters
    ----------
    y : numpy.ndarray
        Labels (0/1, or class codes).
    groups : numpy.ndarray
        Participant of each row.
    n_folds : int
        Folds.
    repeats : int
        Repetitions with different shuffles (seeds ``seed``, ``seed + 1``...).
    seed : int
        Shuffling seed.

    Returns
    -------
    list of Split
        ``repeats * n_folds`` splits.

    Raises
    ------
    CrossValidationError
        When there are fewer participants of a class than folds.
    """
    check_folds(y, groups, n_folds)
    splits = []
    for repeat in range(repeats):
        splitter = StratifiedGroupKFold(n_folds, shuffle=True, random_state=seed + repeat)
        for fold, (train, test) in enumerate(splitter.split(np.zeros(len(y)), y, groups)):
            splits.append(Split(repeat, fold, train, test))
    return splits


def check_folds(y: np.ndarray, groups: np.ndarray, n_folds: int) -> None:
    """Check that every class has at least ``n_folds`` participants.

    Parameters
    ----------
    y : numpy.ndarray
        Labels.
    groups : numpy.ndarray
        Participant of each row.
    n_folds : int
        Folds.

    Raises
    ------
    CrossValidationError
        Naming the class and the counts.
    """
    subjects = pd.Series(y, index=groups).groupby(level=0).max()
    counts = subjects.value_counts()
    every = "both classes" if len(counts) <= 2 else "every class"
    for label, count in counts.items():
        if count < n_folds:
            raise CrossValidationError(
                f"{count} participant(s) with label {label} for {n_folds} folds: every fold needs "
                f"{every}; lower --cv-folds or add participants"
            )


def check_smote(
    y: np.ndarray, groups: np.ndarray, splits: list[Split], k: int, inner: int, seed: int
) -> None:
    """Check that SMOTE finds ``k`` minority neighbours in every (inner) training set.

    Parameters
    ----------
    y, groups : numpy.ndarray
        Labels and participants.
    splits : list of Split
        The outer splits.
    k : int
        SMOTE's neighbours.
    inner : int
        Inner folds.
    seed : int
        Shuffling seed of the inner splits.

    Raises
    ------
    CrossValidationError
        With the smallest minority count found and the options that help.
    """
    smallest = np.inf
    for split in splits:
        y_train, g_train = y[split.train], groups[split.train]
        splitter = StratifiedGroupKFold(inner, shuffle=True, random_state=seed)
        sets = [split.train] + [
            split.train[i] for i, _ in splitter.split(np.zeros(len(y_train)), y_train, g_train)
        ]
        for rows in sets:
            smallest = min(smallest, np.bincount(y[rows], minlength=int(y.max()) + 1).min())
    if smallest <= k:
        raise CrossValidationError(
            f"SMOTE with k={k} needs more than {k} rows of the smaller class in every training "
            f"fold, and one has {int(smallest)}: lower --smote-k, turn SMOTE off with "
            "--smote-k 0, or add data"
        )


def feasible_grid(grid: dict, n_train: int) -> dict:
    """Drop the grid values that cannot be fitted on ``n_train`` rows.

    k-NN needs at least as many training rows as neighbours; in a small cohort the inner
    training folds can be smaller than the largest ``n_neighbors`` of the grid. Those values
    are dropped (the smallest is kept, capped at ``n_train``, when none fits).

    Parameters
    ----------
    grid : dict
        Parameter grid of :class:`~sklearn.model_selection.GridSearchCV`.
    n_train : int
        Rows of the smallest inner training fold.

    Returns
    -------
    dict
        The grid with the feasible values only.

    Examples
    --------
    >>> feasible_grid({"classifier__n_neighbors": [3, 5, 7]}, 6)
    {'classifier__n_neighbors': [3, 5]}
    >>> feasible_grid({"classifier__n_neighbors": [3, 5, 7]}, 2)
    {'classifier__n_neighbors': [2]}
    """
    key = "classifier__n_neighbors"
    if key not in grid:
        return grid
    values = [value for value in grid[key] if value <= n_train] or [min(min(grid[key]), n_train)]
    return {**grid, key: values}


def _fit(
    pipeline: Any,
    grid: dict,
    X: pd.DataFrame,  # noqa: N803
    y: np.ndarray,
    groups: np.ndarray,
    inner: int,
    seed: int,
    n_jobs: int,
    scoring: str,
) -> tuple[Any, dict]:
    if not grid:
        return clone(pipeline).fit(X, y), {}
    splitter = StratifiedGroupKFold(inner, shuffle=True, random_state=seed)
    smallest = min(len(train) for train, _ in splitter.split(X, y, groups))
    search = GridSearchCV(
        pipeline,
        feasible_grid(grid, smallest),
        scoring=scoring,
        cv=splitter,
        n_jobs=n_jobs,
        error_score="raise",
    )
    search.fit(X, y, groups=groups)
    params = {k.removeprefix("classifier__"): v for k, v in search.best_params_.items()}
    return search.best_estimator_, params


def nested_cross_validate(
    X: pd.DataFrame,  # noqa: N803
    y: np.ndarray,
    groups: np.ndarray,
    spec: ClassifierSpec,
    pipeline: Any,
    splits: list[Split],
    feature_set: str = "",
    inner_folds: int = N_FOLDS,
    seed: int = 42,
    n_jobs: int = 1,
    classes: tuple[str, ...] = (),
    ordinal: bool = False,
) -> CVResult:
    """Evaluate one classifier on one feature set by nested cross-validation.

    Parameters
    ----------
    X : pandas.DataFrame
        Features, site and covariates (index: the sessions).
    y : numpy.ndarray
        Labels (0/1), or the class codes of ``classes``.
    groups : numpy.ndarray
        Participant of each row.
    spec : ClassifierSpec
        The classifier and its grid.
    pipeline : imblearn.pipeline.Pipeline
        From :func:`~bids_app.models.classifiers.build_pipeline` (cloned, never fitted here).
    splits : list of Split
        From :func:`outer_splits`.
    feature_set : str
        Name recorded in the result.
    inner_folds : int
        Folds of the inner grid search.
    seed : int
        Seed of the inner splits; trial ``t`` of a repeated classifier uses ``seed + t``.
    n_jobs : int
        Parallel fits of the grid search.
    classes : tuple of str
        The class names of a multi-class target (empty: binary). The inner search then ranks by
        macro-F1, the metrics are :func:`~bids_app.models.metrics.multiclass_metrics`, the
        predictions hold ``score_<class>`` per class and ``y_pred`` is the trials' majority
        vote (ties to the smaller code).
    ordinal : bool
        The classes are ordered (``--ordinal``): the metrics add
        :func:`~bids_app.models.metrics.ordinal_metrics`.

    Returns
    -------
    CVResult
        Per-fold metrics, out-of-fold predictions and the first repeat's fold models.
    """
    rows, predictions, models = [], [], []
    grid = param_grid(spec)
    scoring = "f1_macro" if classes else "f1"
    for split in splits:
        X_train, X_test = X.iloc[split.train], X.iloc[split.test]  # noqa: N806
        y_train, y_test = y[split.train], y[split.test]
        scores = []
        for trial in range(spec.trials):
            candidate = clone(pipeline)
            if spec.trials > 1:
                candidate.set_params(classifier__random_state=seed + trial)
            model, params = _fit(
                candidate,
                grid,
                X_train,
                y_train,
                groups[split.train],
                inner_folds,
                seed,
                n_jobs,
                scoring,
            )
            if classes:
                score = class_scores(model, X_test)
                metrics = class_metrics(y_test, model.predict(X_test), score, classes, ordinal)
            else:
                score = positive_scores(model, X_test)
                metrics = binary_metrics(y_test, model.predict(X_test), score)
            rows.append(
                {
                    "feature_set": feature_set,
                    "classifier": spec.name,
                    "repeat": split.repeat,
                    "fold": split.fold,
                    "trial": trial,
                    "n_train": len(split.train),
                    "n_test": len(split.test),
                    **metrics,
                    "params": json.dumps(params, sort_keys=True),
                }
            )
            scores.append((score, model.predict(X_test)))
            if split.repeat == 0 and trial == 0:
                models.append(model)
        mean_score = np.mean([s for s, _ in scores], axis=0)
        table = pd.DataFrame(
            {
                "session": X_test.index,
                "participant_id": groups[split.test],
                "repeat": split.repeat,
                "fold": split.fold,
                "y_true": y_test,
            }
        )
        if classes:
            votes = np.stack([p for _, p in scores])
            for code, name in enumerate(classes):
                table[f"score_{name}"] = mean_score[:, code]
            table["y_pred"] = [np.bincount(v, minlength=len(classes)).argmax() for v in votes.T]
        else:
            table["score"] = mean_score
            table["y_pred"] = (np.mean([p for _, p in scores], axis=0) >= 0.5).astype(int)
        predictions.append(table)
    return CVResult(
        feature_set=feature_set,
        classifier=spec.name,
        folds=pd.DataFrame(rows),
        predictions=pd.concat(predictions, ignore_index=True),
        models=models,
    )


def summarise(folds: pd.DataFrame, metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """Mean and SD of each metric per feature set and classifier (over folds, repeats, trials).

    Parameters
    ----------
    folds : pandas.DataFrame
        :attr:`CVResult.folds` of several results, stacked.
    metrics : sequence of str
        The metric columns (:func:`~bids_app.models.metrics.metric_names`).

    Returns
    -------
    pandas.DataFrame
        ``feature_set, classifier, n_folds`` and ``<metric>_mean``, ``<metric>_sd`` (ddof=1).
    """
    grouped = folds.groupby(["feature_set", "classifier"], sort=False)
    table = grouped[list(metrics)].agg(["mean", "std"])
    table.columns = [f"{m}_{'sd' if s == 'std' else s}" for m, s in table.columns]
    table.insert(0, "n_folds", grouped.size())
    return table.reset_index()

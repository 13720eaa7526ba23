"""Performance of a binary or multi-class classifier on a test set.

Turrisi 2024 §2.5 reports precision, recall, F1, AUC and AUPRC; Coll 2023 §2.7 balanced accuracy,
sensitivity and specificity, and its results (§3.1-3.2) the plain accuracy of the CNN and of the
logistic-regression baseline. All come from scikit-learn; the confusion matrix is kept as counts.
A multi-class target (the disease stage of the brainstem/ALS PhD proposal, objective c) keeps the
names with their macro-averaged meaning, the unweighted mean over the classes: macro-F1, precision
and recall, the mean of the one-vs-rest AUCs and average precisions, and balanced accuracy (the
mean recall of the classes); each class's one-vs-rest AUC is kept as ``auc_<class>``.
Ordered classes (``--ordinal``: King's stages 1-4 of the brainstem paper, Bede et al. 2021) add
two ordinal metrics: the mean absolute error in classes and Cohen's kappa with quadratic weights
(Cohen 1968), which count a prediction two stages off as worse than one stage off.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    cohen_kappa_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

#: The metrics of :func:`binary_metrics`, in the order of the tables.
METRICS = (
    "f1",
    "precision",
    "recall",
    "auc",
    "auprc",
    "balanced_accuracy",
    "accuracy",
    "sensitivity",
    "specificity",
)


#: The metrics of :func:`multiclass_metrics` shared by every target (then ``auc_<class>``).
MULTICLASS_METRICS = ("f1", "precision", "recall", "auc", "auprc", "balanced_accuracy")

#: The metrics of :func:`ordinal_metrics`, added for ordered classes (``--ordinal``).
ORDINAL_METRICS = ("mae", "qwk")


def metric_names(classes: Sequence[str] = (), ordinal: bool = False) -> tuple[str, ...]:
    """Name the metric columns of a binary target (no classes) or of a multi-class one.

    Parameters
    ----------
    classes : sequence of str
        The classes of a multi-class target; empty for a binary one.
    ordinal : bool
        The classes are ordered: :data:`ORDINAL_METRICS` follow the multi-class ones.

    Returns
    -------
    tuple of str
        :data:`METRICS`, or :data:`MULTICLASS_METRICS`, :data:`ORDINAL_METRICS` when ordered,
        and ``auc_<class>`` for every class.

    Examples
    --------
    >>> metric_names(["1", "2", "3"])[-3:]
    ('auc_1', 'auc_2', 'auc_3')
    >>> metric_names(["1", "2", "3"], ordinal=True)[6:8]
    ('mae', 'qwk')
    """
    if not classes:
        return METRICS
    ordered = ORDINAL_METRICS if ordinal else ()
    return MULTICLASS_METRICS + ordered + tuple(f"auc_{name}" for name in classes)


def ordinal_metrics(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, float]:
    """Compute the ordinal metrics of ordered classes (codes in their order).

    Parameters
    ----------
    y_true, y_pred : numpy.ndarray
        True and predicted class codes ``0 .. n_classes - 1``, in the order of the classes.
    n_classes : int
        Classes of the target (the kappa's weights span all of them).

    Returns
    -------
    dict of str to float
        ``mae``: mean absolute error in classes, ``mean |y_true - y_pred|``; ``qwk``: Cohen's
        kappa with quadratic weights, 1 for perfect agreement, 0 for chance (NaN when both
        sides hold one and the same class).

    Examples
    --------
    >>> ordinal_metrics(np.array([0, 1, 2, 3]), np.array([0, 1, 3, 1]), 4)
    {'mae': 0.75, 'qwk': 0.5}
    """
    y_true = np.asarray(y_true, dtype=int)
    y_pred = np.asarray(y_pred, dtype=int)
    labels = list(range(n_classes))
    agreement = (
        np.nan
        if len(np.unique(np.concatenate([y_true, y_pred]))) < 2
        else cohen_kappa_score(y_true, y_pred, labels=labels, weights="quadratic")
    )
    return {"mae": float(np.abs(y_true - y_pred).mean()), "qwk": float(agreement)}


def class_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    scores: np.ndarray,
    classes: Sequence[str],
    ordinal: bool = False,
) -> dict[str, float]:
    """Compute :func:`multiclass_metrics`, with :func:`ordinal_metrics` for ordered classes.

    Parameters
    ----------
    y_true, y_pred, scores, classes
        As :func:`multiclass_metrics`.
    ordinal : bool
        The classes are ordered (``--ordinal``).

    Returns
    -------
    dict of str to float
        :func:`metric_names` of ``classes`` and ``ordinal``.
    """
    metrics = multiclass_metrics(y_true, y_pred, scores, classes)
    if ordinal:
        metrics.update(ordinal_metrics(y_true, y_pred, len(classes)))
    return {name: metrics[name] for name in metric_names(classes, ordinal)}


def binary_metrics(y_true: np.ndarray, y_pred: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """Compute the metrics and the confusion matrix of one test set.

    Parameters
    ----------
    y_true : numpy.ndarray
        True labels, 1 positive and 0 negative.
    y_pred : numpy.ndarray
        Predicted labels.
    score : numpy.ndarray
        Scores of the positive class (probability or decision value) for AUC and AUPRC.

    Returns
    -------
    dict of str to float
        :data:`METRICS` plus ``tn, fp, fn, tp``. AUC and AUPRC are NaN when the test set holds
        one class only; precision is NaN when nothing is predicted positive.

    Examples
    --------
    >>> y, pred = np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1])
    >>> m = binary_metrics(y, pred, np.array([0.1, 0.6, 0.7, 0.9]))
    >>> m["sensitivity"], m["specificity"], m["auc"], m["fp"]
    (1.0, 0.5, 1.0, 1)
    """
    y_true = np.asarray(y_true, dtype=int)
    y_pred = np.asarray(y_pred, dtype=int)
    tn, fp, fn, tp = confusion_matrix(y_true, y_pred, labels=[0, 1]).ravel()
    both = len(np.unique(y_true)) == 2
    result = {
        "f1": f1_score(y_true, y_pred, zero_division=0.0),
        "precision": precision_score(y_true, y_pred, zero_division=np.nan),
        "recall": recall_score(y_true, y_pred, zero_division=np.nan),
        "auc": roc_auc_score(y_true, score) if both else np.nan,
        "auprc": average_precision_score(y_true, score) if both else np.nan,
        "balanced_accuracy": balanced_accuracy_score(y_true, y_pred) if both else np.nan,
        "accuracy": accuracy_score(y_true, y_pred),
        "sensitivity": tp / (tp + fn) if tp + fn else np.nan,
        "specificity": tn / (tn + fp) if tn + fp else np.nan,
    }
    return {
        **{k: float(v) for k, v in result.items()},
        "tn": int(tn),
        "fp": int(fp),
        "fn": int(fn),
        "tp": int(tp),
    }


def multiclass_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray, classes: Sequence[str]
) -> dict[str, float]:
    """Compute the macro-averaged and per-class metrics of one multi-class test set.

    Parameters
    ----------
    y_true, y_pred : numpy.ndarray
        True and predicted class codes (``0 .. len(classes) - 1``).
    scores : numpy.ndarray
        ``(rows, classes)`` scores (probabilities or one-vs-rest decision values), from
        :func:`class_scores`.
    classes : sequence of str
        Class names, in the order of the codes.

    Returns
    -------
    dict of str to float
        :func:`metric_names` of ``classes``; a class absent from the test set has a NaN AUC and
        is left out of the means of AUC and AUPRC.

    Examples
    --------
    >>> y = np.array([0, 1, 2, 2])
    >>> scores = np.eye(3)[[0, 1, 2, 1]]
    >>> m = multiclass_metrics(y, scores.argmax(axis=1), scores, ["a", "b", "c"])
    >>> m["auc_a"], m["balanced_accuracy"]
    (1.0, 0.8333333333333334)
    """
    y_true = np.asarray(y_true, dtype=int)
    y_pred = np.asarray(y_pred, dtype=int)
    labels = list(range(len(classes)))
    aucs, precisions = [], []
    for code in labels:
        positive = y_true == code
        both = 0 < positive.sum() < len(y_true)
        aucs.append(roc_auc_score(positive, scores[:, code]) if both else np.nan)
        precisions.append(average_precision_score(positive, scores[:, code]) if both else np.nan)
    averaged = {"labels": labels, "average": "macro"}
    result = {
        "f1": f1_score(y_true, y_pred, zero_division=0.0, **averaged),
        "precision": precision_score(y_true, y_pred, zero_division=np.nan, **averaged),
        "recall": recall_score(y_true, y_pred, zero_division=np.nan, **averaged),
        "auc": np.nanmean(aucs) if not np.isnan(aucs).all() else np.nan,
        "auprc": np.nanmean(precisions) if not np.isnan(precisions).all() else np.nan,
        "balanced_accuracy": balanced_accuracy_score(y_true, y_pred),
        **{f"auc_{name}": value for name, value in zip(classes, aucs, strict=True)},
    }
    return {k: float(v) for k, v in result.items()}


def class_scores(model: Any, X: Any) -> np.ndarray:  # noqa: N803 (scikit-learn's name)
    """Scores of every class: probabilities when the model has them, else decision values.

    Parameters
    ----------
    model : estimator
        A fitted multi-class classifier (or pipeline) with classes ``0 .. K-1``.
    X : array-like
        Rows to score.

    Returns
    -------
    numpy.ndarray
        ``(rows, K)``; higher means more likely that class (the SVMs' one-vs-rest decision
        values).
    """
    if hasattr(model, "predict_proba"):
        return model.predict_proba(X)
    return model.decision_function(X)


def positive_scores(model: Any, X: Any) -> np.ndarray:  # noqa: N803 (scikit-learn's name)
    """Scores of the positive class: probabilities when the model has them, else decision values.

    Parameters
    ----------
    model : estimator
        A fitted binary classifier (or pipeline) with classes 0 and 1.
    X : array-like
        Rows to score.

    Returns
    -------
    numpy.ndarray
        One score per row; higher means more likely positive.
    """
    if hasattr(model, "predict_proba"):
        return model.predict_proba(X)[:, 1]
    return model.decision_function(X)

"""Performance of a binary classifier on a test set.

Turrisi 2024 §2.5 reports precision, recall, F1, AUC and AUPRC; Coll 2023 §2.7 balanced accuracy,
sensitivity and specificity, and its results (§3.1-3.2) the plain accuracy of the CNN and of the
logistic-regression baseline. All come from scikit-learn; the confusion matrix is kept as counts.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
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

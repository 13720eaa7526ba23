"""Figures and report sections of the group-level classification and statistics."""

from __future__ import annotations

import html
from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import auc, precision_recall_curve, roc_curve

from bids_app.group.classification import ClassificationResult, ExternalResult
from bids_app.models.metrics import METRICS
from bids_app.models.tables import f1_table
from bids_app.reports.html import ReportPart, table_html


def roc_pr_figure(predictions: Mapping[str, pd.DataFrame]) -> plt.Figure:
    """ROC and precision-recall curves of out-of-fold predictions, one line per model.

    Parameters
    ----------
    predictions : mapping of str to pandas.DataFrame
        Model name to its out-of-fold predictions (``y_true``, ``score``; first repeat).

    Returns
    -------
    matplotlib.figure.Figure
        Two panels.
    """
    figure, (roc_axis, pr_axis) = plt.subplots(1, 2, figsize=(10, 4.2))
    for name, table in predictions.items():
        if table["y_true"].nunique() < 2:
            continue
        fpr, tpr, _ = roc_curve(table["y_true"], table["score"])
        roc_axis.plot(fpr, tpr, label=f"{name} (AUC {auc(fpr, tpr):.2f})")
        precision, recall, _ = precision_recall_curve(table["y_true"], table["score"])
        pr_axis.plot(recall, precision, label=name)
    roc_axis.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    roc_axis.set(xlabel="1 - specificity", ylabel="sensitivity", title="ROC (out of fold)")
    pr_axis.set(xlabel="recall", ylabel="precision", title="Precision-recall (out of fold)")
    roc_axis.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    return figure


def confusion_figure(best: pd.DataFrame, labels: tuple[str, str]) -> plt.Figure:
    """Confusion matrices (summed over the outer folds) of the best model of each feature set.

    Parameters
    ----------
    best : pandas.DataFrame
        ``feature_set, classifier, tn, fp, fn, tp``.
    labels : tuple of str
        Names of the negative and the positive class.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per row of ``best``.
    """
    figure, axes = plt.subplots(1, len(best), figsize=(3.2 * len(best), 3.0), squeeze=False)
    for axis, (_, row) in zip(axes[0], best.iterrows(), strict=True):
        matrix = np.array([[row.tn, row.fp], [row.fn, row.tp]])
        axis.imshow(matrix, cmap="Blues")
        for (i, j), value in np.ndenumerate(matrix):
            axis.text(j, i, str(int(value)), ha="center", va="center")
        axis.set_xticks([0, 1], labels)
        axis.set_yticks([0, 1], labels)
        axis.set(xlabel="predicted", ylabel="true", title=f"{row.feature_set}\n{row.classifier}")
    figure.tight_layout()
    return figure


def histogram_figure(histograms: pd.DataFrame) -> plt.Figure:
    """Mean intensity histogram per group (Turrisi 2024 Figure 3), ± 1 SD.

    Parameters
    ----------
    histograms : pandas.DataFrame
        ``group, bin, bin_lower, bin_upper, mean, sd`` (tidy).

    Returns
    -------
    matplotlib.figure.Figure
        One line per group.
    """
    figure, axis = plt.subplots(figsize=(7, 3.5))
    for group, part in histograms.groupby("group"):
        centre = part["centre"].to_numpy(dtype=float)
        mean, sd = part["mean"].to_numpy(dtype=float), part["sd"].to_numpy(dtype=float)
        axis.plot(centre, mean, label=str(group))
        axis.fill_between(centre, mean - sd, mean + sd, alpha=0.2)
    axis.set(
        xlabel="intensity (white-matter median = 100)",
        ylabel="share of brain voxels",
        title="Mean intensity histogram per group",
    )
    axis.legend()
    figure.tight_layout()
    return figure


def design_text(n_rows: int, n_participants: int, target: str, counts: Mapping) -> str:
    """Say in a sentence what the classifiers were trained on.

    Parameters
    ----------
    n_rows, n_participants : int
        Sessions and participants in the design.
    target : str
        The target in words.
    counts : mapping
        Label to count.

    Returns
    -------
    str
        HTML.
    """
    classes = ", ".join(f"{html.escape(str(k))}: {v}" for k, v in counts.items())
    return (
        f"<p>{n_rows} sessions of {n_participants} participants; positive when "
        f"<code>{html.escape(target)}</code> ({classes}).</p>"
    )


def tables_html(tables: Mapping[str, pd.DataFrame]) -> str:
    """Several captioned tables.

    Parameters
    ----------
    tables : mapping of str to pandas.DataFrame
        Caption to table.

    Returns
    -------
    str
        HTML.
    """
    return "".join(
        f"<h3>{html.escape(caption)}</h3>{table_html(table)}" for caption, table in tables.items()
    )


def mean_sd_table(summary: pd.DataFrame, id_columns: list[str]) -> pd.DataFrame:
    """Every metric as ``mean ± SD`` over the folds.

    Parameters
    ----------
    summary : pandas.DataFrame
        From :func:`bids_app.models.crossval.summarise` (``<metric>_mean``, ``<metric>_sd``).
    id_columns : list of str
        Columns that name the models.

    Returns
    -------
    pandas.DataFrame
        The id columns, then one text column per metric.
    """
    shown = summary[id_columns].copy()
    for metric in METRICS:
        shown[metric] = [
            f"{m:.2f} ± {s:.2f}"
            for m, s in zip(summary[f"{metric}_mean"], summary[f"{metric}_sd"], strict=True)
        ]
    return shown


def render_classification(result: ClassificationResult) -> ReportPart:
    """Render the comparison of the classifiers (Turrisi 2024 Tables 1, 3 and 4).

    Parameters
    ----------
    result : ClassificationResult
        From :func:`bids_app.group.classification.run_classification`.

    Returns
    -------
    ReportPart
        The sections, the ROC/PR and confusion figures.
    """
    part = ReportPart()
    roc = part.figure(
        roc_pr_figure(result.best_predictions), "ROC and PR", "figure_classification_roc_pr"
    )
    confusion = part.figure(
        confusion_figure(result.best, result.labels),
        "confusion matrices",
        "figure_classification_confusion",
    )
    overview = design_text(result.n_rows, result.n_participants, result.target, result.counts)
    overview += (
        f"<p>Nested, participant-grouped, stratified {result.cv_folds}-fold cross-validation "
        f"({result.cv_repeats} repeat(s), shuffling seed {result.seed}); inner grid search on "
        "F1; "
        + ("ComBat on the training folds; " if result.harmonized else "")
        + (f"SMOTE (k={result.smote_k}) on the training folds." if result.smote_k else "")
        + "</p>"
    )
    parameters = result.parameters
    part.sections += [
        ("Classification: design", overview),
        (
            "Classification: F1 (%) by feature set and classifier (Turrisi 2024 Table 3)",
            table_html(f1_table(result.summary).reset_index()),
        ),
        (
            "Classification: best model per feature set (Turrisi 2024 Table 4)",
            table_html(result.best),
        ),
        ("Classification: ROC and precision-recall curves", roc),
        ("Classification: confusion matrices", confusion),
        (
            "Classification: all metrics (mean ± SD over folds)",
            table_html(mean_sd_table(result.summary, ["feature_set", "classifier"])),
        ),
        (
            "Classification: chosen hyper-parameters (Turrisi 2024 Table 1)",
            table_html(parameters) if len(parameters) else "<p>No grid searched.</p>",
        ),
        (
            "Classification: left out",
            tables_html(
                {"Sessions": result.exclusions, "Feature columns": result.dropped_features}
            ),
        ),
    ]
    return part


def render_external(result: ExternalResult) -> ReportPart:
    """Render the external validation of saved models (``--apply-models``).

    Parameters
    ----------
    result : ExternalResult
        From :func:`bids_app.group.classification.run_apply_models`.

    Returns
    -------
    ReportPart
        Two sections: what was applied, and the metrics.
    """
    part = ReportPart()
    part.sections.append(
        (
            "External validation: saved models applied",
            f"<p>{result.n_models} model(s) from <code>{result.directory}</code> (target "
            f"<code>{result.target}</code>) applied to this dataset.</p>",
        )
    )
    if len(result.metrics):
        part.sections.append(("External validation: metrics", table_html(result.metrics)))
    else:
        part.sections.append(
            (
                "External validation: metrics",
                f"<p>No column {result.target_column!r}: no metrics.</p>",
            )
        )
    return part

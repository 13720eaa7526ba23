"""Figures and report sections of the group-level classification and statistics."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

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


def best_confusion_matrices(result: ClassificationResult) -> dict[str, np.ndarray]:
    """Collect the confusion matrix of each feature set's best model (rows true, columns predicted).

    Parameters
    ----------
    result : ClassificationResult
        A binary result (``tn, fp, fn, tp`` of :attr:`~ClassificationResult.best`, summed over
        the outer folds) or a multi-class one (:attr:`~ClassificationResult.confusion`).

    Returns
    -------
    dict of str to numpy.ndarray
        Panel title (feature set and classifier) to its counts, classes in the order of
        ``labels``.
    """
    matrices = {}
    for _, row in result.best.iterrows():
        title = f"{row.feature_set}\n{row.classifier}"
        if result.confusion is None:
            matrices[title] = np.array([[row.tn, row.fp], [row.fn, row.tp]])
            continue
        table = result.confusion
        chosen = (table.feature_set == row.feature_set) & (table.classifier == row.classifier)
        matrices[title] = table.loc[chosen, list(result.labels)].to_numpy()
    return matrices


def confusion_figure(matrices: Mapping[str, np.ndarray], labels: tuple[str, ...]) -> plt.Figure:
    """Draw confusion matrices side by side, one panel per model.

    Parameters
    ----------
    matrices : mapping of str to numpy.ndarray
        Panel title to its counts (rows true, columns predicted), from
        :func:`best_confusion_matrices`.
    labels : tuple of str
        Names of the classes (negative and positive for a binary target).

    Returns
    -------
    matplotlib.figure.Figure
        One panel per matrix.
    """
    size = 3.0 + 0.4 * max(len(labels) - 2, 0)
    figure, axes = plt.subplots(
        1, len(matrices), figsize=((size + 0.2) * len(matrices), size), squeeze=False
    )
    ticks = list(range(len(labels)))
    for axis, (title, matrix) in zip(axes[0], matrices.items(), strict=True):
        axis.imshow(matrix, cmap="Blues")
        for (i, j), value in np.ndenumerate(matrix):
            axis.text(j, i, str(int(value)), ha="center", va="center")
        axis.set_xticks(ticks, labels)
        axis.set_yticks(ticks, labels)
        axis.set(xlabel="predicted", ylabel="true", title=title)
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


def design_text(
    n_rows: int, n_participants: int, target: str, counts: Mapping, multiclass: bool = False
) -> str:
    """Say in a sentence what the classifiers were trained on.

    Parameters
    ----------
    n_rows, n_participants : int
        Sessions and participants in the design.
    target : str
        The target in words.
    counts : mapping
        Label to count.
    multiclass : bool
        Whether the target has more than two classes.

    Returns
    -------
    str
        HTML.
    """
    classes = ", ".join(f"{html.escape(str(k))}: {v}" for k, v in counts.items())
    what = "multi-class target" if multiclass else "positive when"
    return (
        f"<p>{n_rows} sessions of {n_participants} participants; {what} "
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


def mean_sd_table(
    summary: pd.DataFrame, id_columns: list[str], metrics: Sequence[str] = METRICS
) -> pd.DataFrame:
    """Every metric as ``mean ± SD`` over the folds.

    Parameters
    ----------
    summary : pandas.DataFrame
        From :func:`bids_app.models.crossval.summarise` (``<metric>_mean``, ``<metric>_sd``).
    id_columns : list of str
        Columns that name the models.
    metrics : sequence of str
        The metric columns (:func:`~bids_app.models.metrics.metric_names`).

    Returns
    -------
    pandas.DataFrame
        The id columns, then one text column per metric.
    """
    shown = summary[id_columns].copy()
    for metric in metrics:
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
    confusion = part.figure(
        confusion_figure(best_confusion_matrices(result), result.labels),
        "confusion matrices",
        "figure_classification_confusion",
    )
    f1 = "macro-F1" if result.multiclass else "F1"
    overview = design_text(
        result.n_rows, result.n_participants, result.target, result.counts, result.multiclass
    )
    overview += (
        f"<p>Nested, participant-grouped, stratified {result.cv_folds}-fold cross-validation "
        f"({result.cv_repeats} repeat(s), shuffling seed {result.seed}); inner grid search on "
        f"{f1}; "
        + ("ComBat on the training folds; " if result.harmonized else "")
        + (f"SMOTE (k={result.smote_k}) on the training folds." if result.smote_k else "")
        + "</p>"
    )
    if result.multiclass:
        overview += (
            "<p>Multi-class: F1, precision, recall, AUC and AUPRC are unweighted means over the "
            "classes (AUC and AUPRC one-vs-rest), <code>auc_&lt;class&gt;</code> is each class's "
            "one-vs-rest AUC; the confusion matrices count the out-of-fold predictions of the "
            "first repeat.</p>"
        )
    parameters = result.parameters
    part.sections += [
        ("Classification: design", overview),
        (
            f"Classification: {f1} (%) by feature set and classifier (Turrisi 2024 Table 3)",
            table_html(f1_table(result.summary).reset_index()),
        ),
        (
            "Classification: best model per feature set (Turrisi 2024 Table 4)",
            table_html(result.best),
        ),
    ]
    if not result.multiclass:
        roc = part.figure(
            roc_pr_figure(result.best_predictions), "ROC and PR", "figure_classification_roc_pr"
        )
        part.sections.append(("Classification: ROC and precision-recall curves", roc))
    part.sections.append(("Classification: confusion matrices", confusion))
    if result.multiclass:
        part.sections.append(
            ("Classification: confusion matrices of every model", table_html(result.confusion))
        )
    part.sections += [
        (
            "Classification: all metrics (mean ± SD over folds)",
            table_html(
                mean_sd_table(result.summary, ["feature_set", "classifier"], result.metrics)
            ),
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

"""Report sections of the deep learning: cross-validated metrics, then the attention maps."""

from __future__ import annotations

import html
from collections.abc import Sequence

from bids_app.group.attention import AttentionResult
from bids_app.group.deep_learning import DeepOutcome, DeepRun
from bids_app.group.network_validation import NetworkValidation
from bids_app.models.crossval import summarise
from bids_app.reports.attention import render_attention
from bids_app.reports.classification import mean_sd_table
from bids_app.reports.html import ReportPart, table_html


def render_deep_learning(
    outcome: DeepOutcome, attention: Sequence[AttentionResult] = ()
) -> ReportPart:
    """Render the networks' cross-validation and their attention analyses.

    Parameters
    ----------
    outcome : DeepOutcome
        From :func:`bids_app.group.deep_learning.run_deep_learning`.
    attention : sequence of AttentionResult
        From :func:`bids_app.group.attention.run_attention_analyses`.

    Returns
    -------
    ReportPart
        The metrics, the sessions left out, one section per network's attention maps, and the
        sessions without crops.
    """
    run = outcome.run
    assert run is not None
    shown = mean_sd_table(
        summarise(outcome.folds, run.metrics), ["classifier", "n_folds"], run.metrics
    ).rename(columns={"classifier": "network"})
    text = (
        f"<p>{', '.join(run.networks)} trained on {run.feature_set} of {len(outcome.rows)} "
        f"sessions with the classifiers' {run.cv_folds} participant-grouped folds "
        f"({run.preset} preset"
        + (", a validation fold held out of each training set" if run.validation else "")
        + f"; crops of the {run.cnn_space} registration). Input channels: "
        + "; ".join(f"{contrast} ({html.escape(norm)})" for contrast, norm in run.channels)
        + f". Out-of-fold attention maps use LRP ({run.lrp_rule} rules) started from "
        + _explained(run)
        + ".</p>"
    )
    if run.classes:
        text += (
            f"<p>Multi-class target ({', '.join(run.classes)}"
            + (
                ", ordered: <code>mae</code> is the mean absolute error in classes, "
                "<code>qwk</code> the quadratic-weighted Cohen's kappa"
                if run.ordinal
                else ""
            )
            + "): the metrics are macro-averaged over the classes, as the classifiers'.</p>"
        )
    part = ReportPart(
        [
            (
                "Deep learning: cross-validated metrics (mean ± SD over folds)",
                text + table_html(shown),
            )
        ]
    )
    for name, confusion in outcome.confusion.items():
        part.sections.append(
            (
                f"Deep learning: confusion matrix of {name} (out of fold, rows true)",
                table_html(confusion.drop(columns=["feature_set", "classifier"])),
            )
        )
    if len(outcome.left_out):
        part.sections.append(("Deep learning: sessions left out", table_html(outcome.left_out)))
    for result in attention:
        part += render_attention(result)
    if len(outcome.missing_crops):
        part.sections.append(
            ("Deep learning: sessions without crops", table_html(outcome.missing_crops))
        )
    return part


def _explained(run: DeepRun) -> str:
    """Say which class the attention maps explain."""
    if run.lrp_class is not None:
        return f"the class {run.lrp_class}"
    return (
        "each subject's predicted class" if run.lrp_target == "predicted" else "the positive class"
    )


def render_network_validation(result: NetworkValidation) -> ReportPart:
    """Render the external validation of trained networks (``participant --models``).

    Parameters
    ----------
    result : NetworkValidation
        From :func:`bids_app.group.network_validation.validate_networks`.

    Returns
    -------
    ReportPart
        One section: the votes gathered and, with labels, the majority vote's metrics.
    """
    sessions = len(result.predictions)
    networks = sorted(result.predictions["network"].unique())
    text = (
        f"<p>The votes of {', '.join(networks)} on {sessions} session(s) of this dataset "
        "(<code>participant --models</code>), scored by the majority vote of the fold models as "
        f"Coll et al. 2023 (§2.5). Target of this run: <code>{result.target}</code>.</p>"
    )
    if len(result.metrics):
        text += table_html(result.metrics)
    else:
        text += "<p>No labels for this target: the votes are listed, not scored.</p>"
    part = ReportPart()
    part.sections.append(("External validation of the networks", text))
    return part

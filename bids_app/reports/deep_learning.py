"""Report sections of the deep learning: cross-validated metrics, then the attention maps."""

from __future__ import annotations

from collections.abc import Sequence

from bids_app.group.attention import AttentionResult
from bids_app.group.deep_learning import DeepOutcome
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
    shown = mean_sd_table(summarise(outcome.folds), ["classifier", "n_folds"]).rename(
        columns={"classifier": "network"}
    )
    text = (
        f"<p>{', '.join(run.networks)} trained on {run.feature_set} of {len(outcome.rows)} "
        f"sessions with the classifiers' {run.cv_folds} participant-grouped folds "
        f"({run.preset} preset"
        + (", a validation fold held out of each training set" if run.validation else "")
        + f"; crops of the {run.cnn_space} registration). Out-of-fold attention maps use LRP "
        f"({run.lrp_rule} rules) started from "
        + (
            "each subject's predicted class"
            if run.lrp_target == "predicted"
            else "the positive class"
        )
        + ".</p>"
    )
    part = ReportPart(
        [
            (
                "Deep learning: cross-validated metrics (mean ± SD over folds)",
                text + table_html(shown),
            )
        ]
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

"""Report sections of the group statistics: the ANCOVA per family and the mean histograms."""

from __future__ import annotations

import numpy as np

from bids_app.group.statistics import StatisticsResult
from bids_app.reports.classification import histogram_figure
from bids_app.reports.html import ReportPart, table_html

#: Rows of the report's table of the ANCOVA (most significant first).
REPORT_ROWS = 15


def render_statistics(result: StatisticsResult) -> ReportPart:
    """Render the ANCOVA of every family and the mean histogram per group.

    Parameters
    ----------
    result : StatisticsResult
        From :func:`bids_app.group.statistics.run_statistics`.

    Returns
    -------
    ReportPart
        One section per family, and the histograms' section and figure.
    """
    part = ReportPart()
    for family in result.ancova:
        table = family.table
        top = table.sort_values("p_value").head(REPORT_ROWS)
        shown = [c for c in top.columns if c in ("feature", "n", "F", "p_value", "q_value")]
        shown += [c for c in top.columns if c.startswith("emm_") and not c.startswith("emm_se")]
        n_significant = int(table["significant"].fillna(False).sum())
        part.sections.append(
            (
                f"ANCOVA of the {family.family} between groups",
                f"<p>{len(table)} features; {n_significant} differ at FDR 5 % "
                f"(covariates: {', '.join(family.covariates) or 'none'}; first session of each "
                f"participant). The {REPORT_ROWS} smallest p-values:</p>" + table_html(top[shown]),
            )
        )
    if result.histograms is not None:
        means = result.histograms
        finite = means[np.isfinite(means["bin_upper"].astype(float))]
        finite = finite.assign(centre=(finite["bin_lower"] + finite["bin_upper"]) / 2)
        html = part.figure(histogram_figure(finite), "hist", "figure_histograms_by_group")
        part.sections.append(("Mean intensity histogram per group (Turrisi 2024 Figure 3)", html))
    return part

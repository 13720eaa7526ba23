"""Group-level statistics: ANCOVA of every feature between groups, mean intensity histograms.

The thin layer between the configuration and :mod:`bids_app.statistics`: one row per participant
(the first session: the ANCOVA assumes independent rows), the covariates of seed 002 (age and
sex) plus the total intracranial volume where the volumes were computed, FDR over the features
of each family; the mean histogram per group of seed 000 Figure 3.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from bids_app.derivatives.writer import DerivativesWriter
from bids_app.reports.classification import histogram_figure
from bids_app.reports.html import figure_html, table_html
from bids_app.statistics.ancova import ancova
from bids_app.statistics.histograms import group_histograms

LOGGER = logging.getLogger("bids_app.group")

#: Families compared feature by feature.
ANCOVA_FAMILIES = ("volumes", "thickness", "radiomics")
#: Rows of the report's table of the ANCOVA (most significant first).
REPORT_ROWS = 15


def first_sessions(table: pd.DataFrame) -> pd.DataFrame:
    """Keep the first session (in ``session_id`` order) of every participant.

    Parameters
    ----------
    table : pandas.DataFrame
        Session rows with ``participant_id`` and maybe ``session_id``.

    Returns
    -------
    pandas.DataFrame
        One row per participant.
    """
    if "session_id" in table:
        table = table.sort_values(["participant_id", "session_id"])
    return table.drop_duplicates("participant_id").reset_index(drop=True)


def run_statistics(
    tables: Mapping[str, pd.DataFrame],
    participants: pd.DataFrame,
    group_column: str,
    covariates: Sequence[str],
    writer: DerivativesWriter,
) -> list[tuple[str, str]]:
    """Compare every feature between the groups (ANCOVA, FDR); mean histograms per group.

    Parameters
    ----------
    tables : mapping of str to pandas.DataFrame
        Family to its stacked session table.
    participants : pandas.DataFrame
        The group table (``participant_id``, ``group_column``, covariates).
    group_column : str
        The groups compared.
    covariates : sequence of str
        Clinical covariates (age and sex by default); ``tiv`` is added where volumes exist.
    writer : DerivativesWriter
        The output dataset.

    Returns
    -------
    list of (str, str)
        Report sections.
    """
    sections = []
    clinical = participants.set_index("participant_id")
    groups = clinical[group_column]
    tiv = None
    if "volumes" in tables and "tiv" in tables["volumes"]:
        tiv = first_sessions(tables["volumes"]).set_index("participant_id")["tiv"]
    for family in ANCOVA_FAMILIES:
        if family not in tables:
            continue
        data = first_sessions(tables[family]).set_index("participant_id")
        # TIV is a covariate (seed 002 corrects for it), so not itself a compared feature
        features = [c for c in data.columns if c not in ("session_id", "tiv")]
        model_covariates = [c for c in covariates if c in clinical]
        design = data[features].join(clinical[[group_column, *model_covariates]])
        if tiv is not None:
            design = design.assign(tiv_covariate=tiv.reindex(design.index))
            model_covariates.append("tiv_covariate")
        result = ancova(design, features, group_column, model_covariates)
        params = {"group_column": group_column, "covariates": model_covariates, "fdr": "BH"}
        writer.write_table(result, writer.group_file(f"ancova_{family}", ".tsv"), params=params)
        top = result.sort_values("p_value").head(REPORT_ROWS)
        shown = [c for c in top.columns if c in ("feature", "n", "F", "p_value", "q_value")]
        shown += [c for c in top.columns if c.startswith("emm_") and not c.startswith("emm_se")]
        n_significant = int(result["significant"].fillna(False).sum())
        sections.append(
            (
                f"ANCOVA of the {family} between groups",
                f"<p>{len(result)} features; {n_significant} differ at FDR 5 % "
                f"(covariates: {', '.join(model_covariates) or 'none'}; first session of each "
                f"participant). The {REPORT_ROWS} smallest p-values:</p>" + table_html(top[shown]),
            )
        )
    if "histogram" in tables and groups.notna().any():
        means = group_histograms(tables["histogram"], groups.dropna())
        writer.write_table(means, writer.group_file("histograms_by_group", ".tsv"))
        finite = means[np.isfinite(means["bin_upper"].astype(float))]
        finite = finite.assign(centre=(finite["bin_lower"] + finite["bin_upper"]) / 2)
        figure = histogram_figure(finite)
        writer.write_figure(figure, "histograms_by_group")
        sections.append(
            ("Mean intensity histogram per group (seed 000 Figure 3)", figure_html(figure, "hist"))
        )
    return sections

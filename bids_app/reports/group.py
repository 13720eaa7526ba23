"""The group-level HTML report."""

from __future__ import annotations

import html
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats

from bids_app import __version__
from bids_app.config.recipes import Recipe
from bids_app.reports.html import figure_html, page, table_html


def _age_figure(table: pd.DataFrame, group_column: str) -> str:
    figure, axis = plt.subplots(figsize=(6, 3))
    for group, part in table.dropna(subset=[group_column]).groupby(group_column):
        axis.hist(part["age"].dropna(), bins=15, alpha=0.6, label=str(group))
    axis.set_xlabel("age (years)")
    axis.set_ylabel("subjects")
    axis.legend(title=group_column)
    return figure_html(figure, "age distribution by group")


def _age_qq_figure(table: pd.DataFrame, group_column: str) -> str:
    """Age quantiles of each group against a normal distribution (Turrisi 2024 Figure 2)."""
    groups = [(g, p["age"].dropna().astype(float)) for g, p in table.groupby(group_column)]
    groups = [(g, age) for g, age in groups if len(age) >= 3]
    figure, axes = plt.subplots(1, max(len(groups), 1), figsize=(3.2 * max(len(groups), 1), 3))
    for axis, (group, age) in zip(np.atleast_1d(axes), groups, strict=False):
        (theoretical, ordered), (slope, intercept, _) = stats.probplot(age, dist="norm")
        axis.plot(theoretical, ordered, "o", markersize=3)
        axis.plot(theoretical, slope * theoretical + intercept, "--", color="grey")
        axis.set_title(str(group))
        axis.set_xlabel("normal quantiles")
    np.atleast_1d(axes)[0].set_ylabel("age (years)")
    figure.tight_layout()
    return figure_html(figure, "age quantile-quantile plots by group")


def _characteristics_table(characteristics: pd.DataFrame) -> str:
    """Lay the counts out as the paper's table: a row per level, ``n (%)`` per group."""
    pairs = zip(characteristics["n"], characteristics["percent"], strict=True)
    cells = characteristics.assign(value=[f"{n} ({p:.1f})" for n, p in pairs])
    wide = cells.pivot_table(
        index=["variable", "level"], columns="group", values="value", aggfunc="first", sort=False
    ).reset_index()
    wide.columns.name = None
    return table_html(wide)


def render_extractor(params: dict) -> tuple[str, str]:
    """Render the section naming the pretrained feature extractor and any crop-size mismatch.

    Parameters
    ----------
    params : dict
        What :func:`bids_app.group.deep_learning.pretrained_features` returns beside its tables.

    Returns
    -------
    tuple of (str, str)
        The section's heading and HTML body.
    """
    text = (
        f"<p>Deep features of <code>{html.escape(params['feature_extractor'])}</code> "
        f"({html.escape(params['network'])}), trained on crops of "
        f"{params['checkpoint_crop_shape']} voxels.</p>"
    )
    if params["resampled"]:
        text += (
            f"<p><b>Crop-size mismatch:</b> this dataset's crops are {params['data_crop_shape']} "
            "voxels; they were resampled (trilinear) to the network's size, so the features "
            "describe resized images.</p>"
        )
    return "Pretrained feature extractor", text


def render_recipe(recipe: Recipe, changed: Sequence[str], gaps: Sequence[str]) -> tuple[str, str]:
    """Render the section that names the recipe of the run and how the run departed from it.

    Parameters
    ----------
    recipe : Recipe
        The recipe (``--recipe``).
    changed : sequence of str
        The recipe's options that the configuration file or the command line changed.
    gaps : sequence of str
        Settings of the recipe that the participant-level outputs lack.

    Returns
    -------
    tuple of (str, str)
        The section's heading and HTML body.
    """

    def items(lines: Sequence[str]) -> str:
        return "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>"

    body = [
        f"<p><b>{html.escape(recipe.title)}</b></p>",
        f"<p>{html.escape(recipe.summary)}</p>",
        "<p>Deviations from the recipe (options changed by the configuration file or the "
        "command line):</p>" + items(changed)
        if changed
        else "<p>No deviation from the recipe.</p>",
    ]
    if gaps:
        body.append(
            "<p>Settings of the recipe the participant-level outputs lack:</p>" + items(gaps)
        )
    if recipe.not_reproduced:
        body.append("<p>What of the paper this recipe does not reproduce:</p>")
        body.append(items(recipe.not_reproduced))
    return f"Recipe: {recipe.name}", "".join(body)


def render_group_report(
    participants: pd.DataFrame,
    demographics: pd.DataFrame,
    tests: pd.DataFrame,
    exclusions: pd.DataFrame,
    group_column: str,
    features: pd.DataFrame | None = None,
    analyses: Sequence[tuple[str, str]] = (),
    characteristics: pd.DataFrame | None = None,
) -> str:
    """Render the group report.

    Parameters
    ----------
    participants : pandas.DataFrame
        The assembled group table, one row per subject.
    demographics : pandas.DataFrame
        From :func:`bids_app.statistics.demographics.demographics_by_group`.
    tests : pandas.DataFrame
        From :func:`bids_app.statistics.demographics.demographic_tests`.
    exclusions : pandas.DataFrame
        Subjects left out, with the reason (columns ``subject, reason``).
    group_column : str
        The grouping column.
    features : pandas.DataFrame, optional
        One row per feature family read (``family, sessions, columns, missing``).
    analyses : sequence of (str, str)
        Further sections (title, HTML): statistics, classification, external validation.
    characteristics : pandas.DataFrame, optional
        From :func:`bids_app.statistics.demographics.characteristics_by_group`.

    Returns
    -------
    str
        A self-contained HTML document.
    """
    n_sessions = int(participants["n_sessions"].sum()) if "n_sessions" in participants else 0
    overview = (
        f"<p>{len(participants)} subjects ({n_sessions} sessions) in the analysis; "
        f"{len(exclusions)} left out. Groups from column <code>{html.escape(group_column)}"
        "</code>.</p>"
    )
    sections = [("Overview", overview), ("Demographics by group", table_html(demographics))]
    if characteristics is not None and len(characteristics):
        sections.append(
            (
                "Patient characteristics: subjects (%) by sex and age band (Turrisi 2024 Table 1)",
                _characteristics_table(characteristics),
            )
        )
    if "age" in participants:
        sections.append(("Age by group", _age_figure(participants, group_column)))
        sections.append(
            (
                "Age against a normal distribution, by group (Turrisi 2024 Figure 2)",
                _age_qq_figure(participants, group_column),
            )
        )
    sections.append(
        (
            "Group differences (Kolmogorov-Smirnov for age; Pearson's χ², or Fisher's exact when "
            "an expected count is below 5, for sex)",
            table_html(tests) if len(tests) else "<p>Not enough data for the tests.</p>",
        )
    )
    if features is not None and len(features):
        sections.append(("Participant-level features read", table_html(features)))
    sections.extend(analyses)
    if len(exclusions):
        sections.append(("Left out", table_html(exclusions)))
    columns = [c for c in participants.columns if c != "participant_id"]
    sections.append(("Participants", table_html(participants[["participant_id", *columns]])))
    return page("NeuroStrat group report", sections, f"NeuroStrat {__version__}")

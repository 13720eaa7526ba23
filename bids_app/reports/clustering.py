"""Figures and report sections of the patients' clusters and their survival (Milella 2023)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import pandas as pd

from bids_app.derivatives.naming import group_path
from bids_app.group.clustering import CONTROLS, ClusteringResult, SurvivalResult
from bids_app.reports.html import ReportPart, figure_html, table_html


def scatter_figure(scaled: pd.DataFrame, labels: pd.Series) -> plt.Figure:
    """Plot the patients in the scaled metric space, one panel per pair of metrics.

    Parameters
    ----------
    scaled : pandas.DataFrame
        The min-max scaled metrics.
    labels : pandas.Series
        Cluster of every patient.

    Returns
    -------
    matplotlib.figure.Figure
        The scatter plots, coloured by cluster.
    """
    columns = list(scaled.columns)
    pairs = [(a, b) for i, a in enumerate(columns) for b in columns[i + 1 :]] or [
        (columns[0], columns[0])
    ]
    figure, axes = plt.subplots(1, len(pairs), figsize=(4 * len(pairs), 3.6), squeeze=False)
    for axis, (a, b) in zip(axes[0], pairs, strict=True):
        for label, part in scaled.groupby(labels):
            axis.scatter(part[a], part[b], s=14, label=f"cluster {label}")
        axis.set(xlabel=a, ylabel=b)
    axes[0][0].legend(fontsize=7)
    figure.suptitle("Patients in the scaled metric space")
    figure.tight_layout()
    return figure


def silhouette_figure(per_subject: pd.Series, labels: pd.Series) -> plt.Figure:
    """Silhouette of every patient, sorted within each cluster.

    Parameters
    ----------
    per_subject : pandas.Series
        Silhouette of every patient.
    labels : pandas.Series
        Cluster of every patient.

    Returns
    -------
    matplotlib.figure.Figure
        Horizontal bars, the mean as a dotted line.
    """
    figure, axis = plt.subplots(figsize=(5, 3.6))
    start = 0
    for label in sorted(labels.unique()):
        values = per_subject[labels == label].sort_values()
        axis.barh(range(start, start + len(values)), values, height=1.0, label=f"{label}")
        start += len(values) + 2
    axis.axvline(per_subject.mean(), color="grey", linestyle=":")
    axis.set(xlabel="silhouette", yticks=[], title="Silhouette per patient, by cluster")
    axis.legend(fontsize=7, title="cluster")
    figure.tight_layout()
    return figure


def km_figure(curves: pd.DataFrame) -> plt.Figure:
    """Kaplan-Meier curves by cluster with their confidence bands.

    Parameters
    ----------
    curves : pandas.DataFrame
        ``group, time, survival, ci_lower, ci_upper``.

    Returns
    -------
    matplotlib.figure.Figure
        One step curve per cluster.
    """
    figure, axis = plt.subplots(figsize=(6, 4))
    for group, part in curves.groupby("group"):
        axis.step(part["time"], part["survival"], where="post", label=f"cluster {group}")
        axis.fill_between(part["time"], part["ci_lower"], part["ci_upper"], step="post", alpha=0.15)
    axis.set(xlabel="time", ylabel="survival", ylim=(0, 1.02), title="Kaplan-Meier by cluster")
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def emm_figure(ancova_table: pd.DataFrame, groups: Sequence[str]) -> plt.Figure:
    """Estimated marginal mean ± SD of every metric per group (Milella 2023, Fig. 1).

    Milella 2023's Fig. 1 plots, per metric, the EMMs adjusted for age and sex with error bars of
    the SDs (not the EMMs' standard errors), the controls' EMM and SD as black dotted lines.

    Parameters
    ----------
    ancova_table : pandas.DataFrame
        The output of :func:`bids_app.statistics.ancova.ancova`: one row per metric with
        ``feature``, ``emm_<group>``, ``sd_<group>`` and ``n_<group>``.
    groups : sequence of str
        The groups to plot, in order; the controls also span the panel as dotted lines.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per metric, a point with a ± SD bar per group, groups labelled with their n.
    """
    figure, axes = plt.subplots(
        1, len(ancova_table), figsize=(3.2 * len(ancova_table), 3.6), squeeze=False
    )
    for axis, (_, row) in zip(axes[0], ancova_table.iterrows(), strict=True):
        for x, group in enumerate(groups):
            emm, sd = row[f"emm_{group}"], row[f"sd_{group}"]
            color = "black" if group == CONTROLS else f"C{x}"
            axis.errorbar(x, emm, yerr=sd, fmt="o", color=color, capsize=4)
            if group == CONTROLS:
                for level, width in ((emm, 1.0), (emm - sd, 0.6), (emm + sd, 0.6)):
                    axis.axhline(level, color="black", linestyle=":", linewidth=width)
        names = [group if group == CONTROLS else f"cluster {group}" for group in groups]
        axis.set_xticks(
            range(len(groups)),
            [
                f"{name}\nn={row[f'n_{group}']:.0f}"
                for name, group in zip(names, groups, strict=True)
            ],
            fontsize=8,
        )
        axis.set(xlim=(-0.5, len(groups) - 0.5), title=row["feature"], ylabel="EMM ± SD")
    figure.suptitle("Estimated marginal means (age- and sex-adjusted) ± SD")
    figure.tight_layout()
    return figure


def profile_table(profiles: pd.DataFrame) -> pd.DataFrame:
    """Lay the cluster profiles out as Milella 2023's Table: one row per variable (and level).

    Parameters
    ----------
    profiles : pandas.DataFrame
        From :func:`bids_app.statistics.demographics.compare_groups`.

    Returns
    -------
    pandas.DataFrame
        Columns ``variable``, ``level``, ``cluster <label>`` per cluster (``median (q1-q3)`` of
        a continuous variable, ``count (percent %)`` of a categoric level) and ``tests`` (every
        comparison's p-value, on the variable's first row).
    """
    summary = profiles[profiles["row_type"] == "summary"].copy()
    continuous = summary["median"].notna() | summary["level"].isna()
    summary["text"] = (
        summary["median"].map("{:.3g}".format)
        + " ("
        + summary["q1"].map("{:.3g}".format)
        + "-"
        + summary["q3"].map("{:.3g}".format)
        + ")"
    )
    counted = (
        summary["count"].map("{:.0f}".format)
        + " ("
        + summary["percent"].map("{:.0f}".format)
        + " %)"
    )
    summary["text"] = summary["text"].where(continuous, counted)
    summary["level"] = summary["level"].fillna("").astype(str)
    order = list(dict.fromkeys(summary["variable"]))
    wide = summary.pivot_table(
        index=["variable", "level"], columns="groups", values="text", aggfunc="first", sort=False
    ).reset_index()
    wide.columns.name = None
    wide = wide.rename(columns={g: f"cluster {g}" for g in summary["groups"].unique()})
    wide = wide.sort_values("variable", key=lambda v: v.map(order.index), kind="stable")
    tests = profiles[profiles["row_type"] == "test"]
    text = tests["groups"] + ": p = " + tests["p_value"].map("{:.3g}".format)
    by_variable = text.groupby(tests["variable"]).agg("; ".join)
    first = ~wide["variable"].duplicated()
    wide["tests"] = wide["variable"].map(by_variable).where(first, "")
    return wide.reset_index(drop=True)


def render_clustering(result: ClusteringResult) -> ReportPart:
    """Render the clusters, their profiles and their survival.

    Parameters
    ----------
    result : ClusteringResult
        From :func:`bids_app.group.clustering.run_clustering`.

    Returns
    -------
    ReportPart
        The sections, the EMM and Kaplan-Meier figures.
    """
    part = ReportPart()
    volumes = result.volumes
    excluded = group_path("clustering_exclusions").name
    silhouette_text = (
        f"mean silhouette {result.silhouette:.2f}"
        if result.silhouette is not None
        else "one cluster: no silhouette"
    )
    part.sections.append(
        (
            "Clustering of the patients (Milella 2023)",
            f"<p>{len(result.scaled)} patients clustered on {', '.join(result.features)} "
            f"({'TIV-corrected: ' + ', '.join(volumes) + '; ' if volumes else ''}min-max "
            f"scaled); BIC chose k = {result.k}; {result.method}; {silhouette_text}. "
            f"{len(result.exclusions)} left out (see {excluded}).</p>"
            + table_html(result.bic)
            + figure_html(scatter_figure(result.scaled, result.labels), "clusters")
            + (
                figure_html(silhouette_figure(result.silhouettes, result.labels), "silhouette")
                if result.silhouettes is not None
                else ""
            ),
        )
    )
    emm = part.figure(
        emm_figure(result.ancova, result.emm_groups),
        "estimated marginal means by cluster",
        "figure_clusters_emm",
    )
    profiles = (
        "<p>No clinical variable of the profile (age, sex, ALSFRS-R, disease duration, "
        "progression rate, onset-to-diagnosis interval, site of onset, phenotype, El Escorial "
        "category...) in participants.tsv.</p>"
        if result.profiles is None
        else "<p>Median (IQR) or count (%) per cluster; Mann-Whitney U and χ² or Fisher's "
        "exact tests between clusters, Kruskal-Wallis and χ²/Fisher over all of them with more "
        f"than two (see {group_path('cluster_profiles').name}). The progression rate is "
        "(48 − ALSFRS-R) / months from onset.</p>" + table_html(profile_table(result.profiles))
    )
    part.sections.append(
        ("Cluster profiles and metrics", profiles + table_html(result.ancova) + emm)
    )
    if result.survival is not None:
        part.sections.append(_survival_section(result.survival, part))
    return part


def _survival_section(survival: SurvivalResult, part: ReportPart) -> tuple[str, str]:
    curves = part.figure(km_figure(survival.curves), "Kaplan-Meier", "figure_survival_km")
    if survival.logrank is None or survival.odds_ratios is None:
        return (
            "Survival of the patients (Kaplan-Meier; one cluster, nothing to compare)",
            curves + table_html(survival.medians),
        )
    return (
        "Survival by cluster (Kaplan-Meier, log-rank; Milella 2023)",
        curves
        + table_html(survival.medians)
        + table_html(survival.logrank)
        + "<h3>Short versus long survivors: odds ratios</h3>"
        + table_html(survival.odds_ratios),
    )

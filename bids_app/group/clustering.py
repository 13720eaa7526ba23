"""Group-level clustering of the patients, cluster profiles and survival (seed 002).

The thin layer between the configuration and :mod:`bids_app.statistics.clustering` /
:mod:`bids_app.statistics.survival`: it builds one row per participant (first session) with
the clustering metrics, corrects volumes for TIV by the residual method (fitted on the
controls), scales them to 0-1, chooses k by BIC, clusters the patients (controls kept aside as
the reference), and writes the cluster table, the profiles, the ANCOVA of the metrics between
clusters and against the controls, Kaplan-Meier curves with log-rank tests and the odds ratios
of long versus short survival.

The recipe ``milella2023`` is the clustering of Milella et al. 2023: precentral and
paracentral cortical thickness, averaged pair-wise over the hemispheres, and the TIV-corrected
medulla oblongata volume.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import pandas as pd

from bids_app.derivatives.writer import DerivativesWriter
from bids_app.errors import DataError
from bids_app.group.statistics import first_sessions
from bids_app.reports.html import figure_html, table_html
from bids_app.statistics.ancova import ancova
from bids_app.statistics.clustering import (
    choose_k_by_bic,
    cluster,
    minmax_scale,
    prepare_features,
    residual_tiv_correction,
    silhouette,
)
from bids_app.statistics.demographics import compare_groups
from bids_app.statistics.survival import (
    kaplan_meier_by_group,
    logrank_tests,
    long_short_survivors,
    median_survival,
    odds_ratios,
)

LOGGER = logging.getLogger("bids_app.group")

#: Seed 002's clustering metrics: family → columns (thickness pair-wise means, medulla volume).
RECIPES: dict[str, dict[str, tuple[str, ...]]] = {
    "milella2023": {"thickness": ("precentral", "paracentral"), "volumes": ("medulla",)},
}
#: Name of the controls' group in the cluster tables.
CONTROLS = "controls"
#: Clinical variables described per cluster when present (seed 002's profile table).
PROFILE_CONTINUOUS = ("age", "alsfrs_r", "disease_duration", "edss", "survival_months")
PROFILE_CATEGORICAL = ("sex", "site", "onset")


class ClusteringError(DataError):
    """The clustering cannot run as asked (the message says why and what to do)."""


def clustering_metrics(
    tables: Mapping[str, pd.DataFrame], features: Sequence[str]
) -> tuple[pd.DataFrame, list[str], pd.Series | None]:
    """One row per participant with the clustering metrics (first session) and the TIV.

    Parameters
    ----------
    tables : mapping of str to pandas.DataFrame
        Family to its stacked session table.
    features : sequence of str
        A recipe name (``"milella2023"``) or column names of the feature tables.

    Returns
    -------
    metrics : pandas.DataFrame
        Index ``participant_id``; one column per metric.
    volumes : list of str
        The metrics that are volumes (corrected for TIV).
    tiv : pandas.Series or None
        TIV per participant, when the volumes were computed.

    Raises
    ------
    ClusteringError
        When a metric is in no feature table.
    """
    wanted: dict[str, tuple[str, ...]] = {}
    if len(features) == 1 and features[0] in RECIPES:
        wanted = RECIPES[features[0]]
    else:
        for name in features:
            family = next((f for f, t in tables.items() if name in t.columns), None)
            if family is None:
                raise ClusteringError(
                    f"--cluster-features: {name!r} is in no participant-level feature table "
                    f"(families read: {sorted(tables)}); use a column name or the recipe 002"
                )
            wanted[family] = (*wanted.get(family, ()), name)
    columns = []
    for family, names in wanted.items():
        if family not in tables:
            raise ClusteringError(
                f"--cluster-features needs the {family} features: run the participant level "
                f"with --features {family}"
            )
        table = first_sessions(tables[family]).set_index("participant_id")
        columns.append(table[list(names)])
    metrics = pd.concat(columns, axis=1, join="outer")
    tiv = None
    if "volumes" in tables and "tiv" in tables["volumes"]:
        tiv = first_sessions(tables["volumes"]).set_index("participant_id")["tiv"]
    return metrics, list(wanted.get("volumes", ())), tiv


def _scatter(scaled: pd.DataFrame, labels: pd.Series) -> plt.Figure:
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


def _silhouette_figure(per_subject: pd.Series, labels: pd.Series) -> plt.Figure:
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


def _km_figure(curves: pd.DataFrame) -> plt.Figure:
    figure, axis = plt.subplots(figsize=(6, 4))
    for group, part in curves.groupby("group"):
        axis.step(part["time"], part["survival"], where="post", label=f"cluster {group}")
        axis.fill_between(part["time"], part["ci_lower"], part["ci_upper"], step="post", alpha=0.15)
    axis.set(xlabel="time", ylabel="survival", ylim=(0, 1.02), title="Kaplan-Meier by cluster")
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def _emm_figure(ancova_table: pd.DataFrame, groups: Sequence[str]) -> plt.Figure:
    """Estimated marginal mean ± SD of every metric per group (seed 002, Fig. 1).

    Seed 002's Fig. 1 plots, per metric, the EMMs adjusted for age and sex with error bars of
    the SDs (not the EMMs' standard errors), the controls' EMM and SD as black dotted lines.

    Parameters
    ----------
    ancova_table : pandas.DataFrame
        The output of :func:`bids_app.statistics.ancova.ancova`: one row per metric with
        ``feature``, ``emm_<group>``, ``sd_<group>`` and ``n_<group>``.
    groups : sequence of str
        The groups to plot, in order; :data:`CONTROLS` also spans the panel as dotted lines.

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


def run_clustering(
    tables: Mapping[str, pd.DataFrame],
    participants: pd.DataFrame,
    group_column: str,
    control_label: str,
    features: Sequence[str],
    method: str,
    survival: tuple[str, str],
    seed: int,
    writer: DerivativesWriter,
) -> list[tuple[str, str]]:
    """Cluster the patients, describe the clusters and compare their survival.

    Parameters
    ----------
    tables : mapping of str to pandas.DataFrame
        Family to its stacked session table.
    participants : pandas.DataFrame
        The group table (``participant_id``, the group, age, sex, clinical columns).
    group_column : str
        The diagnostic group; rows equal to ``control_label`` are the controls.
    control_label : str
        Label of the controls (kept aside as the reference).
    features : sequence of str
        The recipe (``["milella2023"]``) or metric columns.
    method : {"gmm", "kmeans", "agglomerative"}
        Clustering method; k comes from the Gaussian mixture's BIC.
    survival : tuple of str
        Columns of the time and the event (1 = event, 0 = censored).
    seed : int
        Random state of the mixture and k-means.
    writer : DerivativesWriter
        The output dataset.

    Returns
    -------
    list of (str, str)
        Report sections.

    Raises
    ------
    ClusteringError
        For absent metrics or too few patients.
    """
    metrics, volumes, tiv = clustering_metrics(tables, features)
    clinical = participants.set_index("participant_id")
    groups = clinical[group_column].reindex(metrics.index)
    controls = groups == control_label
    if volumes:
        if tiv is None:
            raise ClusteringError("the TIV correction needs the volumes family")
        metrics[volumes] = residual_tiv_correction(
            metrics[volumes], tiv.reindex(metrics.index), controls if controls.sum() >= 3 else None
        )
    patients, exclusions = prepare_features(metrics[~controls & groups.notna()], metrics.columns)
    scaled = minmax_scale(patients)
    try:
        bic, k = choose_k_by_bic(scaled, random_state=seed)
        labels = cluster(scaled, method=method, k=k, random_state=seed)
    except ValueError as exc:
        raise ClusteringError(f"clustering of {len(scaled)} patients: {exc}") from exc
    params = {
        "features": list(metrics.columns),
        "tiv_corrected": volumes,
        "method": method,
        "k": int(k),
        "reference": "controls" if controls.sum() >= 3 else "all",
    }
    table = pd.DataFrame({"cluster": labels}).join(patients).join(scaled.add_suffix("_scaled"))
    sections = []
    if k > 1:
        overall, per_cluster, per_subject = silhouette(scaled, labels)
        table["silhouette"] = per_subject
        writer.write_table(
            per_cluster, writer.group_file("clustering_silhouette", ".tsv"), params=params
        )
        silhouette_text = f"mean silhouette {overall:.2f}"
    else:
        silhouette_text = "one cluster: no silhouette"
    writer.write_table(table.reset_index(), writer.group_file("clusters", ".tsv"), params=params)
    writer.write_table(bic, writer.group_file("clustering_bic", ".tsv"), params=params)
    writer.write_table(exclusions.reset_index(), writer.group_file("clustering_exclusions", ".tsv"))
    sections.append(
        (
            "Clustering of the patients (seed 002)",
            f"<p>{len(scaled)} patients clustered on {', '.join(metrics.columns)} "
            f"({'TIV-corrected: ' + ', '.join(volumes) + '; ' if volumes else ''}min-max "
            f"scaled); BIC chose k = {k}; {method}; {silhouette_text}. "
            f"{len(exclusions)} left out (see clustering_exclusions.tsv).</p>"
            + table_html(bic)
            + figure_html(_scatter(scaled, labels), "clusters")
            + (
                figure_html(_silhouette_figure(table["silhouette"], labels), "silhouette")
                if k > 1
                else ""
            ),
        )
    )
    described = clinical.join(labels, how="inner")
    profiles = compare_groups(
        described,
        "cluster",
        [c for c in PROFILE_CONTINUOUS if c in described],
        [c for c in PROFILE_CATEGORICAL if c in described],
    )
    writer.write_table(profiles, writer.group_file("cluster_profiles", ".tsv"), params=params)
    compared = metrics.join(clinical[[c for c in ("age", "sex") if c in clinical]])
    compared["cluster"] = labels.astype("string").reindex(compared.index)
    compared.loc[controls[controls].index, "cluster"] = CONTROLS
    model = ancova(
        compared, list(metrics.columns), "cluster", [c for c in ("age", "sex") if c in compared]
    )
    writer.write_table(model, writer.group_file("cluster_ancova", ".tsv"), params=params)
    plotted = [CONTROLS, *(str(label) for label in sorted(labels.unique()))]
    emm_figure = _emm_figure(model, [g for g in plotted if f"emm_{g}" in model])
    writer.write_figure(emm_figure, "clusters_emm")
    sections.append(
        (
            "Cluster profiles and metrics",
            table_html(profiles[profiles["row_type"] == "test"])
            + table_html(model)
            + figure_html(emm_figure, "estimated marginal means by cluster"),
        )
    )
    time_column, event_column = survival
    if time_column in described and event_column in described:
        sections += _survival(described, labels, time_column, event_column, params, writer)
    return sections


def _survival(
    described: pd.DataFrame,
    labels: pd.Series,
    time_column: str,
    event_column: str,
    params: dict,
    writer: DerivativesWriter,
) -> list[tuple[str, str]]:
    time, event = described[time_column], described[event_column]
    try:
        curves = kaplan_meier_by_group(time, event, labels)
        medians = median_survival(time, event, labels)
    except ValueError as exc:
        raise ClusteringError(f"survival ({time_column}, {event_column}): {exc}") from exc
    writer.write_table(curves, writer.group_file("survival_km", ".tsv"), params=params)
    writer.write_table(medians, writer.group_file("survival_median", ".tsv"), params=params)
    figure = _km_figure(curves)
    writer.write_figure(figure, "survival_km")
    if labels.nunique() < 2:
        # one cluster: the patients' survival is described, there is nothing to compare
        return [
            (
                "Survival of the patients (Kaplan-Meier; one cluster, nothing to compare)",
                figure_html(figure, "Kaplan-Meier") + table_html(medians),
            )
        ]
    try:
        tests = logrank_tests(time, event, labels)
        survivors, _ = long_short_survivors(time, event)
    except ValueError as exc:
        raise ClusteringError(f"survival ({time_column}, {event_column}): {exc}") from exc
    odds = odds_ratios(
        pd.DataFrame({"survivor": survivors, "cluster": labels}),
        "survivor",
        ["cluster"],
        positive="short",
        categorical=["cluster"],
    )
    for name, table in (("survival_logrank", tests), ("survival_odds_ratios", odds)):
        writer.write_table(table, writer.group_file(name, ".tsv"), params=params)
    return [
        (
            "Survival by cluster (Kaplan-Meier, log-rank; seed 002)",
            figure_html(figure, "Kaplan-Meier")
            + table_html(medians)
            + table_html(tests)
            + "<h3>Short versus long survivors: odds ratios</h3>"
            + table_html(odds),
        )
    ]

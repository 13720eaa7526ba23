"""Group-level clustering of the patients, cluster profiles and survival (Milella 2023).

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
from dataclasses import dataclass

import pandas as pd

from bids_app.derivatives.writer import DerivativesWriter
from bids_app.errors import DataError
from bids_app.group.statistics import first_sessions
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

#: Milella 2023's clustering metrics: family → columns (thickness pair-wise means, medulla volume).
RECIPES: dict[str, dict[str, tuple[str, ...]]] = {
    "milella2023": {"thickness": ("precentral", "paracentral"), "volumes": ("medulla",)},
}
#: Name of the controls' group in the cluster tables.
CONTROLS = "controls"
#: Clinical variables described per cluster when present (Milella 2023's profile table).
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


@dataclass(frozen=True)
class SurvivalResult:
    """Survival of the clustered patients.

    Parameters
    ----------
    curves : pandas.DataFrame
        Kaplan-Meier curves by cluster (``group, time, survival, ci_lower, ci_upper``).
    medians : pandas.DataFrame
        Median survival by cluster.
    logrank : pandas.DataFrame or None
        Log-rank tests between clusters (None with one cluster: nothing to compare).
    odds_ratios : pandas.DataFrame or None
        Odds of short survival by cluster (None with one cluster).
    """

    curves: pd.DataFrame
    medians: pd.DataFrame
    logrank: pd.DataFrame | None = None
    odds_ratios: pd.DataFrame | None = None


@dataclass(frozen=True)
class ClusteringResult:
    """The clusters of the patients, their profiles and their survival.

    Parameters
    ----------
    features : tuple of str
        The clustering metrics.
    volumes : tuple of str
        The metrics corrected for TIV.
    method : str
        The clustering method.
    k : int
        Clusters (chosen by BIC).
    bic : pandas.DataFrame
        BIC for every k.
    scaled : pandas.DataFrame
        The patients' min-max scaled metrics (index ``participant_id``).
    labels : pandas.Series
        Cluster of every patient.
    silhouette : float or None
        Mean silhouette (None with one cluster).
    silhouettes : pandas.Series or None
        Silhouette of every patient (None with one cluster).
    exclusions : pandas.DataFrame
        Patients left out.
    profiles : pandas.DataFrame
        Clinical profile of every cluster (``row_type`` ``test`` rows: the comparisons).
    ancova : pandas.DataFrame
        ANCOVA of the metrics between the clusters and the controls.
    emm_groups : tuple of str
        The groups of the EMM figure, controls first.
    survival : SurvivalResult or None
        When the time and event columns are present.
    """

    features: tuple[str, ...]
    volumes: tuple[str, ...]
    method: str
    k: int
    bic: pd.DataFrame
    scaled: pd.DataFrame
    labels: pd.Series
    silhouette: float | None
    silhouettes: pd.Series | None
    exclusions: pd.DataFrame
    profiles: pd.DataFrame
    ancova: pd.DataFrame
    emm_groups: tuple[str, ...]
    survival: SurvivalResult | None = None


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
) -> ClusteringResult:
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
    ClusteringResult
        Clusters, profiles, ANCOVA and survival.

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
    overall, silhouettes = None, None
    if k > 1:
        overall, per_cluster, silhouettes = silhouette(scaled, labels)
        table["silhouette"] = silhouettes
        silhouettes = table["silhouette"]
        writer.write_group_table(per_cluster, "clustering_silhouette", params=params)
    writer.write_group_table(table.reset_index(), "clusters", params=params)
    writer.write_group_table(bic, "clustering_bic", params=params)
    writer.write_group_table(exclusions.reset_index(), "clustering_exclusions")
    described = clinical.join(labels, how="inner")
    profiles = compare_groups(
        described,
        "cluster",
        [c for c in PROFILE_CONTINUOUS if c in described],
        [c for c in PROFILE_CATEGORICAL if c in described],
    )
    writer.write_group_table(profiles, "cluster_profiles", params=params)
    compared = metrics.join(clinical[[c for c in ("age", "sex") if c in clinical]])
    compared["cluster"] = labels.astype("string").reindex(compared.index)
    compared.loc[controls[controls].index, "cluster"] = CONTROLS
    model = ancova(
        compared, list(metrics.columns), "cluster", [c for c in ("age", "sex") if c in compared]
    )
    writer.write_group_table(model, "cluster_ancova", params=params)
    plotted = [CONTROLS, *(str(label) for label in sorted(labels.unique()))]
    time_column, event_column = survival
    survived = None
    if time_column in described and event_column in described:
        survived = _survival(described, labels, time_column, event_column, params, writer)
    return ClusteringResult(
        features=tuple(metrics.columns),
        volumes=tuple(volumes),
        method=method,
        k=int(k),
        bic=bic,
        scaled=scaled,
        labels=labels,
        silhouette=None if overall is None else float(overall),
        silhouettes=silhouettes,
        exclusions=exclusions,
        profiles=profiles,
        ancova=model,
        emm_groups=tuple(g for g in plotted if f"emm_{g}" in model),
        survival=survived,
    )


def _survival(
    described: pd.DataFrame,
    labels: pd.Series,
    time_column: str,
    event_column: str,
    params: dict,
    writer: DerivativesWriter,
) -> SurvivalResult:
    time, event = described[time_column], described[event_column]
    try:
        curves = kaplan_meier_by_group(time, event, labels)
        medians = median_survival(time, event, labels)
    except ValueError as exc:
        raise ClusteringError(f"survival ({time_column}, {event_column}): {exc}") from exc
    writer.write_group_table(curves, "survival_km", params=params)
    writer.write_group_table(medians, "survival_median", params=params)
    if labels.nunique() < 2:
        # one cluster: the patients' survival is described, there is nothing to compare
        return SurvivalResult(curves, medians)
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
    writer.write_group_table(tests, "survival_logrank", params=params)
    writer.write_group_table(odds, "survival_odds_ratios", params=params)
    return SurvivalResult(curves, medians, tests, odds)

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
from pathlib import Path

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
from bids_app.statistics.demographics import compare_groups, progression_rate
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
#: Clinical variables of the profile table (Milella 2023, Table): the name in the table and the
#: participants.tsv columns it is read from, the first present winning. ``progression_rate``
#: (ΔFRS) is computed from ``alsfrs_r`` and the disease duration when no column gives it.
PROFILE_CONTINUOUS: dict[str, tuple[str, ...]] = {
    "age": ("age",),
    "age_at_onset": ("age_at_onset",),
    "alsfrs_r": ("alsfrs_r",),
    "disease_duration": ("disease_duration", "disease_duration_months"),
    "progression_rate": ("progression_rate",),
    "onset_to_diagnosis": ("onset_to_diagnosis_months", "odi"),
    "edss": ("edss",),
    "survival_months": ("survival_months",),
}
PROFILE_CATEGORICAL: dict[str, tuple[str, ...]] = {
    "sex": ("sex",),
    "site": ("site",),
    "onset": ("onset", "onset_site", "site_of_onset"),
    "phenotype": ("phenotype",),
    "el_escorial": ("el_escorial",),
}


class ClusteringError(DataError):
    """The clustering cannot run as asked (the message says why and what to do)."""


def clustering_metrics(
    tables: Mapping[str, pd.DataFrame],
    features: Sequence[str],
    user: pd.DataFrame | None = None,
    source: Path | None = None,
) -> tuple[pd.DataFrame, list[str], pd.Series | None]:
    """One row per participant with the clustering metrics (first session) and the TIV.

    Metrics come from the participant-level feature tables or from the user's table
    (``--cluster-table``), which is looked up first. With a user table, no ``features`` means
    all its numeric columns, used as given; the recipe ``milella2023`` then reads its three
    metrics and ``tiv`` from the user table, and corrects ``medulla`` for the TIV as it does
    with the participant-level volumes.

    Parameters
    ----------
    tables : mapping of str to pandas.DataFrame
        Family to its stacked session table.
    features : sequence of str
        A recipe name (``"milella2023"``) or column names of the feature tables or of
        ``user``; empty: every numeric column of ``user``.
    user : pandas.DataFrame, optional
        The user's metrics (:func:`bids_app.inputs.cluster_table.read_cluster_table`), index
        ``participant_id``.
    source : Path, optional
        The user table's file, for the messages.

    Returns
    -------
    metrics : pandas.DataFrame
        Index ``participant_id``; one column per metric.
    volumes : list of str
        The metrics that are volumes (corrected for TIV).
    tiv : pandas.Series or None
        TIV per participant, when the volumes were computed (or given by the user table).

    Raises
    ------
    ClusteringError
        When a metric is in no table, or a user-table metric is not numeric.
    """
    recipe = RECIPES.get(features[0]) if len(features) == 1 else None
    if user is not None and (not features or recipe is not None):
        return _user_metrics(user, source, features[0] if recipe else None)
    wanted: dict[str, tuple[str, ...]] = dict(recipe or {})
    mine: list[str] = []  # the user table's metrics
    for name in () if recipe else features:
        if user is not None and name in user.columns:
            mine.append(name)
            continue
        family = next((f for f, t in tables.items() if name in t.columns), None)
        if family is None:
            where = f" nor in {source}" if user is not None else ""
            raise ClusteringError(
                f"--cluster-features: {name!r} is in no participant-level feature table "
                f"(families read: {sorted(tables)}){where}; use a column name or the recipe 002"
            )
        wanted[family] = (*wanted.get(family, ()), name)
    columns = [_numeric(user, mine, source)] if mine else []
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


def _user_metrics(
    user: pd.DataFrame, source: Path | None, recipe: str | None
) -> tuple[pd.DataFrame, list[str], pd.Series | None]:
    """Return the user table's metrics: every numeric column, or a recipe's and the TIV."""
    if recipe is None:
        numeric = [c for c in user.columns if pd.api.types.is_float_dtype(user[c])]
        if not numeric:
            raise ClusteringError(
                f"{source}: no numeric column to cluster on (columns {list(user.columns)}); add "
                "metric columns of numbers or n/a"
            )
        return user[numeric], [], None
    needed = [name for names in RECIPES[recipe].values() for name in names]
    absent = [c for c in (*needed, "tiv") if c not in user.columns]
    if absent:
        raise ClusteringError(
            f"{source}: the recipe {recipe} needs the columns {absent}; add them (thickness "
            "averaged over the hemispheres, the medulla volume and the TIV), or name your "
            "columns in --cluster-features"
        )
    metrics = _numeric(user, [*needed, "tiv"], source)
    return metrics[needed], list(RECIPES[recipe].get("volumes", ())), metrics["tiv"]


def _numeric(user: pd.DataFrame, columns: Sequence[str], source: Path | None) -> pd.DataFrame:
    """Return the user table's columns, checked to hold numbers (or n/a)."""
    for column in columns:
        if not pd.api.types.is_float_dtype(user[column]):
            values = user[column].dropna()
            bad = values[pd.to_numeric(values, errors="coerce").isna()]
            examples = ", ".join(f"{pid}: {value!r}" for pid, value in bad.head(3).items())
            raise ClusteringError(
                f"{source}: column {column!r} must be numeric or n/a ({examples}); fix the "
                "values or leave the column out of --cluster-features"
            )
    return user[list(columns)].copy()


def profile_variables(clinical: pd.DataFrame) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Return the clinical variables of the cluster profiles that the participants table holds.

    Each variable of :data:`PROFILE_CONTINUOUS` and :data:`PROFILE_CATEGORICAL` is read from
    the first of its accepted columns present; the progression rate ΔFRS is computed from
    ``alsfrs_r`` and the disease duration when no column gives it (Milella 2023,
    "Population").

    Parameters
    ----------
    clinical : pandas.DataFrame
        The participants' clinical columns (numeric ones as floats).

    Returns
    -------
    variables : pandas.DataFrame
        Same index; one column per variable present, under its name in the profile table.
    continuous, categorical : list of str
        The variables present of each kind.

    Raises
    ------
    ClusteringError
        If an ALSFRS-R score lies outside 0-48.
    """
    variables = pd.DataFrame(index=clinical.index)
    for name, accepted in (PROFILE_CONTINUOUS | PROFILE_CATEGORICAL).items():
        column = next((c for c in accepted if c in clinical), None)
        if column is not None:
            variables[name] = clinical[column]
    if {"alsfrs_r", "disease_duration"} <= set(variables) and "progression_rate" not in variables:
        try:
            rate = progression_rate(variables["alsfrs_r"], variables["disease_duration"])
        except ValueError as exc:
            raise ClusteringError(f"participants.tsv: {exc}; fix the score") from exc
        variables.insert(
            variables.columns.get_loc("disease_duration") + 1, "progression_rate", rate
        )
    continuous = [c for c in PROFILE_CONTINUOUS if c in variables]
    categorical = [c for c in PROFILE_CATEGORICAL if c in variables]
    return variables[continuous + categorical], continuous, categorical


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
    profiles : pandas.DataFrame or None
        Clinical profile of every cluster (``row_type`` ``test`` rows: the comparisons); None
        when the participants table holds none of the profile's variables.
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
    profiles: pd.DataFrame | None
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
    user: pd.DataFrame | None = None,
    source: Path | None = None,
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
        The recipe (``["milella2023"]``) or metric columns; empty with ``user``: all its
        numeric columns (see :func:`clustering_metrics`).
    method : {"gmm", "kmeans", "agglomerative"}
        Clustering method; k comes from the Gaussian mixture's BIC.
    survival : tuple of str
        Columns of the time and the event (1 = event, 0 = censored).
    seed : int
        Random state of the mixture and k-means.
    writer : DerivativesWriter
        The output dataset.
    user : pandas.DataFrame, optional
        The user's metrics (``--cluster-table``), index ``participant_id``.
    source : Path, optional
        The user table's file, for the messages and the provenance.

    Returns
    -------
    ClusteringResult
        Clusters, profiles, ANCOVA and survival.

    Raises
    ------
    ClusteringError
        For absent or non-numeric metrics, or too few patients.
    """
    metrics, volumes, tiv = clustering_metrics(tables, features, user, source)
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
        **({"cluster_table": str(source)} if source is not None else {}),
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
    variables, continuous, categorical = profile_variables(described)
    profiles = None
    if continuous or categorical:
        profiles = compare_groups(variables.join(labels), "cluster", continuous, categorical)
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

"""Group-level statistics: ANCOVA of every feature between groups, mean intensity histograms.

The thin layer between the configuration and :mod:`bids_app.statistics`: one row per participant
(the first session: the ANCOVA assumes independent rows), the covariates of Milella 2023 (age and
sex) plus the total intracranial volume where the volumes were computed, FDR over the features
of each family; the mean histogram per group of Turrisi 2024 Figure 3.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from bids_app.derivatives.writer import DerivativesWriter
from bids_app.statistics.ancova import ancova
from bids_app.statistics.histograms import group_histograms

LOGGER = logging.getLogger("bids_app.group")

#: Families compared feature by feature (``meshnet``: the MeshNet parcellation's volumes).
ANCOVA_FAMILIES = ("volumes", "thickness", "radiomics", "meshnet")


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


@dataclass(frozen=True)
class FamilyAncova:
    """The ANCOVA of one feature family between the groups.

    Parameters
    ----------
    family : str
        The feature family.
    table : pandas.DataFrame
        One row per feature (from :func:`bids_app.statistics.ancova.ancova`).
    covariates : tuple of str
        The model's covariates.
    """

    family: str
    table: pd.DataFrame
    covariates: tuple[str, ...]


@dataclass(frozen=True)
class StatisticsResult:
    """What the group statistics found.

    Parameters
    ----------
    ancova : tuple of FamilyAncova
        One per compared family, in :data:`ANCOVA_FAMILIES` order.
    histograms : pandas.DataFrame or None
        Mean histogram per group (``group, bin, bin_lower, bin_upper, mean, sd``), when the
        histograms were computed.
    """

    ancova: tuple[FamilyAncova, ...] = ()
    histograms: pd.DataFrame | None = None


def run_statistics(
    tables: Mapping[str, pd.DataFrame],
    participants: pd.DataFrame,
    group_column: str,
    covariates: Sequence[str],
    writer: DerivativesWriter,
) -> StatisticsResult:
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
    StatisticsResult
        The ANCOVA of every family and the mean histograms.
    """
    clinical = participants.set_index("participant_id")
    groups = clinical[group_column]
    tiv = None
    # the atlas route's TIV, else the MeshNet family's (its brain mask) with --segmentation meshnet
    source = next((f for f in ("volumes", "meshnet") if "tiv" in tables.get(f, ())), None)
    if source is not None:
        tiv = first_sessions(tables[source]).set_index("participant_id")["tiv"]
    families = []
    for family in ANCOVA_FAMILIES:
        if family not in tables:
            continue
        data = first_sessions(tables[family]).set_index("participant_id")
        # TIV is a covariate (Milella 2023 corrects for it), so not itself a compared feature
        features = [c for c in data.columns if c not in ("session_id", "tiv")]
        model_covariates = [c for c in covariates if c in clinical]
        design = data[features].join(clinical[[group_column, *model_covariates]])
        if tiv is not None:
            design = design.assign(tiv_covariate=tiv.reindex(design.index))
            model_covariates.append("tiv_covariate")
        result = ancova(design, features, group_column, model_covariates)
        params = {"group_column": group_column, "covariates": model_covariates, "fdr": "BH"}
        writer.write_group_table(result, "ancova", params=params, family=family)
        families.append(FamilyAncova(family, result, tuple(model_covariates)))
    histograms = None
    if "histogram" in tables and groups.notna().any():
        histograms = group_histograms(tables["histogram"], groups.dropna())
        writer.write_group_table(histograms, "histograms_by_group")
    return StatisticsResult(tuple(families), histograms)

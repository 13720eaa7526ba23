"""Clinical columns of the participants table, driven by each patient's severity."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bids_app.synthetic.sites import Site

_COMMON_COLUMNS: dict[str, dict[str, Any]] = {
    "participant_id": {"Description": "Unique participant identifier"},
    "site": {
        "Description": "Acquisition site (scanner); see sourcedata/ground_truth/"
        "generation.json for each site's parameters"
    },
    "diagnosis": {"Description": "Diagnostic group"},
    "age": {"Description": "Age at the first session", "Units": "year"},
    "sex": {"Description": "Sex", "Levels": {"M": "male", "F": "female"}},
}
# Clinical columns of each family (:func:`clinical_family`); "n/a" for controls.
CLINICAL_COLUMNS: dict[str, dict[str, dict[str, Any]]] = {
    "als": {
        "alsfrs_r": {
            "Description": "ALS Functional Rating Scale - Revised total score at the "
            "first session (0-48, lower is more impaired); patients "
            "only"
        },
        "disease_duration": {
            "Description": "Time from symptom onset to the first session; patients only",
            "Units": "month",
        },
        "survival_months": {
            "Description": "Time from the first session to death/tracheostomy "
            "or censoring; patients only",
            "Units": "month",
        },
        "event": {
            "Description": "Survival event indicator; patients only",
            "Levels": {"1": "death or tracheostomy", "0": "censored (alive at last follow-up)"},
        },
    },
    "ms": {
        "edss": {
            "Description": "Expanded Disability Status Scale at the first session "
            "(0-10, steps of 0.5); patients only"
        },
        "disease_duration": {
            "Description": "Time from symptom onset to the first session; patients only",
            "Units": "month",
        },
    },
}
_DIAGNOSIS_NAMES = {
    "CN": "control (no neurological disease)",
    "ALS": "amyotrophic lateral sclerosis",
    "MS_mild": "multiple sclerosis, EDSS below 4",
    "MS_severe": "multiple sclerosis, EDSS 4 or above",
}


def clinical_family(disease: str) -> str:
    """Return the clinical-column family of a disease preset.

    Parameters
    ----------
    disease : str
        ``"als"``, ``"als-bulbar"`` or ``"ms"``.

    Returns
    -------
    str
        ``"ms"`` (EDSS) or ``"als"`` (ALSFRS-R and survival), a key of :data:`CLINICAL_COLUMNS`.
    """
    return "ms" if disease == "ms" else "als"


def clinical_values(
    family: str, group_rank: int, severity: float, rng: np.random.Generator
) -> dict[str, str]:
    """Draw the clinical values of a patient, driven by severity (and so by planted atrophy).

    Parameters
    ----------
    family : str
        Clinical-column family (:func:`clinical_family`).
    group_rank : int
        The patient group's rank among patient groups (0 = mildest).
    severity : float
        The patient's severity multiplier (mean 1).
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    dict
        Column name to formatted value, for the columns of ``CLINICAL_COLUMNS[family]``.
    """
    duration = 6.0 + rng.gamma(2.0, 10.0)
    if family == "ms":
        position = float(np.clip((severity - 0.4) / 1.2 + 0.1 * rng.standard_normal(), 0, 1))
        low, high = (1.0, 3.5) if group_rank == 0 else (4.0, 7.0)
        edss = round(2 * (low + (high - low) * position)) / 2
        return {"edss": f"{edss:.1f}", "disease_duration": f"{duration * 3:.1f}"}
    # ALSFRS-R declines ~0.3-1 point/month (Kimura et al. 2006, Neurology 66:265)
    rate = 0.3 * severity * float(np.exp(0.3 * rng.standard_normal()))
    alsfrs = int(np.clip(round(48 - rate * duration), 0, 48))
    # Weibull survival, median ~30 months at average severity; uniform administrative censoring
    time_to_event = 36.0 / severity * rng.weibull(1.3)
    censor = rng.uniform(6.0, 60.0)
    return {
        "alsfrs_r": str(alsfrs),
        "disease_duration": f"{duration:.1f}",
        "survival_months": f"{min(time_to_event, censor):.1f}",
        "event": str(int(time_to_event <= censor)),
    }


def participants_columns(
    disease: str, sites: Sequence[Site], groups: Mapping[str, Mapping[str, float]]
) -> dict[str, dict[str, Any]]:
    """Describe the columns of ``participants.tsv``, in order, for ``participants.json``.

    Parameters
    ----------
    disease : str
        Disease preset; chooses the clinical columns.
    sites : sequence of Site
        The cohort's sites, listed as the levels of ``site``.
    groups : mapping
        The cohort's groups, listed as the levels of ``diagnosis``.

    Returns
    -------
    dict
        Column name to its BIDS description.
    """
    columns = {**_COMMON_COLUMNS, **CLINICAL_COLUMNS[clinical_family(disease)]}
    columns["site"] = {
        **columns["site"],
        "Levels": {
            s.name: f"{s.profile['Manufacturer']} {s.profile['ManufacturersModelName']} "
            f"{s.profile['MagneticFieldStrength']:g} T"
            for s in sites
        },
    }
    columns["diagnosis"] = {
        **columns["diagnosis"],
        "Levels": {g: _DIAGNOSIS_NAMES.get(g, f"group {g}") for g in groups},
    }
    return columns

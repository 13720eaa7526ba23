"""Synthetic ALS cohort with planted imaging subtypes and survival (the pattern of Milella 2023).

Milella et al. (Milella 2023, "Results" and "Discussion") found three radiologic clusters of ALS
patients: cortical thinning of the precentral and paracentral gyri with a spared medulla
oblongata (their cluster 3), a small medulla with spared cortex (cluster 2), and both (cluster
1), the last being older, more often female and with the shortest survival. They clustered the
patients on the pair-wise averaged thicknesses and the medulla oblongata volume corrected for
the total intracranial volume (TIV) by the residual method, min-max scaled.
:func:`make_subtype_cohort` draws such a table directly (no images), one row per subject, so
that the clustering and survival analyses of :mod:`bids_app.statistics.clustering` and
:mod:`bids_app.statistics.survival` can be checked against a known truth.

The generative model of subject ``i`` (controls have no subtype and no effect)::

    thickness[i, r] = BASE_r - AGE_SLOPE * (age[i] - 60) + shared[i] + specific[i, r]
                      - CORTICAL_EFFECT_MM * cortical[i]
    thickness[i, r, side] = thickness[i, r] + hemisphere_noise[i, r, side]
    medulla[i] = MEDULLA_ML + MEDULLA_PER_TIV * (tiv[i] - mean TIV) + medulla_noise[i]
                 - MEDULLA_EFFECT_ML * bulbar[i]

for the regions ``r`` precentral and paracentral, with ``cortical`` true for the 'cortical'
and 'both' subtypes and ``bulbar`` true for 'medulla' and 'both'. The shared term makes the two
regions' thicknesses correlate (~0.5) within a subtype, as the cortical thickness of
neighbouring regions does. Without subtypes every patient gets the planted mixture's mean
effects (two thirds of each effect), so the patients differ from the controls but form one
Gaussian cloud.

Survival (months from symptom onset to death or tracheostomy, Milella 2023's composite outcome) is
Weibull with shape ``WEIBULL_SHAPE`` and a median per subtype, shortest for 'both'; it is
censored administratively after a follow-up drawn uniformly in ``FOLLOW_UP_MONTHS`` (002
recruited patients over three years and censored them all on one date).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: The planted patient subtypes, in the order of ``proportions``.
SUBTYPES = ("cortical", "medulla", "both")

#: Controls' mean pair-wise thickness at age 60 (mm): FreeSurfer-like values for adults.
BASE_THICKNESS_MM = {"precentral": 2.55, "paracentral": 2.40}
#: Thinning per year of age (mm), and the SDs (mm) of the thickness shared by the two regions,
#: specific to each region, and of each hemisphere around the subject's mean.
AGE_SLOPE_MM = 0.004
SHARED_SD_MM = 0.06
SPECIFIC_SD_MM = 0.06
HEMISPHERE_SD_MM = 0.05
#: Mean medulla oblongata volume (mL) at the mean TIV (that of a half-male cohort), its change
#: per mL of TIV, and the SD (mL) of what TIV does not explain.
MEDULLA_ML = 4.6
MEDULLA_PER_TIV = 0.0025
MEDULLA_SD_ML = 0.25
#: TIV (mL): mean of women, the men's excess, and the SD within a sex.
TIV_ML = 1380.0
TIV_MALE_EXCESS_ML = 140.0
TIV_SD_ML = 100.0
#: Planted effects: cortical thinning (mm, ~16 %, ~4 within-subtype SDs of the pair-wise
#: averaged thickness, ~0.1 mm with age) and medulla atrophy (mL, ~22 %, 4 SDs of the
#: TIV-corrected volume). Clear rather than typical: at ~3.5 SDs (0.35 mm, 0.9 mL) the Gaussian
#: mixture still picks k = 3 on 20 of 20 seeds but the adjusted Rand index with the planted
#: subtypes falls to 0.81 on the worst seed, too close to the checks' 0.8.
CORTICAL_EFFECT_MM = 0.40
MEDULLA_EFFECT_ML = 1.0
#: Age (mean, SD in years) and probability of being female, per group; the 'both' subtype is
#: older and more often female, as Milella 2023's cluster 1 (Table).
AGE_YEARS = {"control": (57.0, 8.0), "patient": (57.0, 8.0), "both": (65.0, 7.0)}
FEMALE = {"control": 0.45, "patient": 0.40, "both": 0.65}
#: Median survival (months) per subtype and without subtypes; Weibull shape; follow-up range
#: (months). 002 reports an overall median of 47 months and 34.5 months for cluster 1.
MEDIAN_SURVIVAL_MONTHS = {"cortical": 66.0, "medulla": 56.0, "both": 28.0, "none": 48.0}
WEIBULL_SHAPE = 1.5
FOLLOW_UP_MONTHS = (30.0, 90.0)


def make_subtype_cohort(
    n_patients: int = 90,
    n_controls: int = 30,
    subtypes: bool = True,
    seed: int = 0,
    proportions: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3),
) -> tuple[pd.DataFrame, pd.Series]:
    """Draw patients with planted imaging subtypes, controls, and the patients' survival.

    Parameters
    ----------
    n_patients : int, default 90
        Number of ALS patients (Milella 2023 had 90).
    n_controls : int, default 30
        Number of controls (Milella 2023 had 25), without subtype, effect or survival.
    subtypes : bool, default True
        Plant the three subtypes of ``SUBTYPES``; False draws every patient from one
        distribution (the mixture's mean effects, one median survival): the null.
    seed : int, default 0
        Seed of the :class:`numpy.random.Generator`; the same seed gives the same cohort.
    proportions : tuple of float, default (1/3, 1/3, 1/3)
        Shares of 'cortical', 'medulla' and 'both' among the patients (counts rounded by
        largest remainder). Milella 2023 found 12 %, 57 % and 31 % (its clusters 3, 2 and 1); equal
        shares are the default because an 11-patient cluster in 90 is at the edge of what BIC
        can support, and the checks need k = 3 to be identifiable.

    Returns
    -------
    table : pandas.DataFrame
        One row per subject, patients first: ``participant_id`` (``sub-001``...),
        ``diagnosis`` (``ALS`` or ``CN``), ``age`` (years), ``sex`` (``M``/``F``), ``tiv``
        (mL), ``precentral_left``, ``precentral_right``, ``paracentral_left``,
        ``paracentral_right`` (mm), ``medulla`` (mL), ``survival_months`` and ``event`` (1.0
        death or tracheostomy, 0.0 censored; both missing for controls).
    truth : pandas.Series
        The planted subtype of each row (same index), named ``subtype``: one of ``SUBTYPES``,
        ``none`` for patients when ``subtypes`` is False, ``control`` for controls.

    Raises
    ------
    ValueError
        If a count is negative, there are no patients, or ``proportions`` are not three
        non-negative shares summing to 1.

    Examples
    --------
    >>> table, truth = make_subtype_cohort(n_patients=6, n_controls=2)
    >>> table.columns.tolist()[:5]
    ['participant_id', 'diagnosis', 'age', 'sex', 'tiv']
    >>> truth.value_counts().sort_index().to_dict()
    {'both': 2, 'control': 2, 'cortical': 2, 'medulla': 2}
    >>> bool(table.loc[truth == "control", "survival_months"].isna().all())
    True
    """
    if n_patients < 1 or n_controls < 0:
        raise ValueError(
            f"need n_patients >= 1 and n_controls >= 0, got {n_patients} and {n_controls}"
        )
    shares = np.asarray(proportions, dtype=float)
    if shares.shape != (3,) or (shares < 0).any() or not np.isclose(shares.sum(), 1.0):
        raise ValueError(f"proportions must be 3 non-negative shares summing to 1: {proportions}")
    rng = np.random.default_rng(seed)
    if subtypes:
        counts = _largest_remainder(shares * n_patients)
        labels = rng.permutation(np.repeat(SUBTYPES, counts))
    else:
        labels = np.full(n_patients, "none")
    truth = np.concatenate([labels, np.full(n_controls, "control")])
    n = truth.size

    group = np.where(truth == "both", "both", np.where(truth == "control", "control", "patient"))
    age = np.array([rng.normal(*AGE_YEARS[g]) for g in group])
    female = rng.random(n) < np.array([FEMALE[g] for g in group])
    tiv = TIV_ML + TIV_MALE_EXCESS_ML * ~female + rng.normal(0.0, TIV_SD_ML, n)

    if subtypes:
        cortical = np.isin(truth, ("cortical", "both")).astype(float)
        bulbar = np.isin(truth, ("medulla", "both")).astype(float)
    else:  # the planted mixture's mean: two of the three subtypes carry each effect
        cortical = bulbar = np.where(truth == "none", 2 / 3, 0.0)

    columns = {
        "participant_id": [f"sub-{i + 1:03d}" for i in range(n)],
        "diagnosis": np.where(truth == "control", "CN", "ALS"),
        "age": age,
        "sex": np.where(female, "F", "M"),
        "tiv": tiv,
    }
    shared = rng.normal(0.0, SHARED_SD_MM, n)
    for region, base in BASE_THICKNESS_MM.items():
        mean = (
            base
            - AGE_SLOPE_MM * (age - 60.0)
            + shared
            + rng.normal(0.0, SPECIFIC_SD_MM, n)
            - CORTICAL_EFFECT_MM * cortical
        )
        for side in ("left", "right"):
            columns[f"{region}_{side}"] = mean + rng.normal(0.0, HEMISPHERE_SD_MM, n)
    columns["medulla"] = (
        MEDULLA_ML
        + MEDULLA_PER_TIV * (tiv - (TIV_ML + TIV_MALE_EXCESS_ML / 2))
        + rng.normal(0.0, MEDULLA_SD_ML, n)
        - MEDULLA_EFFECT_ML * bulbar
    )

    medians = np.array([MEDIAN_SURVIVAL_MONTHS.get(label, np.nan) for label in truth])
    # Weibull with median m: scale = m / ln(2)^(1/shape)
    death = medians / np.log(2) ** (1 / WEIBULL_SHAPE) * rng.weibull(WEIBULL_SHAPE, n)
    follow_up = rng.uniform(*FOLLOW_UP_MONTHS, n)
    is_patient = truth != "control"
    columns["survival_months"] = np.where(is_patient, np.minimum(death, follow_up), np.nan)
    columns["event"] = np.where(is_patient, (death <= follow_up).astype(float), np.nan)
    return pd.DataFrame(columns), pd.Series(truth, name="subtype")


def _largest_remainder(quotas: np.ndarray) -> np.ndarray:
    """Round non-negative quotas to integers with the same (integer) sum."""
    counts = np.floor(quotas).astype(int)
    remainder = round(quotas.sum()) - counts.sum()
    counts[np.argsort(counts - quotas)[:remainder]] += 1
    return counts

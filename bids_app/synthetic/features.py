"""Synthetic tables of regional features with planted group, age and site effects.

The group level of NeuroStrat works on one table per cohort: a row per session, a column per
feature. :func:`make_feature_cohort` draws such a table directly (no images) so that
harmonisation, classifiers and cross-validation can be tested and benchmarked on data whose
truth is known: which features carry the diagnosis, how strongly age acts, and how each site
distorts the measurements.

The generative model of feature ``j`` in session ``t`` of subject ``i`` at site ``s`` is the one
ComBat assumes (Johnson et al. 2007, Biostatistics 8:118), an additive and a
multiplicative site effect on the residual::

    y[t, i, j] = age_effect * (age[i] - 60) / 10
                 + effect_size * positive[i] * informative[j]
                 + gamma[s, j] + delta[s, j] * (z[i, j] + e[t, i, j])

``z`` is a standard-normal subject latent whose features share a few factors, ``e`` a small
session noise (so that the sessions of one subject are correlated), ``gamma ~ N(0, site_shift²)``
and ``log(delta) ~ N(0, site_scale²)``, drawn per site and feature.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Number of latent factors shared by the features, and the share of each feature's latent
#: variance they explain (the rest is feature-specific): pairwise correlations up to ~0.3.
N_FACTORS = 3
SHARED_VARIANCE = 0.3
#: Standard deviation of the session noise, in units of the subject latent's SD (test-retest
#: correlation of a feature ~0.96 without site effects).
SESSION_NOISE_SD = 0.2
#: Age distribution in years, and the age at which the age effect is zero.
AGE_MEAN_YEARS = 60.0
AGE_SD_YEARS = 10.0


@dataclass(frozen=True)
class FeatureCohort:
    """A synthetic cohort: subjects, their session features and the planted truth.

    Attributes
    ----------
    participants : pandas.DataFrame
        One row per subject: ``participant_id`` (``sub-001``...), ``diagnosis`` (the positive
        or negative label), ``age`` (years), ``sex`` (``M``/``F``) and ``site`` (``siteA``...).
    features : pandas.DataFrame
        One row per session: ``participant_id``, ``session_id`` (``ses-01``, plus ``ses-02``
        for longitudinal subjects), then the feature columns ``f000``, ``f001``...
    informative : list of str
        The feature columns shifted in positive subjects, sorted.
    """

    participants: pd.DataFrame
    features: pd.DataFrame
    informative: list[str]


def _site_names(n_sites: int) -> list[str]:
    """Return ``siteA``, ``siteB``... for ``n_sites`` sites (at most 26)."""
    if not 1 <= n_sites <= len(string.ascii_uppercase):
        raise ValueError(f"n_sites must be between 1 and 26, got {n_sites}")
    return [f"site{letter}" for letter in string.ascii_uppercase[:n_sites]]


def _positive_probability(n_sites: int, prevalence: float, site_confounding: float) -> np.ndarray:
    """Return P(positive | site) for each site.

    Sites A, C, E... lean towards all positive, sites B, D, F... towards all negative:
    ``p_s = prevalence + site_confounding * (extreme_s - prevalence)``.
    """
    extremes = (np.arange(n_sites) % 2 == 0).astype(float)
    return prevalence + site_confounding * (extremes - prevalence)


def _correlated_latents(rng: np.random.Generator, n_subjects: int, n_features: int) -> np.ndarray:
    """Draw standard-normal subject latents whose features share a few factors."""
    loadings = rng.standard_normal((N_FACTORS, n_features))
    loadings /= np.linalg.norm(loadings, axis=0)
    factors = rng.standard_normal((n_subjects, N_FACTORS))
    unique = rng.standard_normal((n_subjects, n_features))
    return np.sqrt(SHARED_VARIANCE) * factors @ loadings + np.sqrt(1 - SHARED_VARIANCE) * unique


def make_feature_cohort(
    n_subjects: int = 120,
    n_features: int = 40,
    n_informative: int = 5,
    effect_size: float = 1.0,
    n_sites: int = 3,
    site_shift: float = 0.0,
    site_scale: float = 0.0,
    site_confounding: float = 0.0,
    prevalence: float = 0.5,
    longitudinal_fraction: float = 0.0,
    age_effect: float = 0.3,
    seed: int = 0,
    positive: str = "ALS",
    negative: str = "CN",
) -> FeatureCohort:
    """Draw a multi-site cohort of feature tables with planted diagnosis, age and site effects.

    Parameters
    ----------
    n_subjects : int, default 120
        Number of subjects; they are spread over the sites as evenly as possible.
    n_features : int, default 40
        Number of feature columns (``f000``...).
    n_informative : int, default 5
        Number of features, drawn at random, shifted in positive subjects.
    effect_size : float, default 1.0
        Shift of the informative features in positive subjects, in SDs of the subject latent.
    n_sites : int, default 3
        Number of sites (1 to 26), named ``siteA``, ``siteB``...
    site_shift : float, default 0.0
        SD of the additive site effect, drawn per site and feature (ComBat's ``gamma``).
    site_scale : float, default 0.0
        SD of the log of the multiplicative site effect on the residual, drawn per site and
        feature (ComBat's ``delta``).
    site_confounding : float, default 0.0
        Dependence of the diagnosis on the site, in [0, 1]. The probability of being positive
        at site ``s`` is ``prevalence + site_confounding * (extreme_s - prevalence)`` with
        ``extreme_s = 1`` for sites A, C, E... and ``0`` for sites B, D, F...: 0 makes the
        diagnosis independent of the site, 1 makes site A all positive and site B all negative.
        Above 0 the overall prevalence moves towards the mean of the extremes.
    prevalence : float, default 0.5
        Probability of being positive when the diagnosis does not depend on the site.
    longitudinal_fraction : float, default 0.0
        Fraction of subjects, drawn at random, with a second session.
    age_effect : float, default 0.3
        Change of every feature per 10 years of age, in SDs of the subject latent.
    seed : int, default 0
        Seed of the :class:`numpy.random.Generator`; the same seed gives the same cohort.
    positive, negative : str, default "ALS", "CN"
        The diagnosis labels.

    Returns
    -------
    FeatureCohort
        The subjects, the session features and the names of the informative features.

    Raises
    ------
    ValueError
        If an argument is out of range.

    Notes
    -----
    The site effects follow ComBat's model (Johnson et al. 2007): they shift the feature and
    scale its residual (subject latent plus session noise), not the age or diagnosis effects,
    so that harmonisation that keeps age and diagnosis as covariates can recover them.

    Examples
    --------
    >>> cohort = make_feature_cohort(n_subjects=6, n_features=3, n_informative=1,
    ...                              longitudinal_fraction=0.5)
    >>> cohort.participants.columns.tolist()
    ['participant_id', 'diagnosis', 'age', 'sex', 'site']
    >>> cohort.features.shape
    (9, 5)
    >>> cohort.features.columns.tolist()[:3]
    ['participant_id', 'session_id', 'f000']
    >>> len(cohort.informative)
    1
    """
    sites = _site_names(n_sites)
    if n_subjects < 1 or n_features < 1:
        raise ValueError("n_subjects and n_features must be at least 1")
    if not 0 <= n_informative <= n_features:
        raise ValueError(f"n_informative must be in [0, n_features={n_features}]")
    for name, value in (
        ("site_confounding", site_confounding),
        ("prevalence", prevalence),
        ("longitudinal_fraction", longitudinal_fraction),
    ):
        if not 0 <= value <= 1:
            raise ValueError(f"{name} must be in [0, 1], got {value}")
    if site_shift < 0 or site_scale < 0:
        raise ValueError("site_shift and site_scale are standard deviations: must be >= 0")

    rng = np.random.default_rng(seed)
    site_index = rng.permutation(np.arange(n_subjects) % n_sites)
    p_positive = _positive_probability(n_sites, prevalence, site_confounding)[site_index]
    is_positive = rng.random(n_subjects) < p_positive
    age = rng.normal(AGE_MEAN_YEARS, AGE_SD_YEARS, n_subjects)
    sex = np.where(rng.random(n_subjects) < 0.5, "M", "F")

    latent = _correlated_latents(rng, n_subjects, n_features)
    informative = np.sort(rng.choice(n_features, n_informative, replace=False))
    signal = np.repeat(age_effect * (age[:, None] - AGE_MEAN_YEARS) / 10, n_features, axis=1)
    signal[np.ix_(is_positive, informative)] += effect_size

    shift = rng.normal(0.0, site_shift, (n_sites, n_features))
    scale = np.exp(rng.normal(0.0, site_scale, (n_sites, n_features)))

    n_longitudinal = round(longitudinal_fraction * n_subjects)
    longitudinal = np.zeros(n_subjects, dtype=bool)
    longitudinal[rng.choice(n_subjects, n_longitudinal, replace=False)] = True
    # Session rows: every subject's first session, then the second sessions; sorted below.
    row_subject = np.concatenate([np.arange(n_subjects), np.flatnonzero(longitudinal)])
    row_session = np.repeat([1, 2], [n_subjects, n_longitudinal])
    order = np.lexsort((row_session, row_subject))
    row_subject, row_session = row_subject[order], row_session[order]

    noise = rng.normal(0.0, SESSION_NOISE_SD, (row_subject.size, n_features))
    row_site = site_index[row_subject]
    values = signal[row_subject] + shift[row_site] + scale[row_site] * (latent[row_subject] + noise)

    ids = np.array([f"sub-{i + 1:03d}" for i in range(n_subjects)])
    participants = pd.DataFrame(
        {
            "participant_id": ids,
            "diagnosis": np.where(is_positive, positive, negative),
            "age": age,
            "sex": sex,
            "site": np.array(sites)[site_index],
        }
    )
    columns = [f"f{j:03d}" for j in range(n_features)]
    features = pd.concat(
        [
            pd.DataFrame(
                {
                    "participant_id": ids[row_subject],
                    "session_id": [f"ses-{k:02d}" for k in row_session],
                }
            ),
            pd.DataFrame(values, columns=columns),
        ],
        axis=1,
    )
    return FeatureCohort(
        participants=participants,
        features=features,
        informative=[columns[j] for j in informative],
    )

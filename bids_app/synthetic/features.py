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

:func:`make_progression_cohort` draws a longitudinal cohort instead: regional volumes over two or
three sessions with their times (sessions.tsv ``acq_time`` and ``age``), in which patients lose
a few regions faster per year, under a between-subject variability much larger than that loss.
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


@dataclass(frozen=True)
class ProgressionCohort:
    """A synthetic longitudinal cohort: regional volumes over sessions, faster loss in patients.

    Attributes
    ----------
    participants : pandas.DataFrame
        One row per subject: ``participant_id``, ``diagnosis`` (positive or negative label),
        ``age`` (years, at the first session) and ``sex``.
    sessions : pandas.DataFrame
        One row per session, as the sessions.tsv files hold them: ``participant_id``,
        ``session_id``, ``acq_time`` (ISO 8601 date and time) and ``age`` (years).
    features : pandas.DataFrame
        One row per session: ``participant_id``, ``session_id``, then the volumes (mL) of the
        regions ``region00``...
    informative : list of str
        The regions that patients lose faster, sorted.
    rates : pandas.DataFrame
        The true loss of every subject (index: ``participant_id``) and region, in % of the
        subject's own baseline volume per year (positive: loss).
    """

    participants: pd.DataFrame
    sessions: pd.DataFrame
    features: pd.DataFrame
    informative: list[str]
    rates: pd.DataFrame


def make_progression_cohort(
    n_subjects: int = 60,
    n_regions: int = 10,
    n_informative: int = 3,
    rate_difference: float = 2.5,
    control_rate: float = 0.5,
    rate_sd: float = 0.5,
    baseline_sd: float = 10.0,
    session_noise: float = 1.0,
    max_sessions: int = 3,
    single_session_fraction: float = 0.0,
    seed: int = 0,
    positive: str = "ALS",
    negative: str = "CN",
) -> ProgressionCohort:
    """Draw regional volumes over two to ``max_sessions`` sessions with planted faster atrophy.

    The volume of region ``j`` of subject ``i`` at ``t`` years after its first session is::

        V[i, j](t) = V0[j] * b[i, j] * (1 - r[i, j] / 100 * (d[i] + t)) * (1 + e[t, i, j])

    with ``V0`` a region's typical volume (2-20 mL), ``log b ~ N(0, (baseline_sd / 100)^2)``
    the subject's own size (between-subject variability), ``r`` the yearly loss in %
    (``control_rate``, plus ``rate_difference`` in the informative regions of positive
    subjects, plus ``N(0, rate_sd^2)`` per subject and region), ``d`` the years of disease
    before the first session (``U(0, 1)`` in positive subjects, 0 otherwise) and
    ``e ~ N(0, (session_noise / 100)^2)`` the measurement noise of a session. With the
    defaults the between-subject SD (10 %) dwarfs the loss patients accumulate (2.5 % per
    year), so that one session's volumes separate the groups poorly while the rates over the
    sessions do: the situation of the brain-stem PhD proposal's "prediction from short
    longitudinal series".

    Parameters
    ----------
    n_subjects : int, default 60
        Subjects, half of them positive (the first half after a random permutation).
    n_regions : int, default 10
        Regions (volume columns ``region00``...).
    n_informative : int, default 3
        Regions, drawn at random, that positive subjects lose faster.
    rate_difference : float, default 2.5
        Extra yearly loss of positive subjects in the informative regions, % of baseline; 0
        gives a null cohort.
    control_rate : float, default 0.5
        Yearly loss of every subject in every region, % of baseline (ageing).
    rate_sd : float, default 0.5
        Between-subject SD of the yearly loss, % of baseline.
    baseline_sd : float, default 10.0
        Between-subject SD of the volumes (log scale), %.
    session_noise : float, default 1.0
        SD of a session's measurement error, %.
    max_sessions : int, default 3
        Each subject has 2 to ``max_sessions`` sessions, 6 to 18 months apart.
    single_session_fraction : float, default 0.0
        Fraction of subjects, drawn at random, with their first session only.
    seed : int, default 0
        Seed of the :class:`numpy.random.Generator`.
    positive, negative : str, default "ALS", "CN"
        The diagnosis labels.

    Returns
    -------
    ProgressionCohort
        Subjects, sessions (times), per-session volumes and the planted truth.

    Raises
    ------
    ValueError
        If an argument is out of range.

    Examples
    --------
    >>> cohort = make_progression_cohort(n_subjects=4, n_regions=2, n_informative=1)
    >>> cohort.features.columns.tolist()
    ['participant_id', 'session_id', 'region00', 'region01']
    >>> cohort.sessions.columns.tolist()
    ['participant_id', 'session_id', 'acq_time', 'age']
    >>> bool(cohort.features.groupby("participant_id").size().between(2, 3).all())
    True
    """
    if n_subjects < 2 or n_regions < 1 or not 0 <= n_informative <= n_regions:
        raise ValueError("need n_subjects >= 2, n_regions >= 1 and 0 <= n_informative <= n_regions")
    if max_sessions < 2 or not 0 <= single_session_fraction <= 1:
        raise ValueError("need max_sessions >= 2 and single_session_fraction in [0, 1]")
    rng = np.random.default_rng(seed)
    is_positive = rng.permutation(np.arange(n_subjects) < n_subjects // 2)
    age = rng.normal(AGE_MEAN_YEARS, AGE_SD_YEARS, n_subjects)
    sex = np.where(rng.random(n_subjects) < 0.5, "M", "F")
    informative = np.sort(rng.choice(n_regions, n_informative, replace=False))
    typical = rng.uniform(2.0, 20.0, n_regions)
    size = np.exp(rng.normal(0.0, baseline_sd / 100, (n_subjects, n_regions)))
    rate = control_rate + rng.normal(0.0, rate_sd, (n_subjects, n_regions))
    rate[np.ix_(is_positive, informative)] += rate_difference
    disease_years = np.where(is_positive, rng.uniform(0.0, 1.0, n_subjects), 0.0)
    n_sessions = rng.integers(2, max_sessions + 1, n_subjects)
    single = rng.choice(n_subjects, round(single_session_fraction * n_subjects), replace=False)
    n_sessions[single] = 1
    first_day = pd.Timestamp("2016-01-04T09:00:00") + pd.to_timedelta(
        rng.integers(0, 3 * 365, n_subjects), unit="D"
    )
    ids = [f"sub-{i + 1:03d}" for i in range(n_subjects)]
    regions = [f"region{j:02d}" for j in range(n_regions)]
    session_rows, feature_rows = [], []
    for i in range(n_subjects):
        years = np.concatenate([[0.0], np.cumsum(rng.uniform(0.5, 1.5, n_sessions[i] - 1))])
        for k, t in enumerate(years):
            noise = rng.normal(0.0, session_noise / 100, n_regions)
            volume = typical * size[i] * (1 - rate[i] / 100 * (disease_years[i] + t)) * (1 + noise)
            session = f"ses-{k + 1:02d}"
            day = first_day[i] + pd.Timedelta(days=round(t * 365.25))
            session_rows.append(
                {
                    "participant_id": ids[i],
                    "session_id": session,
                    "acq_time": day.isoformat(),
                    "age": round(age[i] + t, 2),
                }
            )
            feature_rows.append(
                {
                    "participant_id": ids[i],
                    "session_id": session,
                    **dict(zip(regions, volume, strict=True)),
                }
            )
    participants = pd.DataFrame(
        {
            "participant_id": ids,
            "diagnosis": np.where(is_positive, positive, negative),
            "age": age.round(2),
            "sex": sex,
        }
    )
    return ProgressionCohort(
        participants=participants,
        sessions=pd.DataFrame(session_rows),
        features=pd.DataFrame(feature_rows),
        informative=[regions[j] for j in informative],
        rates=pd.DataFrame(rate, index=pd.Index(ids, name="participant_id"), columns=regions),
    )

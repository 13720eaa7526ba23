"""Cohort design: each subject's site, group, sex, age, severity, clinical values and sessions."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from bids_app.synthetic.anatomy import REGIONS
from bids_app.synthetic.clinical import CLINICAL_COLUMNS, clinical_family, clinical_values
from bids_app.synthetic.sites import Site

if TYPE_CHECKING:
    from bids_app.synthetic.cohort import CohortSpec


@dataclass(frozen=True)
class Session:
    """One imaging session of a subject.

    Attributes
    ----------
    label : str
        BIDS session label (``01``, ``02``).
    age : float
        Age at the session (years).
    acq_time : str
        Date and time of the session (ISO 8601).
    planted : dict
        ``{region: planted fraction of its volume removed}`` (negative = enlarged).
    """

    label: str
    age: float
    acq_time: str
    planted: dict[str, float]


@dataclass(frozen=True)
class SubjectPlan:
    """Everything a worker needs to simulate one subject.

    Attributes
    ----------
    participant : dict
        The subject's row of ``participants.tsv``.
    anatomy_key : str
        Anatomy the subject is deformed from (:func:`~bids_app.synthetic.anatomy.load_anatomy`).
    site : Site
        The scanner.
    sex : str
        ``"M"`` or ``"F"``.
    severity : float
        Severity multiplier of the planted atrophy (0 for controls).
    has_flair : bool
        Whether a FLAIR is acquired.
    n_lesions : int
        Number of white-matter lesions.
    sessions : tuple of Session
        The sessions, in order.
    seed : numpy.random.SeedSequence
        Seed of everything drawn while simulating the subject.
    """

    participant: dict[str, str]
    anatomy_key: str
    site: Site
    sex: str
    severity: float
    has_flair: bool
    n_lesions: int
    sessions: tuple[Session, ...]
    seed: np.random.SeedSequence = field(repr=False)

    @property
    def label(self) -> str:
        """BIDS subject label (zero-padded)."""
        return self.participant["participant_id"][4:]


def plan_cohort(
    spec: CohortSpec,
    sites: Sequence[Site],
    anatomy_keys: Sequence[str],
    rng: np.random.Generator,
    subject_seeds: Sequence[np.random.SeedSequence],
) -> list[SubjectPlan]:
    """Draw sites, groups, demographics, clinical values and sessions for every subject.

    Subjects are spread evenly over sites, groups evenly within each site, and sex is balanced
    within each group, so that neither is confounded with the diagnosis.

    Parameters
    ----------
    spec : CohortSpec
        The cohort's parameters.
    sites : sequence of Site
        The drawn sites.
    anatomy_keys : sequence of str
        Anatomies, cycled over subjects.
    rng : numpy.random.Generator
        Source of the cohort-level randomness.
    subject_seeds : sequence of numpy.random.SeedSequence
        One seed per subject, for its simulation.

    Returns
    -------
    list of SubjectPlan
        One plan per subject, in order.
    """
    n = spec.n_subjects
    groups = spec.resolved_groups()
    names = list(groups)
    control = next(g for g in names if not groups[g])
    patient_groups = [g for g in names if groups[g]]
    family = clinical_family(spec.disease)
    site_of = np.empty(n, dtype=int)
    site_of[rng.permutation(n)] = np.arange(n) % len(sites)
    diagnosis = [""] * n
    for s in range(len(sites)):
        members = np.nonzero(site_of == s)[0]
        for j, member in enumerate(members[rng.permutation(members.size)]):
            diagnosis[member] = names[j % len(names)]
    two_sessions = set(rng.permutation(n)[: round(spec.longitudinal_fraction * n)].tolist())
    flair_draw = set(rng.permutation(n)[: round(spec.flair_fraction * n)].tolist())
    # sex balanced within each group, so that sex is never confounded with the diagnosis
    sex_of = [""] * n
    for name in names:
        members = [i for i in range(n) if diagnosis[i] == name]
        balanced = np.array(["M", "F"])[np.arange(len(members)) % 2]
        for member, value in zip(members, rng.permutation(balanced), strict=True):
            sex_of[member] = str(value)
    width = max(3, len(str(n)))
    plans = []
    for i in range(n):
        group = diagnosis[i]
        patient = group != control
        age = float(rng.uniform(*spec.age_range))
        sex = sex_of[i]
        severity = float(np.clip(1 + spec.severity_sd * rng.standard_normal(), 0.4, 1.8))
        row = {
            "participant_id": f"sub-{i + 1:0{width}d}",
            "site": sites[site_of[i]].name,
            "diagnosis": group,
            "age": f"{age:.1f}",
            "sex": sex,
        }
        row.update(dict.fromkeys(CLINICAL_COLUMNS[family], "n/a"))
        if patient:
            row.update(clinical_values(family, patient_groups.index(group), severity, rng))
        else:
            severity = 0.0
        ms_patient = family == "ms" and patient
        has_flair = i in flair_draw or ms_patient
        n_lesions = 0
        if has_flair:
            n_lesions = (
                int(8 + rng.poisson(12 * severity)) if ms_patient else int(1 + rng.poisson(3))
            )
        start = datetime.datetime(2020, 1, 6, 8) + datetime.timedelta(
            days=int(rng.integers(0, 700)), minutes=15 * int(rng.integers(0, 36))
        )
        follow_up = datetime.timedelta(days=int(rng.normal(365, 20)))
        sessions = []
        for number in range(2 if i in two_sessions else 1):
            progression = spec.progression**number
            planted = {
                region: REGIONS[region].direction
                * spec.effect_size
                * weight
                * severity
                * progression
                for region, weight in groups[group].items()
            }
            when = start + follow_up * number
            sessions.append(
                Session(
                    label=f"{number + 1:02d}",
                    age=age + number * follow_up.days / 365.25,
                    acq_time=when.strftime("%Y-%m-%dT%H:%M:%S"),
                    planted=planted,
                )
            )
        plans.append(
            SubjectPlan(
                participant=row,
                anatomy_key=anatomy_keys[i % len(anatomy_keys)],
                site=sites[site_of[i]],
                sex=sex,
                severity=severity,
                has_flair=has_flair,
                n_lesions=n_lesions,
                sessions=tuple(sessions),
                seed=subject_seeds[i],
            )
        )
    return plans

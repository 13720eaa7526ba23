"""Shared fixtures: small BIDS datasets written by the tests themselves."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from bids_app import runtime

runtime.quiet_libraries()  # as the CLI does: no nipype version check, matplotlib off-screen

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


@pytest.fixture
def one_torch_thread():
    """Run torch on one thread: tiny 3D convolutions crawl with several on a shared machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _head(shape: tuple[int, int, int], seed: int) -> np.ndarray:
    """A smooth blob-shaped 'head' with a brighter core, as int16."""
    rng = np.random.default_rng(seed)
    grid = np.indices(shape).astype(float)
    centre = (np.array(shape) - 1) / 2
    radius = np.sqrt((((grid.T - centre) / (centre * 0.8)) ** 2).sum(axis=-1)).T
    data = np.where(radius < 1, 400 + 300 * (radius < 0.7), 0) + rng.normal(0, 10, shape)
    return ndimage.gaussian_filter(data, 1).clip(0).astype(np.int16)


def write_t1w(path: Path, seed: int = 0, shape=(20, 24, 20), zoom: float = 3.0) -> Path:
    """Write a small T1w NIfTI and its JSON sidecar."""
    path.parent.mkdir(parents=True, exist_ok=True)
    affine = np.diag([zoom, zoom, zoom, 1.0])
    affine[:3, 3] = -np.array(shape) * zoom / 2
    nib.save(nib.Nifti1Image(_head(shape, seed), affine), path)
    sidecar = path.with_name(path.name.replace(".nii.gz", ".json"))
    sidecar.write_text(json.dumps({"MagneticFieldStrength": 3, "Manufacturer": "Test"}))
    return path


@pytest.fixture
def make_bids(tmp_path: Path) -> Callable[..., Path]:
    """Return a factory of small valid BIDS datasets.

    The factory takes ``subjects`` (labels), ``sessions`` (labels or None), ``flair``
    (subjects with a FLAIR and a lesion mask) and writes participants.tsv/json with a
    diagnosis, age and sex per subject.
    """

    def factory(
        subjects: Sequence[str] = ("01", "02", "03", "04"),
        sessions: Sequence[str] | None = None,
        flair: Sequence[str] = (),
        name: str = "bids",
    ) -> Path:
        root = tmp_path / name
        root.mkdir()
        (root / "dataset_description.json").write_text(
            json.dumps({"Name": "test", "BIDSVersion": "1.9.0", "DatasetType": "raw"})
        )
        (root / "README").write_text("A small dataset written by the NeuroStrat tests.\n")
        (root / ".bidsignore").write_text("*_roi.*\n")
        lines = ["participant_id\tdiagnosis\tage\tsex"]
        for index, subject in enumerate(subjects):
            lines.append(
                f"sub-{subject}\t{'ALS' if index % 2 else 'CN'}\t{50 + index}\t"
                f"{'M' if index % 3 else 'F'}"
            )
            for session in sessions or [None]:
                folder = root / f"sub-{subject}" / (f"ses-{session}" if session else "") / "anat"
                stem = f"sub-{subject}" + (f"_ses-{session}" if session else "")
                write_t1w(folder / f"{stem}_T1w.nii.gz", seed=index)
                if subject in flair:
                    write_t1w(folder / f"{stem}_FLAIR.nii.gz", seed=100 + index)
                    write_t1w(folder / f"{stem}_label-lesion_roi.nii.gz", seed=200 + index)
        (root / "participants.tsv").write_text("\n".join(lines) + "\n")
        (root / "participants.json").write_text(
            json.dumps(
                {
                    "diagnosis": {
                        "Description": "group",
                        "Levels": {"CN": "control", "ALS": "ALS"},
                    },
                    "age": {"Description": "age at scan", "Units": "years"},
                    "sex": {"Description": "sex", "Levels": {"M": "male", "F": "female"}},
                }
            )
        )
        return root

    return factory


def read_volumes(derivatives: Path) -> pd.DataFrame:
    """Stack the ``desc-volumes_morph.tsv`` tables of a derivatives folder (by participant)."""
    tables = sorted(derivatives.rglob("*_desc-volumes_morph.tsv"))
    frames = [pd.read_csv(p, sep="\t", na_values="n/a", keep_default_na=False) for p in tables]
    return pd.concat(frames, ignore_index=True).set_index("participant_id")

"""Bad input at the participant level on a synthetic 3 mm head (kills: test_faults.py)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bids_app.cli.errors import ExitCode
from bids_app.cli.main import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    """A 2-subject synthetic cohort at 3 mm (one T1w per session, FLAIR for some)."""
    bids = tmp_path_factory.mktemp("robust") / "bids"
    command = [sys.executable, "-m", "bids_app.synthetic", str(bids), "--n-subjects", "2"]
    subprocess.run(
        [*command, "--n-sites", "1", "--voxel-size", "3", "--seed", "2"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return bids


def _first_t1w(synthetic: Path) -> Path:
    return sorted(synthetic.glob("sub-*/ses-*/anat/*_T1w.nii.gz"))[0]


def _dataset(root: Path, subjects: dict[str, dict[str, bytes | nib.Nifti1Image]]) -> Path:
    """Write a dataset: subject label -> {suffix: image or raw bytes}."""
    root.mkdir(parents=True)
    (root / "dataset_description.json").write_text(
        json.dumps({"Name": "bad input", "BIDSVersion": "1.9.0", "DatasetType": "raw"})
    )
    rows = ["participant_id\tdiagnosis\tage\tsex"]
    for label, files in subjects.items():
        rows.append(f"sub-{label}\tCN\t60\tF")
        anat = root / f"sub-{label}" / "anat"
        anat.mkdir(parents=True)
        for suffix, content in files.items():
            path = anat / f"sub-{label}_{suffix}.nii.gz"
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                nib.save(content, path)
    (root / "participants.tsv").write_text("\n".join(rows) + "\n")
    return root


def test_bad_inputs_fail_alone_with_clear_errors(synthetic, tmp_path, capsys):
    source = _first_t1w(synthetic)
    good = nib.load(source)
    data = np.asarray(good.dataobj, dtype=np.float32)
    affine = good.affine
    nan = data.copy()
    nan[10, 10, 10] = np.nan
    far = affine.copy()
    far[:3, 3] += 600.0  # a FLAIR whose field of view is nowhere near the T1w
    truth = sorted((synthetic / "sourcedata" / "ground_truth").rglob("*_desc-brain_mask.nii.gz"))
    brain = np.asarray(nib.load(truth[0]).dataobj) > 0
    thick = affine.copy()
    thick[:3, 2] *= 4.0  # every 4th slice: 3 x 3 x 12 mm voxels
    bids = _dataset(
        tmp_path / "bids",
        {
            "good": {"T1w": good, "FLAIR": nib.Nifti1Image(data, far)},
            "fourd": {"T1w": nib.Nifti1Image(np.stack([data, data], axis=-1), affine)},
            "twod": {"T1w": nib.Nifti1Image(data[:, :, :1], affine)},
            "nan": {"T1w": nib.Nifti1Image(nan, affine)},
            "zero": {"T1w": nib.Nifti1Image(np.zeros_like(data), affine)},
            "truncated": {"T1w": source.read_bytes()[:300]},
            "text": {"T1w": gzip.compress(b"this is not an image\n")},
            "stripped": {"T1w": nib.Nifti1Image(data * brain, affine)},
            "thick": {"T1w": nib.Nifti1Image(data[:, :, ::4], thick)},
        },
    )
    out = tmp_path / "out"
    args = ["-w", str(tmp_path / "work"), "--sloppy", "--nprocs", "2", "--skip-bids-validation"]
    args += ["--features", "volumes"]  # the errors come before the features
    code = main([str(bids), str(out), "participant", *args])
    assert code == ExitCode.SUBJECTS_FAILED
    err = capsys.readouterr().err
    expected = {
        "fourd": "expected a 3D image",
        "twod": "2D image",
        "nan": "NaN or Inf",
        "zero": "constant",
        "truncated": "cannot be read as NIfTI",
        "text": "cannot be read as NIfTI",
    }
    for label, message in expected.items():
        line = next(row for row in err.splitlines() if f"FAILED sub-{label}:" in row)
        assert message in line and f"sub-{label}_T1w.nii.gz" in line, line
        assert not list(out.glob(f"sub-{label}/**/*.nii.gz"))
    assert not [path for path in out.rglob("*") if ".part-" in path.name]
    for label in ("good", "stripped", "thick"):
        assert (out / f"sub-{label}/anat/sub-{label}_desc-brain_mask.nii.gz").exists()
    qc = json.loads((out / "sub-good/anat/sub-good_desc-preproc_qc.json").read_text())
    assert "do not overlap" in qc["Flags"]["FLAIR_coregistration"]
    assert not list(out.glob("sub-good/anat/*FLAIR*"))
    assert "FLAIR co-registration" in (out / "sub-good.html").read_text()
    stripped = json.loads((out / "sub-stripped/anat/sub-stripped_desc-preproc_qc.json").read_text())
    assert stripped["SkullStrip"] == "none"
    assert "already skull-stripped" in stripped["SkullStripReason"]
    log = next((out / "logs").glob("log_*.txt")).read_text()  # sessions ran in worker processes
    assert "sub-stripped: brain extraction none (the input is already skull-stripped" in log
    conform = json.loads((out / "sub-thick/anat/sub-thick_desc-preproc_T1w.json").read_text())
    assert any("resampled to 3 mm isotropic" in change for change in conform["Conform"]["changes"])

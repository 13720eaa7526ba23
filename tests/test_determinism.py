"""Repeatability: the same subject and ``--seed`` give byte-identical derivatives.

Every stochastic step of the participant level takes a seed: the ANTs registrations (the
template registration that is also the template skull strip, the FLAIR/T2w co-registration)
draw their metric samples from ``--seed``, Atropos runs with its constant seed, and DiReCT runs
ITK on one thread. Three runs of one synthetic MS subject (T1w, FLAIR and lesion mask at 3 mm)
go side by side into their own output and work folders: two with ``--seed 7`` (one of them with
``--nprocs 2``, which runs the steps, the FLAIR co-registration among them, in nipype's process
pool) must agree byte for byte; one with ``--seed 8`` must give the same valid outputs.
"""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from bids_app.participant.coregistration import init_coregistration_wf
from bids_app.participant.options import AnatomicalOptions
from bids_app.participant.registration import init_registration_wf

#: The run's settings apart from the seed and the folders.
OPTIONS = (
    "--omp-nthreads", "1",
    "--sloppy",
    "--skull-strip", "template",
    "--features", "volumes", "thickness", "histogram", "radiomics",
    "--skip-bids-validation",
)  # fmt: skip


def _cohort(root: Path) -> tuple[Path, str]:
    """Write a synthetic MS cohort at 3 mm; return it and the label of a subject with a FLAIR."""
    bids = root / "bids"
    cohort = ("--n-subjects", "2", "--n-sites", "1", "--voxel-size", "3", "--seed", "0")
    subprocess.run(
        [sys.executable, "-m", "bids_app.synthetic", str(bids), *cohort, "--disease", "ms"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    flair = sorted(bids.glob("sub-*/ses-*/anat/*_FLAIR.nii.gz"))
    assert flair, "the synthetic MS cohort has no subject with a FLAIR"
    assert list(flair[0].parent.glob("*_label-lesion_roi.nii.gz")), "no lesion mask"
    return bids, flair[0].name.split("_")[0].removeprefix("sub-")


@pytest.mark.parametrize("seed", [0, 7])
def test_every_registration_gets_the_run_seed(seed):
    # the FLAIR/T2w co-registration drew its samples from whatever seed the process held
    options = AnatomicalOptions("template", "requested", seed=seed)
    assert init_registration_wf(options).get_node("register").inputs.seed == seed
    coregistration_wf = init_coregistration_wf(options, ["FLAIR", "T2w"])
    for name in ("flair_coregister", "t2w_coregister"):
        assert coregistration_wf.get_node(name).inputs.seed == seed


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Run the participant level three times side by side; return each run's output folder."""
    root = tmp_path_factory.mktemp("determinism")
    bids, subject = _cohort(root)
    settings = {"a": ("--seed", "7"), "b": ("--seed", "7", "--nprocs", "2"), "c": ("--seed", "8")}
    processes = {
        name: subprocess.Popen(
            [
                *(sys.executable, "-m", "bids_app", str(bids), str(root / f"out-{name}")),
                *("participant", "--participant-label", subject, "-w", str(root / f"work-{name}")),
                *OPTIONS,
                *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, extra in settings.items()
    }
    for name, process in processes.items():
        _, stderr = process.communicate(timeout=1800)
        assert process.returncode == 0, f"run {name} failed: {stderr}"
    return {name: root / f"out-{name}" for name in processes}


def _outputs(folder: Path) -> dict[str, bytes]:
    """The derivatives of a run (its logs aside), by relative path; gzip streams decompressed.

    A gzip header may hold a time stamp and the compressor's settings, so NIfTI files are
    compared by their header and voxel bytes.
    """
    files = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and relative.parts[0] != "logs":
            data = path.read_bytes()
            files[str(relative)] = gzip.decompress(data) if path.suffix == ".gz" else data
    return files


@pytest.mark.long
@pytest.mark.slow
def test_runs_with_one_seed_are_byte_identical(runs):
    first, second = _outputs(runs["a"]), _outputs(runs["b"])
    assert sorted(first) == sorted(second)
    names = set(first)
    for suffix in ("_desc-preproc_T1w.nii.gz", "_space-T1w_desc-preproc_FLAIR.nii.gz"):
        assert any(name.endswith(suffix) for name in names), f"no {suffix} output"
    for suffix in ("_dseg.nii.gz", "_desc-thickness_morph.nii.gz", "_desc-radiomics_features.tsv"):
        assert any(name.endswith(suffix) for name in names), f"no {suffix} output"
    differing = sorted(name for name in first if first[name] != second[name])
    assert not differing, f"two runs with --seed 7 differ in {differing}"


def _volumes(folder: Path) -> pd.Series:
    [table] = folder.rglob("*_desc-volumes_morph.tsv")
    return pd.read_csv(table, sep="\t").iloc[0]


@pytest.mark.long
@pytest.mark.slow
def test_another_seed_gives_valid_outputs(runs):
    reference, other = _outputs(runs["a"]), _outputs(runs["c"])
    assert sorted(other) == sorted(reference)
    for name in (n for n in other if n.endswith(".nii.gz")):
        image = nib.load(runs["c"] / name)
        expected = nib.load(runs["a"] / name)
        assert image.shape == expected.shape and np.allclose(image.affine, expected.affine)
        assert np.isfinite(np.asanyarray(image.dataobj)).all(), name
    first, second = _volumes(runs["a"]), _volumes(runs["c"])
    for column in ("tiv", "brain", "gm", "wm"):
        assert second[column] == pytest.approx(first[column], rel=0.05), column

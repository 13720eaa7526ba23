"""The synthetic cohort: valid BIDS, planted effects in the ground truth, deterministic."""

import json
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from bids import BIDSLayout

from bids_app.synthetic import CohortSpec, make_cohort

SYNTHSEG = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "synthseg_labels"
SPEC = CohortSpec(
    n_subjects=6, n_sites=3, seed=5, voxel_size=3.0, second_session_fraction=0.5, flair_fraction=0.5
)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return make_cohort(tmp_path_factory.mktemp("syn") / "bids", SPEC)


def _truth(bids):
    return pd.read_csv(bids / "sourcedata" / "ground_truth" / "truth.tsv", sep="\t")


def test_pybids_indexes_it(cohort):
    layout = BIDSLayout(cohort)
    assert layout.get_subjects() == [f"{i:03d}" for i in range(1, 7)]
    assert len(layout.get(suffix="T1w", extension=".nii.gz")) >= 6
    assert layout.get_sessions() == ["01", "02"]
    participants = pd.read_csv(cohort / "participants.tsv", sep="\t")
    assert set(participants["site"]) == {"siteA", "siteB", "siteC"}
    assert set(participants["diagnosis"]) == {"CN", "ALS"}


def test_sites_differ_in_storage_and_resolution(cohort):
    orientations, zooms = set(), set()
    for path in cohort.glob("sub-*/ses-01/anat/*_T1w.nii.gz"):
        img = nib.load(path)
        orientations.add("".join(nib.aff2axcodes(img.affine)))
        zooms.add(tuple(np.round(img.header.get_zooms(), 2)))
    assert len(orientations) == 3 and len(zooms) == 2


@pytest.mark.skipif(shutil.which("bids-validator") is None, reason="bids-validator not installed")
def test_bids_validator_finds_no_error(cohort):
    result = subprocess.run(
        ["bids-validator", str(cohort), "--json"], capture_output=True, text=True
    )
    report = json.loads(result.stdout)
    assert report["issues"]["errors"] == []


def test_planted_effects_in_ground_truth(cohort):
    truth = _truth(cohort)
    participants = pd.read_csv(cohort / "participants.tsv", sep="\t")
    truth = truth.merge(participants[["participant_id", "diagnosis"]], on="participant_id")
    planted = truth[truth.planted_fraction > 0]
    assert set(planted.region) == {"precentral", "paracentral", "medulla"}
    assert set(planted.diagnosis) == {"ALS"}
    # realised shrinkage follows the planted fraction (3 mm voxels: within 0.12)
    assert np.all(np.abs(planted.ratio - (1 - planted.planted_fraction)) < 0.12)
    assert np.all(planted.ratio < 0.95)
    controls = truth[truth.diagnosis == "CN"]
    assert np.allclose(controls.ratio, 1.0)


def test_planted_region_is_smaller_in_the_label_maps(cohort):
    truth = _truth(cohort)
    row = truth[(truth.region == "medulla") & (truth.planted_fraction > 0)].iloc[0]
    dseg = nib.load(
        cohort
        / "sourcedata/ground_truth"
        / row.participant_id
        / row.session_id
        / f"{row.participant_id}_{row.session_id}_dseg.nii.gz"
    )
    voxel_ml = np.prod(dseg.header.get_zooms()) / 1000
    assert np.isclose((np.asarray(dseg.dataobj) == 175).sum() * voxel_ml, row.volume_ml)
    assert row.volume_ml < row.volume_without_ml


def test_lesions_with_flair(cohort):
    for roi in cohort.glob("sub-*/ses-*/anat/*_label-lesion_roi.nii.gz"):
        assert roi.with_name(roi.name.replace("label-lesion_roi", "FLAIR")).exists()
        assert np.asarray(nib.load(roi).dataobj).sum() > 0
    assert list(cohort.glob("sub-*/ses-*/anat/*_FLAIR.nii.gz"))


def test_same_seed_identical_files_and_other_seed_differs(cohort, tmp_path):
    again = make_cohort(tmp_path / "again", SPEC)
    files = sorted(p.relative_to(cohort) for p in cohort.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for name in files:
        if name.name != "generation.json":
            assert (cohort / name).read_bytes() == (again / name).read_bytes(), name
    other = make_cohort(tmp_path / "other", CohortSpec(**{**SPEC.__dict__, "seed": 6}))
    first = "sub-001/ses-01/anat/sub-001_ses-01_T1w.nii.gz"
    assert (cohort / first).read_bytes() != (other / first).read_bytes()


def test_effect_size_zero_is_null(tmp_path):
    bids = make_cohort(
        tmp_path / "null",
        CohortSpec(n_subjects=4, n_sites=2, seed=2, voxel_size=4.0, effect_size=0.0),
    )
    truth = _truth(bids)
    assert (truth.planted_fraction == 0).all() and np.allclose(truth.ratio, 1.0)


def test_refuses_foreign_folder(tmp_path):
    (tmp_path / "data.txt").write_text("precious")
    with pytest.raises(ValueError, match="not empty"):
        make_cohort(tmp_path, SPEC)


def test_region_missing_from_source_is_named(tmp_path):
    spec = CohortSpec(n_subjects=2, voxel_size=4.0, groups={"X": {"insula": 1.0}})
    with pytest.raises(ValueError, match="insula"):
        make_cohort(tmp_path / "x", spec)


@pytest.mark.skipif(not SYNTHSEG.is_dir(), reason="../shared/data/synthseg_labels absent")
def test_synthseg_anatomy(tmp_path):
    with pytest.raises(ValueError, match="precentral"):
        make_cohort(
            tmp_path / "a",
            CohortSpec(n_subjects=2, voxel_size=4.0, anatomy="synthseg", anatomy_dir=SYNTHSEG),
        )
    spec = CohortSpec(
        n_subjects=2,
        n_sites=1,
        voxel_size=4.0,
        anatomy="synthseg",
        anatomy_dir=SYNTHSEG,
        groups={"CN": {}, "ALS": {"medulla": 1.0}},
        flair_fraction=0.0,
        second_session_fraction=0.0,
        seed=3,
    )
    truth = _truth(make_cohort(tmp_path / "b", spec))
    medulla = truth[(truth.region == "medulla") & (truth.planted_fraction > 0)]
    assert len(medulla) == 1 and medulla.ratio.iloc[0] < 0.95

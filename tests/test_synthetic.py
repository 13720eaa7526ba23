"""Tests of the synthetic cohort generator (bids_app.synthetic)."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bids_app.synthetic import CohortSpec, main, make_cohort
from bids_app.synthetic.anatomy import MEDULLA, MIDBRAIN, PONS, WM_LESION

SYNTHSEG_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "synthseg_labels"

# small and coarse, so the whole file runs in well under a minute
SMALL = CohortSpec(
    n_subjects=6,
    n_sites=2,
    seed=1,
    voxel_size=3.0,
    longitudinal_fraction=0.34,
    flair_fraction=0.34,
)
TINY = CohortSpec(n_subjects=3, n_sites=2, seed=3, voxel_size=4.0)


def _read_tsv(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_cohort(tmp_path_factory.mktemp("synthetic") / "bids", SMALL)


@pytest.fixture(scope="module")
def truth(cohort: Path) -> list[dict[str, str]]:
    return _read_tsv(cohort / "sourcedata" / "ground_truth" / "truth.tsv")


def test_pybids_indexes_the_cohort(cohort: Path) -> None:
    bids = pytest.importorskip("bids")
    layout = bids.BIDSLayout(cohort, validate=True)
    assert layout.get_subjects() == [f"{i:03d}" for i in range(1, 7)]
    assert layout.get_sessions() == ["01", "02"]
    sessions = layout.get(suffix="sessions", extension=".tsv")
    n_sessions = sum(len(_read_tsv(Path(f.path))) for f in sessions)
    assert len(layout.get(suffix="T1w", extension=".nii.gz")) == n_sessions == 8
    flair_subjects = layout.get(
        suffix="FLAIR", extension=".nii.gz", return_type="id", target="subject"
    )
    assert 0 < len(flair_subjects) < 6


@pytest.mark.requires_bids_validator
def test_bids_validator_reports_no_errors(cohort: Path) -> None:
    result = subprocess.run(
        ["bids-validator", str(cohort), "--json"], capture_output=True, text=True, timeout=120
    )
    report = json.loads(result.stdout)
    assert report["issues"]["errors"] == [], report["issues"]["errors"]
    assert report["summary"]["subjects"] == [f"{i:03d}" for i in range(1, 7)]


def test_participants_and_sidecars(cohort: Path) -> None:
    participants = _read_tsv(cohort / "participants.tsv")
    described = json.loads((cohort / "participants.json").read_text())
    assert set(participants[0]) == set(described)
    assert {p["diagnosis"] for p in participants} == {"CN", "ALS"}
    assert {p["site"] for p in participants} == {"siteA", "siteB"}
    for row in participants:
        patient = row["diagnosis"] == "ALS"
        assert (row["alsfrs_r"] != "n/a") == patient
        if patient:
            assert 0 <= int(row["alsfrs_r"]) <= 48
            assert row["event"] in {"0", "1"}
    sidecar = json.loads(next(cohort.rglob("*_T1w.json")).read_text())
    for key in ("Manufacturer", "MagneticFieldStrength", "RepetitionTime", "InversionTime"):
        assert key in sidecar


def test_sites_store_arrays_in_different_orientations(cohort: Path) -> None:
    sites = {p["participant_id"]: p["site"] for p in _read_tsv(cohort / "participants.tsv")}
    expected = {
        "siteA": (("L", "A", "S"), (3.0, 3.0, 3.0)),
        "siteB": (("P", "I", "R"), (3.0, 3.0, 3.6)),
    }  # thicker sagittal slices
    seen = set()
    for path in cohort.glob("sub-*/ses-*/anat/*_T1w.nii.gz"):
        site = sites[path.name.split("_")[0]]
        img = nib.load(path)
        assert nib.aff2axcodes(img.affine) == expected[site][0]
        np.testing.assert_allclose(img.header.get_zooms(), expected[site][1], rtol=1e-6)
        seen.add(site)
    assert seen == set(expected)


def test_ground_truth_maps_share_the_t1w_grid(cohort: Path) -> None:
    for t1w in cohort.glob("sub-*/ses-*/anat/*_T1w.nii.gz"):
        stem = t1w.name.replace("_T1w.nii.gz", "")
        truth_dir = cohort / "sourcedata" / "ground_truth" / t1w.relative_to(cohort).parent
        image = nib.load(t1w)
        assert image.get_data_dtype() == np.int16
        dseg = nib.load(truth_dir / f"{stem}_dseg.nii.gz")
        mask = nib.load(truth_dir / f"{stem}_desc-brain_mask.nii.gz")
        for other in (dseg, mask):
            assert other.shape == image.shape
            np.testing.assert_allclose(other.affine, image.affine)
        labels = np.asarray(dseg.dataobj)
        brainstem = {MIDBRAIN, PONS, MEDULLA}
        assert brainstem <= set(np.unique(labels).tolist())
        # brain tissue is bright and the background dark in T1w
        data = np.asarray(image.dataobj)
        assert data[labels == 2].mean() > 3 * data[labels == 0].mean()


def test_lesions_only_in_subjects_with_flair(cohort: Path) -> None:
    for flair in cohort.glob("sub-*/ses-*/anat/*_FLAIR.nii.gz"):
        stem = flair.name.replace("_FLAIR.nii.gz", "")
        roi = nib.load(flair.with_name(f"{stem}_label-lesion_roi.nii.gz"))
        lesion = np.asarray(roi.dataobj) > 0
        assert lesion.sum() > 0
        # lesions are bright in FLAIR relative to white matter
        truth_dir = cohort / "sourcedata" / "ground_truth" / flair.relative_to(cohort).parent
        labels = np.asarray(nib.load(truth_dir / f"{stem}_dseg.nii.gz").dataobj)
        assert np.array_equal(lesion, labels == WM_LESION)
        data = np.asarray(nib.load(flair).dataobj)
        assert data[lesion].mean() > data[(labels == 2) | (labels == 41)].mean()
    without = [
        t
        for t in cohort.glob("sub-*/ses-*/anat/*_T1w.nii.gz")
        if not t.with_name(t.name.replace("_T1w", "_FLAIR")).exists()
    ]
    assert without and not any(list(t.parent.glob("*_roi.nii.gz")) for t in without)


def test_planted_atrophy_is_realised(truth: list[dict[str, str]]) -> None:
    planted = [r for r in truth if float(r["planted_fraction"]) > 0]
    assert {r["region"] for r in planted} == {"precentral", "paracentral", "medulla"}
    assert all(r["diagnosis"] == "ALS" for r in planted)
    errors: dict[str, list[float]] = {}
    for row in planted:
        realised, target = float(row["realised_ratio"]), float(row["target_ratio"])
        assert abs(realised - target) < 0.1, row
        assert float(row["volume_with_ml"]) < float(row["volume_without_ml"])
        errors.setdefault(row["region"], []).append(realised - target)
    for region, errs in errors.items():
        assert abs(np.mean(errs)) < 0.05, (region, errs)


def test_controls_have_no_planted_change(truth: list[dict[str, str]]) -> None:
    controls = [r for r in truth if r["diagnosis"] == "CN"]
    assert controls
    assert all(float(r["planted_fraction"]) == 0 for r in controls)
    assert all(r["realised_ratio"] == "1.0000" for r in controls)


def test_truth_volumes_match_the_label_maps(cohort: Path, truth: list[dict[str, str]]) -> None:
    row = next(r for r in truth if r["region"] == "precentral" and r["diagnosis"] == "ALS")
    sub, ses = row["participant_id"], row["session_id"]
    path = cohort / "sourcedata" / "ground_truth" / sub / ses / "anat" / f"{sub}_{ses}_dseg.nii.gz"
    img = nib.load(path)
    labels = np.asarray(img.dataobj)
    voxel_ml = float(np.prod(img.header.get_zooms())) / 1000
    volume = np.isin(labels, (1024, 2024)).sum() * voxel_ml
    assert volume == pytest.approx(float(row["volume_with_ml"]), abs=1e-3)
    assert volume < float(row["volume_without_ml"])


def test_second_session_progresses(truth: list[dict[str, str]]) -> None:
    by_key = {(r["participant_id"], r["session_id"], r["region"]): r for r in truth}
    follow_ups = [k for k in by_key if k[1] == "ses-02" and by_key[k]["diagnosis"] == "ALS"]
    assert follow_ups
    for sub, _, region in follow_ups:
        first = float(by_key[(sub, "ses-01", region)]["planted_fraction"])
        second = float(by_key[(sub, "ses-02", region)]["planted_fraction"])
        assert second == pytest.approx(first * SMALL.progression, abs=1e-3)


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    first = _digests(make_cohort(tmp_path / "a", TINY, n_jobs=1))
    second = _digests(make_cohort(tmp_path / "b", TINY, n_jobs=2))
    assert first == second
    other = dataclasses.replace(TINY, seed=TINY.seed + 1)
    third = _digests(make_cohort(tmp_path / "c", other))
    t1w = [name for name in first if name.endswith("_T1w.nii.gz")]
    assert t1w and all(first[name] != third.get(name) for name in t1w)


def test_null_cohort_has_no_planted_deformation(tmp_path: Path) -> None:
    spec = dataclasses.replace(TINY, effect_size=0.0, seed=5)
    rows = _read_tsv(make_cohort(tmp_path / "null", spec) / "sourcedata/ground_truth/truth.tsv")
    assert {r["diagnosis"] for r in rows} == {"CN", "ALS"}
    assert all(r["realised_ratio"] == "1.0000" for r in rows)
    assert all(float(r["planted_fraction"]) == 0 for r in rows)


def test_refuses_a_foreign_non_empty_folder(tmp_path: Path, capsys) -> None:
    (tmp_path / "notes.txt").write_text("not a cohort")
    assert main([str(tmp_path), "--n-subjects", "2"]) == 1
    assert "refusing" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_unknown_region_and_bad_parameters_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown region 'motor'"):
        make_cohort(tmp_path, CohortSpec(groups={"CN": {}, "ALS": {"motor": 1.0}}))
    with pytest.raises(ValueError, match="effect_size"):
        make_cohort(tmp_path, CohortSpec(effect_size=0.9))
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(
    not SYNTHSEG_DIR.is_dir(), reason=f"SynthSeg label maps absent ({SYNTHSEG_DIR})"
)
def test_synthseg_anatomy(tmp_path: Path) -> None:
    spec = CohortSpec(
        n_subjects=2,
        n_sites=1,
        seed=2,
        voxel_size=4.0,
        disease="als-bulbar",
        anatomy="synthseg",
        anatomy_dir=str(SYNTHSEG_DIR),
        longitudinal_fraction=0.0,
        flair_fraction=0.0,
    )
    root = make_cohort(tmp_path / "ss", spec)
    rows = _read_tsv(root / "sourcedata" / "ground_truth" / "truth.tsv")
    assert "precentral" not in {r["region"] for r in rows}  # no cortical parcellation there
    medulla = [r for r in rows if r["region"] == "medulla" and r["diagnosis"] == "ALS"]
    assert medulla and all(
        abs(float(r["realised_ratio"]) - float(r["target_ratio"])) < 0.1 for r in medulla
    )
    # the two subjects come from different real label maps with extra-cerebral labels
    tivs = {r["participant_id"]: r["tiv_ml"] for r in rows}
    assert len(set(tivs.values())) == 2
    dseg = next(root.rglob("*_dseg.nii.gz"))
    assert (np.asarray(nib.load(dseg).dataobj) >= 500).any()


@pytest.mark.skipif(
    not SYNTHSEG_DIR.is_dir(), reason=f"SynthSeg label maps absent ({SYNTHSEG_DIR})"
)
def test_region_missing_from_the_source_is_a_clear_error(tmp_path: Path) -> None:
    spec = CohortSpec(n_subjects=2, anatomy="synthseg", anatomy_dir=str(SYNTHSEG_DIR))
    with pytest.raises(ValueError, match=r"'paracentral'.*synthseg map training_seg_01"):
        make_cohort(tmp_path / "ss", spec)

"""Bad images fail their own session up front, with the file and the fix; odd but valid ones work.

One participant run over a 4 mm synthetic head: a good subject (with a FLAIR in another
orientation and an empty lesion mask), valid variants that must complete, and one subject per
bad image, which must fail before any registration with a one-line reason.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bids_app.cli.errors import ExitCode
from bids_app.cli.main import main
from bids_app.preprocessing.quality import fraction_inside, lesion_mask_flag
from tests.test_conform import RGB, with_sform

#: Failing subject -> (its file, words of the reason, words of the fix), as the summary says.
FAILING = {
    "complex": ("sub-complex_T1w.nii.gz", "complex", "magnitude"),
    "rgb": ("sub-rgb_T1w.nii.gz", "RGB", "grey-scale"),
    "zeroaffine": ("sub-zeroaffine_T1w.nii.gz", "singular", "fslorient"),
    "singular": ("sub-singular_T1w.nii.gz", "singular", "fslorient"),
    "nocodes": ("sub-nocodes_T1w.nii.gz", "qform and sform codes are both 0", "fslorient"),
    "hugevoxels": ("sub-hugevoxels_T1w.nii.gz", "voxel size 100 x 100 x 100 mm", "units"),
    "tiny": ("sub-tiny_T1w.nii.gz", "field of view", "whole-head"),
    "dangling": ("sub-dangling_T1w.nii.gz", "broken symbolic link", "datalad get"),
    "lesionshape": ("sub-lesionshape_label-lesion_roi.nii.gz", "grid", "resample it onto"),
}
#: Subjects that must complete: valid images a tool should not refuse.
COMPLETE = ("good", "int8", "shifted")


def _synthetic(root: Path) -> tuple[nib.Nifti1Image, np.ndarray]:
    """A synthetic head at 4 mm and its true brain mask."""
    command = [sys.executable, "-m", "bids_app.synthetic", str(root), "--n-subjects", "1"]
    subprocess.run(
        [*command, "--n-sites", "1", "--voxel-size", "4", "--seed", "2"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    t1w = nib.load(next(root.glob("sub-*/ses-*/anat/*_T1w.nii.gz")))
    brain = next((root / "sourcedata").rglob("*_desc-brain_mask.nii.gz"))
    return t1w, np.asarray(nib.load(brain).dataobj) > 0


def _reoriented(img: nib.Nifti1Image, axcodes: str) -> nib.Nifti1Image:
    """The same image stored in other axes, its affine matching (the world is unchanged)."""
    start = nib.orientations.io_orientation(img.affine)
    transform = nib.orientations.ornt_transform(start, nib.orientations.axcodes2ornt(axcodes))
    data = nib.orientations.apply_orientation(np.asanyarray(img.dataobj), transform)
    affine = img.affine @ nib.orientations.inv_ornt_aff(transform, img.shape)
    return nib.Nifti1Image(data, affine)


def _images(t1w: nib.Nifti1Image, brain: np.ndarray) -> dict[str, dict[str, object]]:
    """Subject label -> {suffix: image, or a Path for a symbolic link to it}."""
    data = np.asarray(t1w.dataobj, dtype=np.float32)
    affine = t1w.affine
    flair = np.where(data > 0, data.max() - data, 0).astype(np.float32)  # inverted contrast
    int8 = np.rint(data / data.max() * 127).astype(np.int8)
    rgb = np.zeros(data.shape, dtype=RGB)
    for channel in "RGB":
        rgb[channel] = np.rint(data / data.max() * 255).astype(np.uint8)
    singular = affine.copy()
    singular[:3, 2] = 0.0  # the third axis collapsed
    huge = affine.copy()
    huge[:3, :3] *= 25.0  # 100 mm voxels
    centre = np.array(data.shape) // 2
    corner = nib.affines.apply_affine(affine, centre - 2)
    tiny = affine.copy()
    tiny[:3, 3] = corner
    edge = np.zeros(data.shape, np.uint8)  # a lesion at the edge of the brain (last x index)...
    last = np.argwhere(brain)[:, 0].max()
    edge[last - 3 : last + 1] = brain[last - 3 : last + 1]
    shifted = affine.copy()  # ...its header shifted 40 mm further out, along the x index
    shifted[:3, 3] += 40.0 * affine[:3, 0] / np.linalg.norm(affine[:3, 0])
    coarse = affine @ np.diag([2.0, 2.0, 2.0, 1.0])
    half = nib.Nifti1Image(np.asarray(brain[::2, ::2, ::2], np.uint8), coarse)
    return {
        "good": {
            "T1w": t1w,
            "FLAIR": _reoriented(nib.Nifti1Image(flair, affine), "LIA"),
            "label-lesion_roi": nib.Nifti1Image(np.zeros(data.shape, np.uint8), affine),
        },
        "int8": {"T1w": nib.Nifti1Image(int8, affine)},
        "shifted": {"T1w": t1w, "label-lesion_roi": nib.Nifti1Image(edge, shifted)},
        "complex": {"T1w": nib.Nifti1Image(data.astype(np.complex64), affine)},
        "rgb": {"T1w": nib.Nifti1Image(rgb, affine)},
        "zeroaffine": {"T1w": with_sform(t1w, np.zeros((4, 4)), code=1)},
        "singular": {"T1w": with_sform(t1w, singular, code=1)},
        "nocodes": {"T1w": with_sform(t1w, None, code=0)},
        "hugevoxels": {"T1w": nib.Nifti1Image(data, huge)},
        "tiny": {"T1w": nib.Nifti1Image(data[tuple(slice(c - 2, c + 2) for c in centre)], tiny)},
        "dangling": {"T1w": Path("../../sourcedata/missing_T1w.nii.gz")},
        "lesionshape": {"T1w": t1w, "label-lesion_roi": half},
    }


def _dataset(root: Path, subjects: dict[str, dict[str, object]]) -> Path:
    """Write a raw BIDS dataset of these subjects (no sessions)."""
    root.mkdir(parents=True)
    (root / "dataset_description.json").write_text(
        json.dumps({"Name": "bad images", "BIDSVersion": "1.9.0", "DatasetType": "raw"})
    )
    rows = ["participant_id\tdiagnosis\tage\tsex"]
    for label, files in subjects.items():
        rows.append(f"sub-{label}\tCN\t60\tF")
        anat = root / f"sub-{label}" / "anat"
        anat.mkdir(parents=True)
        for suffix, content in files.items():
            path = anat / f"sub-{label}_{suffix}.nii.gz"
            if isinstance(content, Path):
                path.symlink_to(content)
            else:
                nib.save(content, path)
    (root / "participants.tsv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict[str, object]:
    """One participant run over every case: its exit code, stderr, summary and outputs."""
    root = tmp_path_factory.mktemp("bad_images")
    t1w, brain = _synthetic(root / "synthetic")
    bids = _dataset(root / "bids", _images(t1w, brain))
    out = root / "out"
    args = [str(bids), str(out), "participant", "-w", str(root / "work"), "--sloppy"]
    args += ["--skull-strip", "template", "--features", "volumes", "--skip-bids-validation"]
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        code = main([*args, "--nprocs", "2"])
    summary = next((out / "logs").glob("summary_*.txt")).read_text()
    return {
        "code": code,
        "stderr": stderr.getvalue(),
        "summary": summary,
        "out": out,
        "work": root / "work",
    }


@pytest.mark.slow
def test_the_run_reports_failed_subjects_without_a_traceback(run):
    assert run["code"] == ExitCode.SUBJECTS_FAILED
    assert "Traceback" not in run["stderr"]
    assert f"{len(COMPLETE)} done" in run["summary"]
    assert f"{len(FAILING)} failed" in run["summary"]
    assert not [path for path in run["out"].rglob("*") if ".part" in path.name]


@pytest.mark.slow
@pytest.mark.parametrize("label", sorted(FAILING))
def test_a_bad_image_fails_its_session_naming_the_file_and_the_fix(run, label):
    name, reason, fix = FAILING[label]
    line = next(row for row in run["summary"].splitlines() if f"FAILED sub-{label}:" in row)
    assert "DataError" in line and name in line and reason in line and fix in line, line
    assert not (run["out"] / f"sub-{label}").exists()
    assert not (run["work"] / f"sub_{label}_wf").exists()  # refused before any step ran


def _qc(run, label: str) -> dict:
    qc = run["out"] / f"sub-{label}/anat/sub-{label}_desc-preproc_qc.json"
    return json.loads(qc.read_text())


def _volumes(run, label: str) -> dict:
    table = run["out"] / f"sub-{label}/anat/sub-{label}_desc-volumes_morph.tsv"
    header, values = table.read_text().splitlines()[:2]
    return dict(zip(header.split("\t"), values.split("\t"), strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("label", COMPLETE)
def test_valid_images_complete(run, label):
    anat = run["out"] / f"sub-{label}" / "anat"
    assert (anat / f"sub-{label}_desc-brain_mask.nii.gz").exists()
    assert float(_volumes(run, label)["tiv"]) > 0
    assert f"FAILED sub-{label}:" not in run["summary"]


@pytest.mark.slow
def test_int8_is_read_as_any_other_integer_type(run):
    assert float(_volumes(run, "int8")["tiv"]) == pytest.approx(
        float(_volumes(run, "good")["tiv"]), rel=0.05
    )


@pytest.mark.slow
def test_a_flair_in_other_axes_is_coregistered(run):
    assert "FLAIR_coregistration" not in _qc(run, "good")["Flags"]
    anat = run["out"] / "sub-good" / "anat"
    names = ("space-T1w_desc-preproc_FLAIR", "desc-preproc_T1w", "desc-brain_mask")
    flair, t1w, mask = (np.asarray(nib.load(anat / f"sub-good_{n}.nii.gz").dataobj) for n in names)
    a, b = (np.asarray(image, dtype=float)[mask > 0] for image in (flair, t1w))
    assert np.corrcoef(a, b)[0, 1] < -0.6  # the inverted contrast, voxel for voxel (-0.87)


@pytest.mark.slow
def test_an_empty_lesion_mask_is_a_session_without_lesions(run):
    assert float(_volumes(run, "good")["lesion"]) == 0.0
    assert "lesion_mask" not in _qc(run, "good")["Flags"]


@pytest.mark.slow
def test_a_lesion_mask_outside_the_brain_is_flagged(run):
    flag = _qc(run, "shifted")["Flags"]["lesion_mask"]
    assert "outside the brain mask" in flag
    assert "lesion mask" in (run["out"] / "sub-shifted.html").read_text()


def test_lesion_share_inside_the_brain_goes_through_the_affines():
    brain = nib.Nifti1Image(np.pad(np.ones((10, 10, 10), np.uint8), 5), np.diag([2, 2, 2, 1.0]))
    lesion = np.zeros((20, 20, 20), np.uint8)  # a 1 mm grid over the same world
    lesion[12:16, 12:16, 12:16] = 1
    assert fraction_inside(nib.Nifti1Image(lesion, np.eye(4)), brain) == 1.0
    assert lesion_mask_flag(nib.Nifti1Image(lesion, np.eye(4)), brain) is None
    far = np.eye(4)
    far[:3, 3] = 500.0  # off the brain mask's grid altogether
    assert fraction_inside(nib.Nifti1Image(lesion, far), brain) == 0.0
    assert "100%" in lesion_mask_flag(nib.Nifti1Image(lesion, far), brain)
    assert np.isnan(fraction_inside(nib.Nifti1Image(lesion * 0, np.eye(4)), brain))
    assert lesion_mask_flag(nib.Nifti1Image(lesion * 0, np.eye(4)), brain) is None

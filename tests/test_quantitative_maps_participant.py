"""A quantitative map through the participant level: co-registered without N4, range-scaled.

A synthetic 3 mm session gets a ``T1map`` in seconds (BIDS units) with a planted cube of 2 s;
the participant level must co-register it to the T1w keeping its values (no N4), and write its
CNN-ready crop as the clip-and-scale of the template-space map to Lu et al. 2023's 0-2.5 s.
"""

from __future__ import annotations

import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from nilearn.image import resample_to_img

from bids_app.cli.main import main

pytestmark = pytest.mark.slow

PLANTED_SECONDS = 2.0


@pytest.fixture(scope="module")
def mapped(tmp_path_factory):
    """One synthetic session with a T1w and a T1map (seconds) holding a planted cube."""
    root = tmp_path_factory.mktemp("qmaps")
    bids = root / "bids"
    command = [sys.executable, "-m", "bids_app.synthetic", str(bids), "--n-subjects", "1"]
    subprocess.run(
        [*command, "--n-sites", "1", "--voxel-size", "3", "--seed", "4"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    t1w_path = sorted(bids.glob("sub-*/ses-*/anat/*_T1w.nii.gz"))[0]
    t1w = nib.load(t1w_path)
    data = np.asarray(t1w.dataobj, dtype=np.float32)
    # T1 falls as the T1w signal rises: 0.5 s (brightest) to 3.5 s (background, above the range)
    t1map = 3.5 - 3.0 * np.clip(data / np.percentile(data, 99.5), 0, 1)
    truth = sorted((bids / "sourcedata" / "ground_truth").rglob("*_desc-brain_mask.nii.gz"))[0]
    brain = np.asarray(nib.load(truth).dataobj) > 0
    centre = np.round(np.argwhere(brain).mean(axis=0)).astype(int)
    cube = tuple(slice(c - 2, c + 3) for c in centre)
    t1map[cube] = PLANTED_SECONDS
    map_path = t1w_path.with_name(t1w_path.name.replace("_T1w", "_T1map"))
    nib.save(nib.Nifti1Image(t1map.astype(np.float32), t1w.affine), map_path)
    map_path.with_name(map_path.name.replace(".nii.gz", ".json")).write_text(
        json.dumps({"Units": "s"})
    )
    out = root / "out"
    args = ["-w", str(root / "work"), "--sloppy", "--skip-bids-validation", "--seed", "2"]
    args += ["--features", "volumes", "--skull-strip", "template"]
    args += ["--dl-contrasts", "T1w", "T1map", "--nprocs", "2"]
    assert main([str(bids), str(out), "participant", *args]) == 0
    return out, t1w_path, centre


def _one(out, pattern):
    (found,) = sorted(out.rglob(pattern))
    return found


def test_map_is_coregistered_without_n4(mapped):
    out, _, centre = mapped
    in_t1w = nib.load(_one(out, "*_space-T1w_desc-preproc_T1map.nii.gz"))
    values = np.asarray(in_t1w.dataobj, dtype=np.float32)
    # the same session's grid: the rigid registration stays near identity, and without N4 the
    # map keeps its seconds (N4 rescales intensities around 1, bSpline would ring at the cube)
    core = values[tuple(slice(c - 1, c + 2) for c in centre)]
    np.testing.assert_allclose(np.median(core), PLANTED_SECONDS, atol=0.1)
    assert values.max() <= 3.5 + 1e-3 and values.min() >= 0.5 - 1e-3


def test_crop_is_the_clip_and_scale_of_the_map(mapped):
    out, _, _ = mapped
    crop_path = _one(out, "*_space-MNI152NLin2009aSym_desc-cnn_T1map.nii.gz")
    crop = nib.load(crop_path)
    data = np.asarray(crop.dataobj, dtype=np.float32)
    assert data.min() >= 0.0 and data.max() <= 1.0 and data.max() > 0.5
    sidecar_path = crop_path.with_name(crop_path.name.replace(".nii.gz", ".json"))
    sidecar = json.loads(sidecar_path.read_text())
    assert sidecar["ValueRange"] == [0.0, 2.5] and "range 0-2.5" in sidecar["Normalisation"]
    mni = nib.load(_one(out, "*_space-MNI152NLin2009aSym_desc-preproc_T1map.nii.gz"))
    mask = nib.load(_one(out, "*_space-MNI152NLin2009aSym_desc-brain_mask.nii.gz"))
    on_crop = {
        name: np.asarray(
            resample_to_img(
                image, crop, interpolation="nearest", copy_header=True, force_resample=True
            ).dataobj,
            dtype=np.float32,
        )
        for name, image in (("map", mni), ("mask", mask))
    }
    brain = on_crop["mask"] > 0
    assert brain.sum() > 100
    expected = np.clip(on_crop["map"] / 2.5, 0.0, 1.0)
    np.testing.assert_allclose(data[brain], expected[brain], atol=1e-4)
    assert (data[~brain] == 0).all()
    # the weighted T1w's crop keeps its normalisation
    t1w_crop = _one(out, "*_space-MNI152NLin2009aSym_desc-cnn_T1w.json")
    assert json.loads(t1w_crop.read_text())["Normalisation"] == "minmax"

"""Accuracy of the volumes and thickness on a real brain against FreeSurfer's labels.

Issue 4 targets: on the FreeSurfer-processed brain of ../shared/data (``norm.mgz`` run with
``--skull-strip none``) the brain-stem, lateral-ventricle and cerebellum volumes lie within 15 %
of FreeSurfer's labels, and the mean cortical thickness over the Desikan-Killiany regions lies
in 2.0-3.5 mm (the planted medulla shrinkage and the null cohort are in
``tests/test_planted_atrophy.py``).

The input is ``norm.mgz`` cropped to the brain plus :data:`CROP_MARGIN_VOXELS`: the 256^3
FreeSurfer grid is three quarters air, which every step of the pipeline would otherwise process
(N4, registration, segmentation, atlas warps). Cropping keeps the 1 mm voxels and their world
coordinates, so the volumes and the thickness are those of the same brain; DiReCT already runs
on the brain's bounding box whatever the field of view. With one process and one ITK thread the
test took 353 CPU-seconds (DiReCT about 245 of them), against 1003 for the 256^3 input with
``--nprocs 2`` and DiReCT's former 20 inversion iterations (same machine, same day, loaded);
the volume ratios were unchanged (1.06, 0.89, 0.87 against 1.06, 0.88, 0.87). With the local
SyN of the brain stem and thickness per hemisphere (2026-12-06): 0.98, 0.89, 0.87; mean
thickness 2.96 mm.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from bids_app.cli.main import main
from bids_app.utils.arrays import bounding_box
from tests.conftest import SHARED_DATA, read_volumes

FREESURFER = SHARED_DATA / "freesurfer"

#: FreeSurfer aseg codes of the structures compared.
FREESURFER_LABELS = {
    "brainstem": (16,),
    "lateral_ventricles": (4, 43),
    "cerebellum": (7, 8, 46, 47),
}

#: Background voxels kept around the brain of ``norm.mgz`` (1 mm): room for the registration's
#: and N4's boundary handling; the skull is absent, so this is air.
CROP_MARGIN_VOXELS = 10


def cropped_to_brain(image: nib.spatialimages.SpatialImage, margin: int) -> nib.Nifti1Image:
    """Crop a skull-stripped image to its non-zero voxels plus ``margin`` (same world grid)."""
    data = np.asarray(image.dataobj)
    box = bounding_box(data > 0, margin)
    affine = image.slicer[box].affine
    return nib.Nifti1Image(data[box], affine)


@pytest.mark.long
@pytest.mark.slow
@pytest.mark.skipif(not FREESURFER.exists(), reason="needs ../shared/data/freesurfer")
def test_volumes_agree_with_freesurfer(tmp_path: Path) -> None:
    bids = tmp_path / "bids"
    anat = bids / "sub-fs" / "anat"
    anat.mkdir(parents=True)
    norm = cropped_to_brain(nib.load(FREESURFER / "norm.mgz"), CROP_MARGIN_VOXELS)
    nib.save(norm, anat / "sub-fs_T1w.nii.gz")
    (bids / "dataset_description.json").write_text(
        json.dumps({"Name": "freesurfer", "BIDSVersion": "1.9.0"})
    )
    out = tmp_path / "out"
    # one process, one ITK thread: the CI runs two test workers on two cores, and nipype's
    # MultiProc scheduler itself burns CPU while it waits (a garbage collection every 0.2 s)
    args = ["-w", str(tmp_path / "work"), "--skull-strip", "none", "--nprocs", "1"]
    args += ["--features", "volumes", "thickness", "--skip-bids-validation"]
    # the product's default DiReCT preset ("coarse" read a mean of 3.58 mm here: too thick)
    assert main([str(bids), str(out), "participant", *args]) == 0
    ours = read_volumes(out).loc["sub-fs"]
    aseg = nib.load(FREESURFER / "aparc.a2009s+aseg.mgz")
    labels = np.asarray(aseg.dataobj)
    voxel_ml = abs(np.linalg.det(aseg.affine[:3, :3])) / 1000
    ratios = {
        name: ours[name] / (np.isin(labels, codes).sum() * voxel_ml)
        for name, codes in FREESURFER_LABELS.items()
    }
    print("ours / FreeSurfer:", {name: round(ratio, 3) for name, ratio in ratios.items()})
    for name, ratio in ratios.items():
        assert abs(ratio - 1) <= 0.15, f"{name}: {ratio:.3f} x FreeSurfer's volume"
    thickness = pd.read_csv(next(out.rglob("*_desc-thickness_morph.tsv")), sep="\t")
    regions = [c for c in thickness.columns if c.endswith(("_left", "_right"))]
    mean = thickness[regions].to_numpy(dtype=float)
    assert 2.0 <= np.nanmean(mean) <= 3.5
    for region in ("precentral", "paracentral"):
        assert 1.5 <= thickness[region].iloc[0] <= 4.0

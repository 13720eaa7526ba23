"""Conform: orientation, type and header checks keep world coordinates exact."""

import gzip

import nibabel as nib
import numpy as np
import pytest

from bids_app.errors import DataError
from bids_app.preprocessing.conform import conform, load_image


def _world_of_max(img):
    data = np.asanyarray(img.dataobj)
    index = np.unravel_index(np.argmax(data), data.shape)
    return nib.affines.apply_affine(img.affine, index)


@pytest.mark.parametrize("axcodes", ["LAS", "PIR", "ASL", "RAS"])
def test_reorientation_keeps_world_coordinates(axcodes):
    rng = np.random.default_rng(1)
    data = rng.random((7, 8, 9)).astype(np.float32)
    target = nib.orientations.axcodes2ornt(axcodes)
    transform = nib.orientations.ornt_transform(nib.orientations.axcodes2ornt("RAS"), target)
    affine = np.diag([2.0, 1.5, 3.0, 1.0]) @ nib.orientations.inv_ornt_aff(transform, (7, 8, 9))
    original = nib.Nifti1Image(nib.orientations.apply_orientation(data, transform), affine)
    out, report = conform(original)
    assert nib.aff2axcodes(out.affine) == ("R", "A", "S")
    assert report["orientation"] == axcodes
    assert out.get_data_dtype() == np.float32
    np.testing.assert_allclose(_world_of_max(out), _world_of_max(original))
    assert ("reoriented" in " ".join(report["changes"])) == (axcodes != "RAS")
    assert np.allclose(out.header.get_qform(), out.header.get_sform())


def test_singleton_4d_is_squeezed():
    img = nib.Nifti1Image(np.random.default_rng(0).random((5, 5, 5, 1)), np.eye(4))
    out, report = conform(img)
    assert out.shape == (5, 5, 5)
    assert "squeezed" in report["changes"][0]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (np.random.default_rng(0).random((5, 5, 5, 3)), "expected a 3D image"),
        (np.random.default_rng(0).random((5, 5, 1)), "2D image"),
        (np.zeros((5, 5, 5)), "constant"),
        (np.where(np.eye(5)[..., None] > 0, np.nan, 1.0) * np.ones((5, 5, 5)), "NaN or Inf"),
    ],
)
def test_bad_images(data, message):
    with pytest.raises(DataError, match=message):
        conform(nib.Nifti1Image(data, np.eye(4)), source="x.nii.gz")


def test_qform_sform_disagreement_is_reported():
    img = nib.Nifti1Image(np.random.default_rng(0).random((5, 5, 5)), np.eye(4))
    shifted = np.eye(4)
    shifted[0, 3] = 10
    img.set_qform(shifted, code=1)
    img.set_sform(np.eye(4), code=1)
    out, report = conform(img)
    assert "sform" in " ".join(report["changes"])
    np.testing.assert_allclose(out.affine, np.eye(4))


def test_corrupt_files_are_named(tmp_path):
    good = tmp_path / "good.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)), good)
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(good.read_bytes()[:60])
    fake = tmp_path / "fake.nii.gz"
    fake.write_bytes(gzip.compress(b"this is not a NIfTI header" * 20))
    for path in (truncated, fake, tmp_path / "missing.nii.gz"):
        with pytest.raises(DataError, match=path.name):
            load_image(path)
    assert load_image(good).shape == (4, 4, 4)

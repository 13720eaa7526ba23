"""Conform: orientation, type and header checks keep world coordinates exact."""

import gzip

import nibabel as nib
import numpy as np
import pytest

from bids_app.errors import DataError
from bids_app.preprocessing.conform import (
    MIN_FOV_MM,
    VOXEL_SIZE_MM,
    conform,
    coverage_error,
    grid_error,
    image_error,
    load_image,
)

#: NIfTI's RGB24 data type, as nibabel reads it.
RGB = [("R", "u1"), ("G", "u1"), ("B", "u1")]


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


def with_sform(img: nib.Nifti1Image, sform: np.ndarray | None, code: int) -> nib.Nifti1Image:
    """A copy whose header holds this sform (and no qform), as loaded from a file."""
    out = nib.Nifti1Image(np.asanyarray(img.dataobj), img.affine)
    out.set_qform(None, code=0)
    out.set_sform(sform, code=code)
    return nib.Nifti1Image.from_bytes(out.to_bytes())  # img.affine now comes from the header


def _head(shape=(40, 48, 40), zoom=4.0, dtype=np.int16) -> nib.Nifti1Image:
    data = np.zeros(shape, dtype)
    data[5:-5, 5:-5, 5:-5] = 100
    affine = np.diag([zoom, zoom, zoom, 1.0])
    return nib.Nifti1Image(data, affine)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16, np.float64])
def test_real_valued_types_pass(dtype):
    assert image_error(_head(dtype=dtype), "x.nii.gz") is None


@pytest.mark.parametrize(
    ("img", "message"),
    [
        (_head(dtype=np.complex64), "complex"),
        (nib.Nifti1Image(np.zeros((4, 4, 4), RGB), None), "RGB"),
        (with_sform(_head(), np.zeros((4, 4)), code=1), "singular"),
        (with_sform(_head(), np.diag([4.0, 4.0, 0.0, 1.0]), code=1), "singular"),
        (with_sform(_head(), None, code=0), "both 0"),
        (_head(zoom=100.0), "voxel size"),
        (_head(zoom=0.01), "voxel size"),
    ],
)
def test_bad_headers_and_types_are_named(img, message):
    error = image_error(img, "x.nii.gz")
    assert isinstance(error, DataError)
    assert message in str(error) and str(error).startswith("x.nii.gz: ")


def test_voxel_bounds_keep_thick_clinical_slices():
    thick = nib.Nifti1Image(np.ones((10, 10, 10), np.int16), np.diag([0.5, 0.5, 12.0, 1.0]))
    assert image_error(thick, "x.nii.gz") is None
    assert VOXEL_SIZE_MM[0] <= 0.5 and VOXEL_SIZE_MM[1] >= 12.0


def test_coverage_needs_a_whole_head():
    assert coverage_error(_head(), "x.nii.gz") is None  # 160 x 192 x 160 mm
    slab = _head(shape=(40, 48, 10))  # 40 mm thick
    assert f"{MIN_FOV_MM:g} mm" in str(coverage_error(slab, "x.nii.gz"))


def test_an_empty_mask_may_be_conformed():
    empty = nib.Nifti1Image(np.zeros((5, 5, 5), np.uint8), np.diag([-1.0, 1, 1, 1]))
    with pytest.raises(DataError, match="constant"):
        conform(empty, "lesion.nii.gz")
    out, _ = conform(empty, "lesion.nii.gz", allow_constant=True)
    assert not np.asarray(out.dataobj).any() and nib.aff2axcodes(out.affine) == ("R", "A", "S")


def test_a_mask_is_on_its_image_grid_whatever_its_axes():
    t1w = _head(shape=(40, 48, 44))
    transform = nib.orientations.axcodes2ornt("PIR")
    permuted = nib.orientations.apply_orientation(np.asanyarray(t1w.dataobj), transform)
    affine = t1w.affine @ nib.orientations.inv_ornt_aff(transform, t1w.shape)
    assert grid_error(nib.Nifti1Image(permuted, affine), t1w, "m", "t") is None
    coarse = nib.Nifti1Image(np.ones((20, 24, 22), np.uint8), np.diag([8.0, 8.0, 8.0, 1.0]))
    assert "resample it onto the T1w" in str(grid_error(coarse, t1w, "m", "t"))


def test_conform_refuses_what_image_error_refuses():
    with pytest.raises(DataError, match="both 0"):
        conform(with_sform(_head(), None, code=0), "x.nii.gz")


def test_a_broken_link_is_named_with_the_fix(tmp_path):
    link = tmp_path / "sub-01_T1w.nii.gz"
    link.symlink_to(tmp_path / ".git" / "annex" / "objects" / "absent")
    with pytest.raises(DataError, match=r"broken symbolic link .* datalad get sub-01_T1w\.nii\.gz"):
        load_image(link)

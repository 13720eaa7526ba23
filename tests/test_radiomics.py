"""PyRadiomics features of paper 000 (section 2.2.1) on small synthetic images (2-2.5 mm)."""

from __future__ import annotations

import json
import logging
import math
import re

import nibabel as nib
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from bids_app.features import radiomics as rad
from bids_app.features.radiomics import (
    FEATURE_CLASSES,
    extract_radiomics,
    feature_names,
    radiomics_settings,
)

#: Paper 000, section 2.2.1: features per class (107 in all).
SEED_COUNTS = {
    "firstorder": 18,
    "shape": 14,
    "glcm": 24,
    "gldm": 14,
    "glrlm": 16,
    "glszm": 16,
    "ngtdm": 5,
}

SHAPE = (40, 40, 40)


def _affine(zooms=(2.0, 2.0, 2.0), rotation=None, shape=SHAPE) -> np.ndarray:
    """Affine whose grid is centred on the world origin."""
    linear = (np.eye(3) if rotation is None else rotation) @ np.diag(zooms)
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = -linear @ ((np.array(shape) - 1) / 2)
    return affine


#: Anisotropic and oblique: 1.5 x 2 x 2.5 mm voxels rotated 30 degrees about (1, 2, 3).
_ROTATION = Rotation.from_rotvec(np.radians(30) * np.array([1, 2, 3]) / np.sqrt(14)).as_matrix()
OBLIQUE = _affine((1.5, 2.0, 2.5), _ROTATION)


def _world(affine: np.ndarray, shape=SHAPE) -> np.ndarray:
    """World (RAS mm) coordinates of the voxel centres, shape ``(*shape, 3)``."""
    ijk = np.indices(shape).reshape(3, -1)
    return (affine[:3, :3] @ ijk + affine[:3, 3:]).T.reshape(*shape, 3)


def _image(affine: np.ndarray, seed: int = 0, shape=SHAPE) -> nib.Nifti1Image:
    """A textured 'head': noise on a gradient along world x, inside a 36 mm ball."""
    rng = np.random.default_rng(seed)
    xyz = _world(affine, shape)
    inside = np.linalg.norm(xyz, axis=-1) < 36
    data = np.where(inside, 800 + 8 * xyz[..., 0] + rng.normal(0, 40, shape), 0)
    return nib.Nifti1Image(data.astype(np.float32), affine)


def _roi(mask: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    return nib.Nifti1Image(mask.astype(np.uint8), affine)


def _ellipsoid(affine: np.ndarray, semi_axes, centre=(0, 0, 0), shape=SHAPE) -> np.ndarray:
    xyz = _world(affine, shape) - np.asarray(centre)
    return (((xyz / np.asarray(semi_axes)) ** 2).sum(axis=-1)) <= 1


def test_feature_names_follow_the_seed() -> None:
    names = feature_names("brainstem")
    assert len(names) == len(set(names)) == 107
    pattern = re.compile(rf"^brainstem_({'|'.join(FEATURE_CLASSES)})_[A-Za-z0-9]+$")
    assert all(pattern.match(name) for name in names)
    counts = {c: sum(name.split("_")[1] == c for name in names) for c in FEATURE_CLASSES}
    assert counts == SEED_COUNTS
    assert "brainstem_shape_Sphericity" in names
    assert "brain_glcm_Contrast" in feature_names("brain")


def test_settings_record_the_extraction() -> None:
    settings = radiomics_settings()
    json.dumps(settings)  # goes into a JSON sidecar
    assert settings["FeatureClasses"] == SEED_COUNTS
    assert settings["FeaturesPerROI"] == 107
    assert settings["ImageTypes"] == ["Original"]
    assert settings["PyRadiomicsVersion"].lstrip("v").startswith("3.")
    options = settings["Settings"]
    assert options["normalize"] is True and options["normalizeScale"] == 100
    assert options["binWidth"] == 5 and "binCount" not in options
    assert options["resampledPixelSpacing"] == [1, 1, 1]
    assert options["minimumROIDimensions"] == 3 and options["correctMask"] is True


@pytest.mark.parametrize("affine", [_affine(), OBLIQUE], ids=["2mm", "oblique-anisotropic"])
def test_shape_of_a_ball_and_an_ellipsoid_in_world_space(affine: np.ndarray) -> None:
    radius, semi_axes = 13.0, (20.0, 13.0, 9.0)
    rois = {
        "ball": _roi(_ellipsoid(affine, (radius,) * 3, (-3, 4, 2)), affine),
        "ellipsoid": _roi(_ellipsoid(affine, semi_axes), affine),
    }
    features, failures = extract_radiomics(_image(affine), rois)
    assert failures == {}
    volume = 4 / 3 * math.pi * radius**3
    assert features["ball_shape_MeshVolume"] == pytest.approx(volume, rel=0.04)
    assert features["ball_shape_VoxelVolume"] == pytest.approx(volume, rel=0.04)
    # Spacing on the wrong axes would turn the ball into an ellipsoid (ratios 1.5 / 2.5).
    assert features["ball_shape_Elongation"] > 0.95
    assert features["ball_shape_Flatness"] > 0.95
    # PCA axis length of a solid ellipsoid with semi-axis a is 4 a / sqrt(5) (PyRadiomics' shape).
    for axis, semi in zip(("Major", "Minor", "Least"), semi_axes, strict=True):
        expected = 4 * semi / math.sqrt(5)
        assert features[f"ellipsoid_shape_{axis}AxisLength"] == pytest.approx(expected, rel=0.05)
    # A voxelised ball is not a perfect sphere (staircase mesh), but it is rounder than an
    # ellipsoid.
    assert 0.75 < features["ball_shape_Sphericity"] <= 1
    assert features["ellipsoid_shape_Sphericity"] < features["ball_shape_Sphericity"]


@pytest.mark.parametrize("regrid", ["flipped", "permuted"])
def test_a_mask_on_another_grid_lands_in_the_same_place(regrid: str) -> None:
    affine = _affine()
    image = _image(affine)
    ball = _ellipsoid(affine, (10, 10, 10), centre=(-18, 6, 0))  # off-centre along x
    if regrid == "flipped":  # same voxels, i axis reversed
        flip = np.eye(4)
        flip[0, 0], flip[0, 3] = -1, SHAPE[0] - 1
        other = _roi(ball[::-1], affine @ flip)
    else:  # same voxels, i and j swapped
        other = _roi(ball.transpose(1, 0, 2), affine[:, [1, 0, 2, 3]])
    features, failures = extract_radiomics(image, {"same": _roi(ball, affine), "other": other})
    assert failures == {}
    for name in ("shape_VoxelVolume", "shape_MeshVolume", "firstorder_Mean", "firstorder_Median"):
        assert features[f"other_{name}"] == pytest.approx(features[f"same_{name}"], rel=0.01)
    # The image has a gradient along x: the mirrored place would have another mean.
    mirrored = _roi(_ellipsoid(affine, (10, 10, 10), centre=(18, 6, 0)), affine)
    mirror, _ = extract_radiomics(image, {"mirror": mirrored})
    assert mirror["mirror_firstorder_Mean"] > features["same_firstorder_Mean"] + 50


def test_empty_and_invalid_rois_give_nan_and_a_reason() -> None:
    affine = _affine()
    image = _image(affine)
    line = np.zeros(SHAPE, bool)
    line[20, 20, 18:21] = True  # 3 voxels: too small a VOI
    far = affine.copy()
    far[:3, 3] += 500  # a ball 50 cm away from the image
    rois = {
        "empty": _roi(np.zeros(SHAPE), affine),
        "line": _roi(line, affine),
        "outside": _roi(_ellipsoid(affine, (8, 8, 8)), far),
        "ball": _roi(_ellipsoid(affine, (10, 10, 10)), affine),
    }
    features, failures = extract_radiomics(image, rois)
    assert set(failures) == {"empty", "line", "outside"}
    assert failures["empty"] == "empty ROI (0 voxels)"
    assert failures["line"].startswith("PyRadiomics rejected the ROI")
    assert failures["outside"].startswith("PyRadiomics rejected the ROI")
    assert list(features) == [name for roi in rois for name in feature_names(roi)]
    for roi in ("empty", "line", "outside"):
        assert all(math.isnan(features[name]) for name in feature_names(roi))
    assert all(math.isfinite(features[name]) for name in feature_names("ball"))


def test_a_constant_roi_keeps_its_shape_only() -> None:
    affine = _affine()
    image = _image(affine)
    data = image.get_fdata()
    data[8:24, 8:24, 8:24] = 700.0  # a flat block
    cube = np.zeros(SHAPE, bool)
    cube[11:21, 11:21, 11:21] = True
    features, failures = extract_radiomics(
        nib.Nifti1Image(data, affine), {"flat": _roi(cube, affine)}
    )
    assert failures["flat"].startswith("flat ROI (constant intensity)")
    for name in feature_names("flat"):
        if "_shape_" in name:
            assert math.isfinite(features[name])
        else:
            assert math.isnan(features[name]), name
    assert features["flat_shape_VoxelVolume"] == pytest.approx(1000 * 8)


def test_a_single_grey_level_after_binning_is_flat_too() -> None:
    affine = _affine()
    image = _image(affine)
    data = image.get_fdata()
    # Tiny variations (0.01 of an image SD, a bin is 0.05 SD): one bin after discretisation.
    rng = np.random.default_rng(3)
    data[8:24, 8:24, 8:24] = 700.0 + rng.uniform(0, 0.01 * data.std(), (16, 16, 16))
    cube = np.zeros(SHAPE, bool)
    cube[12:20, 12:20, 12:20] = True
    features, failures = extract_radiomics(
        nib.Nifti1Image(data, affine), {"flat": _roi(cube, affine)}
    )
    assert failures["flat"].startswith("flat ROI (a single grey level at binWidth 5)")
    assert math.isnan(features["flat_glcm_Correlation"])
    assert math.isfinite(features["flat_shape_MeshVolume"])


def test_texture_differs_between_noise_and_smooth_and_is_deterministic() -> None:
    affine = _affine()
    xyz = _world(affine)
    rng = np.random.default_rng(1)
    smooth = 800 + 6 * xyz[..., 1]
    data = np.where(xyz[..., 0] < 0, smooth, smooth + rng.normal(0, 80, SHAPE))
    image = nib.Nifti1Image(data.astype(np.float32), affine)
    rois = {
        "smooth": _roi(_ellipsoid(affine, (12, 12, 12), (-18, 0, 0)), affine),
        "noisy": _roi(_ellipsoid(affine, (12, 12, 12), (18, 0, 0)), affine),
    }
    first, failures = extract_radiomics(image, rois)
    assert failures == {}
    assert first["noisy_glcm_Contrast"] > 10 * first["smooth_glcm_Contrast"]
    assert first["noisy_firstorder_Entropy"] > first["smooth_firstorder_Entropy"]
    assert first["noisy_shape_VoxelVolume"] == first["smooth_shape_VoxelVolume"]
    again, _ = extract_radiomics(image, rois)
    assert list(again) == list(first)
    np.testing.assert_allclose(list(again.values()), list(first.values()), rtol=1e-9)


def test_bad_images_raise() -> None:
    affine = _affine()
    roi = {"ball": _roi(_ellipsoid(affine, (10, 10, 10)), affine)}
    with pytest.raises(ValueError, match="constant"):
        extract_radiomics(nib.Nifti1Image(np.ones(SHAPE, np.float32), affine), roi)
    data = _image(affine).get_fdata()
    data[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        extract_radiomics(nib.Nifti1Image(data, affine), roi)


def test_pyradiomics_log_is_held_back(caplog: pytest.LogCaptureFixture) -> None:
    affine = _affine()
    rois = {"ball": _roi(_ellipsoid(affine, (10, 10, 10)), affine)}
    with caplog.at_level(logging.DEBUG):
        extract_radiomics(_image(affine), rois)
    assert not [r for r in caplog.records if r.name.startswith(("radiomics", "pykwalify"))]
    assert not [r for r in caplog.records if "Sum Average" in r.getMessage()]


def test_a_real_pyradiomics_warning_is_shown_once(caplog: pytest.LogCaptureFixture) -> None:
    message = "mask resampled onto the image (%s)"
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            with rad._quiet_radiomics():
                logging.getLogger("radiomics.imageoperations").info("chatter")
                logging.getLogger("radiomics.imageoperations").warning(message, "test-once")
                logging.getLogger("radiomics.glcm").warning(
                    "GLCM is symmetrical, therefore Sum Average = 2 * Joint Average (test-noise)"
                )
    shown = [r for r in caplog.records if "test-once" in r.getMessage()]
    assert len(shown) == 1
    assert shown[0].name == "bids_app.features.radiomics"
    assert not [r for r in caplog.records if "chatter" in r.getMessage()]
    assert not [r for r in caplog.records if "test-noise" in r.getMessage()]

"""QC metrics: Dice, CNR/SNR on a synthetic head with known tissue means and noise, and flags."""

import math

import nibabel as nib
import numpy as np
import pytest

from bids_app.preprocessing.quality import (
    QC_RANGES,
    dice,
    flag_metrics,
    format_range,
    normalized_mutual_information,
    qc_metrics,
)

ZOOM = 3.0
SHAPE = (56, 56, 56)
MEANS = {"wm": 400.0, "gm": 250.0, "csf": 80.0, "skull": 20.0, "scalp": 300.0}


def _radius_mm(shape=SHAPE, zoom=ZOOM):
    grid = np.indices(shape).astype(float)
    centre = (np.array(shape) - 1) / 2
    return np.sqrt((((grid.T - centre) * zoom) ** 2).sum(axis=-1)).T


def synthetic_head(sigma: float, seed: int = 0):
    """Concentric head (WM < 32 mm < GM < 45 mm < CSF < 50 mm < skull < 56 mm < scalp < 66 mm).

    The image is the magnitude of the signal plus complex Gaussian noise of ``sigma``, so the
    air is Rayleigh distributed and tissue noise is about Gaussian with standard deviation sigma.
    """
    radius = _radius_mm()
    dseg = np.select([radius < 32, radius < 45, radius < 50], [3, 2, 1], 0).astype(np.int16)
    signal = np.select(
        [radius < 32, radius < 45, radius < 50, radius < 56, radius < 66],
        [MEANS["wm"], MEANS["gm"], MEANS["csf"], MEANS["skull"], MEANS["scalp"]],
        0.0,
    )
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, sigma, SHAPE) + 1j * rng.normal(0, sigma, SHAPE)
    data = np.abs(signal + noise).astype(np.float32)
    affine = np.diag([ZOOM, ZOOM, ZOOM, 1.0])
    affine[:3, 3] = -np.array(SHAPE) * ZOOM / 2
    t1w = nib.Nifti1Image(data, affine)
    return t1w, (radius < 50).astype(np.uint8), dseg


def test_dice_known_overlaps():
    a = np.array([1, 1, 1, 1, 0, 0])
    b = np.array([0, 0, 1, 1, 1, 1])
    assert dice(a, b) == pytest.approx(0.5)
    assert dice(a, a) == 1.0
    assert dice(a, 1 - a) == 0.0
    assert dice(np.zeros(4), np.zeros(4)) == 1.0
    cube_a, cube_b = np.zeros((20, 20, 20), bool), np.zeros((20, 20, 20), bool)
    cube_a[:10, :10, :10] = True
    cube_b[5:15, :10, :10] = True  # half of each cube overlaps
    assert dice(cube_a, cube_b) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="different shapes"):
        dice(np.ones(3), np.ones(4))


@pytest.mark.parametrize("sigma", [10.0, 20.0, 40.0])
def test_metrics_recover_known_cnr_and_snr(sigma):
    t1w, mask, dseg = synthetic_head(sigma)
    metrics = qc_metrics(t1w, mask, dseg)
    expected_cnr = (MEANS["wm"] - MEANS["gm"]) / math.sqrt(2 * sigma**2)
    assert metrics["cnr"] == pytest.approx(expected_cnr, rel=0.08)
    assert metrics["snr_wm"] == pytest.approx(MEANS["wm"] / sigma, rel=0.08)
    # Rayleigh air noise: Dietrich's correction gives back the complex noise sigma.
    assert metrics["snr_air"] == pytest.approx(MEANS["wm"] / sigma, rel=0.08)
    assert metrics["brain_volume_ml"] == pytest.approx(4 / 3 * math.pi * 50**3 / 1000, rel=0.03)
    fractions = [metrics[f"fraction_{t}"] for t in ("csf", "gm", "wm")]
    assert sum(fractions) == pytest.approx(1.0)
    assert metrics["fraction_wm"] == pytest.approx(32**3 / 50**3, rel=0.1)
    for absent in ("dice_template_mask", "mni_correlation", "mni_nmi"):
        assert math.isnan(metrics[absent])
    assert set(QC_RANGES) <= set(metrics)


def test_noisier_image_has_lower_cnr_and_snr():
    clean = qc_metrics(*synthetic_head(sigma=15.0))
    noisy = qc_metrics(*synthetic_head(sigma=45.0))
    assert noisy["cnr"] < 0.5 * clean["cnr"]
    assert noisy["snr_wm"] < 0.5 * clean["snr_wm"]


def test_air_snr_is_nan_without_background():
    t1w, mask, dseg = synthetic_head(20.0)
    data = np.asarray(t1w.dataobj) * mask  # skull-stripped: zeros outside the brain
    stripped = nib.Nifti1Image(data, t1w.affine)
    metrics = qc_metrics(stripped, mask, dseg)
    assert math.isnan(metrics["snr_air"])
    assert metrics["cnr"] > 3  # tissue metrics do not need the background


def test_template_dice_and_registration_similarity():
    t1w, mask, dseg = synthetic_head(20.0)
    shifted = np.roll(mask, 2, axis=0)
    template = np.asarray(t1w.dataobj)
    rng = np.random.default_rng(3)
    good = template + rng.normal(0, 20, template.shape)
    metrics = qc_metrics(t1w, mask, dseg, mask, good, template)
    assert metrics["dice_template_mask"] == 1.0
    assert metrics["mni_correlation"] > 0.95
    assert 1.0 < metrics["mni_nmi"] <= 2.0
    # A misregistration: shifted mask and the image moved off the template by 5 voxels.
    moved = np.roll(good, 5, axis=2)
    bad = qc_metrics(t1w, mask, dseg, shifted, moved, template)
    assert bad["dice_template_mask"] == pytest.approx(dice(mask, shifted))
    assert bad["dice_template_mask"] < 1.0
    assert bad["mni_correlation"] < metrics["mni_correlation"] - 0.2
    assert bad["mni_nmi"] < metrics["mni_nmi"]


def test_shape_mismatch_is_an_error():
    t1w, mask, dseg = synthetic_head(20.0)
    with pytest.raises(ValueError, match="dseg"):
        qc_metrics(t1w, mask, dseg[:-1])


def test_nmi_bounds():
    rng = np.random.default_rng(0)
    a = rng.random(10_000)
    assert normalized_mutual_information(a, a) == pytest.approx(2.0)
    assert normalized_mutual_information(a, rng.random(10_000)) < 1.05
    assert math.isnan(normalized_mutual_information(a, np.ones_like(a)))


def test_flags_for_out_of_range_values_only():
    normal = {
        "brain_volume_ml": 1300.0,
        "dice_template_mask": 0.95,
        "cnr": 3.0,
        "snr_wm": 15.0,
        "snr_air": 30.0,
        "mni_correlation": 0.7,
        "mni_nmi": 1.1,
        "fraction_csf": 0.2,
        "fraction_gm": 0.45,
        "fraction_wm": 0.35,
    }
    assert flag_metrics(normal) == {}
    abnormal = {
        **normal,
        "brain_volume_ml": 2500.0,
        "dice_template_mask": 0.6,
        "cnr": 0.5,
        "snr_air": float("nan"),
    }
    del abnormal["snr_wm"]
    flags = flag_metrics(abnormal)
    assert set(flags) == {"brain_volume_ml", "dice_template_mask", "cnr"}
    assert "above" in flags["brain_volume_ml"] and "900-1800" in flags["brain_volume_ml"]
    assert "below" in flags["cnr"]
    # Callers add flags of their own to the plain dict.
    merged = {**flags, "flair_coregistration": "failed: no overlap"}
    assert len(merged) == 4


def test_flags_of_the_synthetic_head():
    # The synthetic brain is 524 mL, below the adult range; everything else is normal.
    flags = flag_metrics(qc_metrics(*synthetic_head(20.0)))
    assert list(flags) == ["brain_volume_ml"]


def test_custom_ranges_and_format():
    assert flag_metrics({"x": 5.0}, {"x": (-math.inf, 3.0)}) == {
        "x": "x = 5 is above the normal range (<= 3)"
    }
    assert format_range(900, 1800) == "900-1800"

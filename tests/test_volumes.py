"""Volumes, atlases and intensity histograms: known answers on small images."""

from __future__ import annotations

import math

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from bids_app.config import ATLASES as CONFIG_ATLASES
from bids_app.features import histogram, volumes
from bids_app.features.atlases import ATLASES, load_atlas
from bids_app.features.brainstem import MEDULLA, MIDBRAIN, PONS, brainstem_atlas

AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])  # 8 uL voxels


def _img(data: np.ndarray, affine: np.ndarray = AFFINE) -> nib.Nifti1Image:
    return nib.Nifti1Image(np.asarray(data, dtype=np.float32), affine)


def _ball(shape=(30, 30, 30), radius=6.0, centre=None) -> np.ndarray:
    centre = np.array(shape) / 2 if centre is None else np.asarray(centre)
    grid = np.indices(shape).T - centre
    return (np.linalg.norm(grid, axis=-1).T <= radius).astype(np.float32)


def test_every_cli_atlas_loads_with_named_grey_matter_labels() -> None:
    assert set(CONFIG_ATLASES) == set(ATLASES)
    for name in ATLASES:
        atlas = load_atlas(name)
        data = np.asarray(atlas.image.dataobj)
        assert data.ndim == 3
        assert set(np.unique(data)) - {0} == set(atlas.labels)
        grey = atlas.grey_matter_labels()
        assert 40 <= len(grey) <= len(atlas.labels)
    dk = load_atlas("desikan-killiany")
    assert {1024, 2024, 1017, 2017} <= set(dk.grey_matter_labels())
    assert 2 not in dk.grey_matter_labels()  # cerebral white matter
    assert 4 not in dk.grey_matter_labels()  # lateral ventricle
    # the probabilistic Harvard-Oxford becomes a thresholded maximum-probability map
    harvard = load_atlas("harvard-oxford")
    assert "Left_Precentral_Gyrus" in harvard.labels.values()


def test_split_brainstem_parts_have_plausible_volumes() -> None:
    dk = brainstem_atlas()
    data = np.asarray(dk.dataobj)
    ml = volumes.voxel_volume_ml(dk)
    parts = {code: float((data == code).sum()) * ml for code in (MIDBRAIN, PONS, MEDULLA)}
    assert 3 < parts[MIDBRAIN] < 10 and 10 < parts[PONS] < 25 and 3 < parts[MEDULLA] < 10
    assert (MIDBRAIN, PONS, MEDULLA) == volumes.STRUCTURES["brainstem"].labels
    assert not (data == 16).any()


def test_tissue_volumes_are_sums_of_posteriors_in_the_mask() -> None:
    shape = (10, 10, 10)
    mask = np.zeros(shape)
    mask[2:8, 2:8, 2:8] = 1  # 216 voxels = 1.728 mL
    probseg = {"CSF": _img(np.full(shape, 0.2)), "GM": _img(np.full(shape, 0.5))}
    probseg["WM"] = _img(np.full(shape, 0.3))
    result = volumes.tissue_volumes(probseg, _img(mask))
    assert result["tiv"] == pytest.approx(1.728, rel=1e-5)
    assert result["gm"] == pytest.approx(0.5 * 1.728, rel=1e-5)
    assert result["brain"] == pytest.approx(0.8 * 1.728, rel=1e-5)


def _structures(atlas: np.ndarray, dseg: np.ndarray) -> tuple[dict, dict]:
    return volumes.structure_volumes(_img(atlas), _img(dseg))


def test_parenchymal_structure_counts_its_tissue_voxels() -> None:
    ball = _ball(radius=6) > 0
    atlas = np.where(ball, MEDULLA, 2)
    dseg = np.full(ball.shape, 3)
    vols, reasons = _structures(atlas, dseg)
    assert vols["medulla"] == pytest.approx(ball.sum() * 0.008) and "medulla" not in reasons
    assert vols["brainstem"] == vols["medulla"] and math.isnan(vols["pons"])
    # the outer shell became CSF (atrophy the registration did not follow): not counted
    inner = _ball(radius=4.5) > 0
    vols, _ = _structures(atlas, np.where(ball & ~inner, 1, 3))
    assert vols["medulla"] == pytest.approx(inner.sum() * 0.008)


def test_enlarged_ventricle_is_counted_beyond_its_warped_label() -> None:
    template_ventricle = _ball(radius=3) > 0
    subject_ventricle = _ball(radius=5) > 0  # 4 mm larger than the template's (2 mm voxels)
    atlas = np.where(template_ventricle, 4, 2)  # inside cerebral white matter
    cortex = np.zeros(atlas.shape, bool)
    cortex[:, :, :3] = True  # sulcal CSF under cortex labels must not count
    atlas[cortex] = 1024
    dseg = np.where(subject_ventricle | cortex, 1, 3)
    rim = ndimage.binary_dilation(subject_ventricle) & ~subject_ventricle
    vols, _ = _structures(atlas, dseg)
    assert vols["lateral_ventricles"] == pytest.approx(subject_ventricle.sum() * 0.008)
    # partial-volume voxels (GM-like intensity) on the white-matter border count half
    vols, _ = _structures(atlas, np.where(rim, 2, dseg))
    expected = (subject_ventricle.sum() + 0.5 * rim.sum()) * 0.008
    assert vols["lateral_ventricles"] == pytest.approx(expected)
    # CSF beyond the reach of the warped label is not ventricle
    far = _ball(radius=3, centre=(15, 15, 25)) > 0
    vols, _ = _structures(atlas, np.where(far, 1, dseg))
    assert vols["lateral_ventricles"] == pytest.approx(subject_ventricle.sum() * 0.008)


def test_empty_or_truncated_structure_is_nan_with_reason() -> None:
    shape = (30, 30, 30)
    atlas = np.where(_ball(shape, centre=(15, 15, 2)) > 0, 8, 2)  # cerebellum cut by the FOV
    vols, reasons = _structures(atlas, np.full(shape, 3))
    assert math.isnan(vols["pons"]) and "empty" in reasons["pons"]
    assert math.isnan(vols["cerebellum"]) and "field of view" in reasons["cerebellum"]


def test_regional_grey_volumes_and_missing_regions() -> None:
    labels = np.zeros((10, 10, 10))
    labels[:4] = 1
    labels[6:] = 2
    dseg = np.full(labels.shape, 3)
    dseg[:5] = 2  # the subject's grey matter reaches one slice past the warped region
    gm = np.where(dseg == 2, 0.5, 0.1)
    regions = {1: "ctx-lh-precentral", 2: "Right-Putamen", 3: "Left-Amygdala"}
    vols, reasons = volumes.regional_grey_volumes(_img(labels), _img(dseg), _img(gm), regions)
    assert vols["ctx_lh_precentral"] == pytest.approx(500 * 0.5 * 0.008)
    assert vols["right_putamen"] == 0.0  # no GM voxel there
    assert math.isnan(vols["left_amygdala"]) and "empty" in reasons["left_amygdala"]


def test_lesion_volume_counts_voxels_above_half() -> None:
    lesion = np.zeros((10, 10, 10))
    lesion[:2, :5, :5] = 1
    lesion[5, 5, 5] = 0.4
    assert volumes.lesion_volume(_img(lesion)) == pytest.approx(50 * 0.008)


def _brain_image(rng: np.random.Generator) -> tuple[nib.Nifti1Image, ...]:
    ball = _ball(radius=10)
    wm = _ball(radius=6)
    t1w = np.where(wm > 0, 800.0, 480.0) * ball + rng.normal(0, 5, ball.shape) * ball
    return _img(t1w), _img(ball), _img(wm)


def test_histogram_fixed_bins_without_background() -> None:
    t1w, mask, wm = _brain_image(np.random.default_rng(0))
    table = histogram.intensity_histogram(t1w, mask, wm)
    widths = (table.bin_upper - table.bin_lower).to_numpy()
    assert np.allclose(widths[:-1], histogram.BIN_WIDTH) and np.isinf(widths[-1])
    assert table["count"].sum() == int(np.asarray(mask.dataobj).sum())  # zeros excluded
    assert table["fraction"].sum() == pytest.approx(1.0)
    # white matter at 100, grey matter (0.6x) at 60 on the normalised scale
    dark, bright = table[table.bin_upper <= 80], table[table.bin_lower >= 80]
    assert abs(dark.bin_lower[dark["count"].idxmax()] - 60) <= 2
    assert abs(bright.bin_lower[bright["count"].idxmax()] - 100) <= 2
    # the same brain on another scanner scale gives the same normalised histogram
    scaled = _img(np.asarray(t1w.dataobj) * 3.7)
    again = histogram.intensity_histogram(scaled, mask, wm)
    assert np.abs(again["fraction"] - table["fraction"]).max() < 0.01
    raw = histogram.intensity_histogram(t1w, mask, normalisation="none")
    assert raw.nlargest(1, "count").bin_lower.iloc[0] == pytest.approx(480, abs=20)


def test_histogram_of_an_empty_mask_is_refused() -> None:
    t1w, mask, wm = _brain_image(np.random.default_rng(1))
    with pytest.raises(ValueError, match="no non-zero voxel"):
        histogram.intensity_histogram(t1w, _img(np.zeros(mask.shape)), wm)


@pytest.mark.parametrize("scale", ["wm-median", "raw"])
def test_histogram_scale_option(scale, tmp_path) -> None:
    # --histogram-scale raw (Turrisi 2024 Figure 3): the conformed T1w's own values, bin width 1;
    # the default: the bias-corrected T1w on the white-matter-median = 100 scale
    from bids_app.participant.features import init_features_wf
    from bids_app.participant.interfaces.features import Histogram
    from bids_app.participant.options import AnatomicalOptions

    options = AnatomicalOptions("template", "", features=("histogram",), histogram_scale=scale)
    workflow = init_features_wf(options)
    inputnode, node = workflow.get_node("inputnode"), workflow.get_node("histogram")
    (edge,) = [d for u, v, d in workflow._graph.edges(data=True) if (u, v) == (inputnode, node)]
    assert ("t1w" if scale == "raw" else "t1w_preproc", "t1w") in edge["connect"]
    t1w, mask, wm = _brain_image(np.random.default_rng(2))
    paths = {}
    for name, image in {"t1w": t1w, "mask": mask, "wm": wm}.items():
        paths[name] = tmp_path / f"{name}.nii.gz"
        nib.save(image, paths[name])
    result = Histogram(
        t1w=str(paths["t1w"]),
        brain_mask=str(paths["mask"]),
        probseg=[str(paths["wm"])] * 3,
        scale=scale,
    ).run(cwd=str(tmp_path))
    table = pd.read_csv(result.outputs.table, sep="\t")
    peak = table.nlargest(1, "count").bin_lower.iloc[0]
    if scale == "raw":
        assert (table.bin_upper - table.bin_lower).iloc[0] == 1.0
        assert abs(peak - 480) <= 20 and table.bin_lower.max() >= 800
        assert "raw" in result.outputs.sidecar["Normalisation"]
    else:
        assert abs(peak - 60) <= 2

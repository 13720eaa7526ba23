"""The preprocessing steps as pure functions, on images the tests make and on Colin27."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from bids_app.preprocessing.bias import n4_correct
from bids_app.preprocessing.brain_extraction import (
    detect_skull_stripped,
    mask_from_nonzero,
    resample_mask,
    template_brain_mask,
)
from bids_app.preprocessing.cnn_input import CNN_BOX_MM, cnn_ready, crop, crop_slices, normalise
from bids_app.preprocessing.conform import conform, load_image
from bids_app.preprocessing.coregistration import (
    CoregistrationError,
    brain_coverage,
    coregister_to_t1w,
)
from bids_app.preprocessing.quality import dice
from bids_app.preprocessing.registration import (
    REGISTRATION_PRESETS,
    apply_transform,
    crop_to_head,
    head_mask,
    register_to_template,
    warp_labels,
)
from bids_app.preprocessing.templates import load_template, templateflow_files
from tests.conftest import SHARED_DATA

AFFINE_3MM = np.diag([3.0, 3.0, 3.0, 1.0])


def _phantom(shape=(48, 56, 48), seed=0) -> np.ndarray:
    """An ellipsoid 'brain' (WM core, GM shell) in a darker 'skull' ring, noisy background."""
    rng = np.random.default_rng(seed)
    grid = np.indices(shape).astype(float)
    centre = (np.array(shape) - 1) / 2
    radius = np.sqrt((((grid.T - centre) / (centre * 0.75)) ** 2).sum(axis=-1)).T
    data = np.select([radius < 0.6, radius < 0.85, radius < 1.0], [600.0, 400.0, 150.0], 5.0)
    return ndimage.gaussian_filter(data, 0.7) + rng.normal(0, 5, shape)


def test_n4_removes_a_planted_bias_field():
    clean = _phantom()
    x = np.linspace(-1, 1, clean.shape[0])[:, None, None]
    field = np.exp(0.4 * x) * np.ones(clean.shape)
    biased = nib.Nifti1Image((clean * field).astype(np.float32), AFFINE_3MM)
    corrected, bias = n4_correct(biased)
    core = ndimage.binary_erosion(clean > 500, iterations=2)
    cv_before = (clean * field)[core].std() / (clean * field)[core].mean()
    values = np.asarray(corrected.dataobj)[core]
    assert values.std() / values.mean() < 0.7 * cv_before  # 0.067 -> 0.042 measured
    assert bias.shape == clean.shape


def test_detect_skull_stripped():
    head = _phantom()
    voxel = nib.Nifti1Image(head.astype(np.float32), AFFINE_3MM)
    assert detect_skull_stripped(voxel)[0] is False  # noisy non-zero background
    brain = np.where(head > 300, head, 0.0).astype(np.float32)
    stripped, reason = detect_skull_stripped(nib.Nifti1Image(brain, AFFINE_3MM))
    assert stripped and "mL" in reason
    mask = mask_from_nonzero(nib.Nifti1Image(brain, AFFINE_3MM))
    assert dice(np.asarray(mask.dataobj) > 0, brain > 0) > 0.99


def test_template_mask_refinement_only_removes_non_tissue():
    probability = np.zeros((30, 30, 30), np.float32)
    probability[5:25, 5:25, 5:25] = 1.0
    tissue = np.zeros_like(probability)
    tissue[7:23, 7:23, 7:23] = 1.0  # the outer two voxels are not tissue
    tissue[0:30, 0:30, 0:2] = 1.0  # tissue outside the template mask is not added
    refined = template_brain_mask(
        nib.Nifti1Image(probability, AFFINE_3MM), nib.Nifti1Image(tissue, AFFINE_3MM), 6.0
    )
    data = np.asarray(refined.dataobj) > 0
    assert data.sum() == 16**3
    assert not data[:, :, :2].any()


def test_resample_mask_refuses_a_mask_elsewhere():
    mask = nib.Nifti1Image(np.ones((10, 10, 10), np.uint8), AFFINE_3MM)
    moved = nib.Nifti1Image(np.ones((10, 10, 10), np.uint8), AFFINE_3MM.copy())
    moved.affine[:3, 3] = 500.0
    far = nib.Nifti1Image(np.ones((10, 10, 10), np.uint8), moved.affine)
    assert np.asarray(resample_mask(mask, mask).dataobj).all()
    with pytest.raises(ValueError, match="does not overlap"):
        resample_mask(far, mask)


def test_cnn_crop_has_the_seed_box_and_normalisations():
    template = load_template(1)
    slices = crop_slices(template.brain_mask)
    assert tuple(s.stop - s.start for s in slices) == CNN_BOX_MM
    cropped_mask = np.asarray(crop(template.brain_mask, slices).dataobj)
    assert cropped_mask.sum() > 0.97 * np.asarray(template.brain_mask.dataobj).sum()
    image = cnn_ready(template.t1w, template.brain_mask, template.brain_mask)
    data = np.asarray(image.dataobj)
    assert image.shape == CNN_BOX_MM and data.min() == 0.0 and data.max() == pytest.approx(1.0)
    # the crop keeps world coordinates: the first voxel is where the box starts
    start = nib.affines.apply_affine(template.t1w.affine, [s.start for s in slices])
    assert np.allclose(image.affine[:3, 3], start)
    values = np.arange(10.0)
    z = normalise(values, values > 2, "zscore")[values > 2]
    assert abs(z.mean()) < 1e-6 and z.std() == pytest.approx(1.0, rel=1e-5)
    with pytest.raises(ValueError, match="normalisation"):
        normalise(values, values > 2, "max")


def test_templateflow_layout_is_used_when_complete(tmp_path):
    nilearn = load_template(2)
    folder = tmp_path / "tpl-MNI152NLin2009aSym"
    folder.mkdir()
    prefix = folder / "tpl-MNI152NLin2009aSym_res-02"
    assert templateflow_files(tmp_path, 2) is None
    nib.save(nilearn.t1w, f"{prefix}_T1w.nii.gz")
    nib.save(nilearn.brain_mask, f"{prefix}_desc-brain_mask.nii.gz")
    for tissue, image in nilearn.probseg.items():
        nib.save(image, f"{prefix}_label-{tissue}_probseg.nii.gz")
    template = load_template(2, tmp_path)
    assert template.source == str(folder) and template.has_skull
    assert load_template(1, tmp_path).source == "nilearn"  # res-01 files are absent


def test_crop_to_head_removes_the_neck():
    data = np.zeros((20, 20, 100), np.float32)
    data[5:15, 5:15, 10:95] = 100.0
    data += np.random.default_rng(0).normal(0, 1, data.shape).clip(0)
    image = nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0]))
    assert head_mask(image).sum() > 0.9 * 10 * 10 * 85
    cropped = np.asarray(crop_to_head(image, height_mm=100).dataobj)
    assert cropped[:, :, 94].max() > 50 and cropped[:, :, 40].max() == 0


def test_coregistration_recovers_a_shift_and_refuses_no_overlap(tmp_path):
    t1w = _phantom(seed=1).astype(np.float32)
    # the "FLAIR": inverted contrast, shifted by two voxels (6 mm) in the header
    flair = (700.0 - t1w).clip(0).astype(np.float32) * (t1w > 100)
    shifted = AFFINE_3MM.copy()
    shifted[:3, 3] = [6.0, 0.0, 0.0]
    brain = (t1w > 300).astype(np.uint8)
    t1w_img = nib.Nifti1Image(t1w, AFFINE_3MM)
    flair_img = nib.Nifti1Image(np.roll(flair, -2, axis=0), shifted)  # same anatomy in the world
    result = coregister_to_t1w(flair_img, t1w_img, nib.Nifti1Image(brain, AFFINE_3MM), tmp_path)
    aligned = apply_transform(flair_img, t1w_img, [result.transform])
    inside = ndimage.binary_erosion(brain, iterations=2) > 0
    error = np.abs(np.asarray(aligned.dataobj)[inside] - flair[inside]).mean()
    assert error < 0.1 * flair[inside].mean()
    far = shifted.copy()
    far[:3, 3] = [600.0, 0.0, 0.0]
    away = nib.Nifti1Image(flair, far)
    assert brain_coverage(away, nib.Nifti1Image(brain, AFFINE_3MM)) == 0.0
    with pytest.raises(CoregistrationError, match="do not overlap"):
        coregister_to_t1w(away, t1w_img, nib.Nifti1Image(brain, AFFINE_3MM), tmp_path)


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data (real MRI) is absent")
def test_template_brain_extraction_on_colin27(tmp_path):
    """Colin27 at 2 mm, sloppy registration: the template mask meets ch2bet at Dice >= 0.93."""
    from nilearn.image import resample_img

    def at_2mm(path, interpolation):
        image, _ = conform(load_image(path))
        target = np.diag([2.0, 2.0, 2.0, 1.0])
        target[:3, 3] = image.affine[:3, 3]
        shape = tuple(int(s // 2) for s in image.shape)
        return resample_img(
            image,
            target_affine=target,
            target_shape=shape,
            interpolation=interpolation,
            force_resample=True,
            copy_header=True,
        )

    head = at_2mm(SHARED_DATA / "colin27" / "ch2.nii.gz", "continuous")
    reference = np.asarray(at_2mm(SHARED_DATA / "colin27" / "ch2bet.nii.gz", "nearest").dataobj)
    corrected, _ = n4_correct(head)
    settings = REGISTRATION_PRESETS["sloppy"]
    result = register_to_template(corrected, load_template(2), tmp_path, settings)
    probability = apply_transform(load_template(1).brain_mask, head, [result.inverse])
    mask = np.asarray(template_brain_mask(probability).dataobj) > 0
    assert dice(mask, reference > 0) >= 0.93


def _segmentation_inputs(noise: float = 0.0):
    """The phantom, its brain mask, the true tissues and priors drawn from them (3 mm)."""
    from bids_app.preprocessing.segmentation import TISSUES

    data = _phantom()
    if noise:
        data = data + np.random.default_rng(0).normal(0, noise, data.shape)
    image = nib.Nifti1Image(data.astype(np.float32), AFFINE_3MM)
    centre = (np.array(data.shape) - 1) / 2
    grid = np.indices(data.shape).astype(float)
    radius = np.sqrt((((grid.T - centre) / (centre * 0.75)) ** 2).sum(axis=-1)).T
    mask = nib.Nifti1Image((radius < 0.85).astype(np.uint8), AFFINE_3MM)
    truth = {"CSF": radius > 2, "GM": (radius >= 0.6) & (radius < 0.85), "WM": radius < 0.6}
    priors = {
        t: nib.Nifti1Image(truth[t].astype(np.float32) * 0.8 + 0.1, AFFINE_3MM) for t in TISSUES
    }
    return image, mask, truth, priors


def test_segmentation_finds_the_tissues_and_leaves_no_temporary_files(tmp_path, monkeypatch):
    import tempfile

    from bids_app.preprocessing.segmentation import segment_tissues

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where ANTsPy would leave files
    image, mask, truth, priors = _segmentation_inputs()
    dseg, _ = segment_tissues(image, mask, priors)
    labels = np.asarray(dseg.dataobj)
    assert dice(labels == 3, truth["WM"]) > 0.85 and dice(labels == 2, truth["GM"]) > 0.6
    assert list(tmp_path.iterdir()) == []
    assert tempfile.tempdir == str(tmp_path)


def test_segmentation_repeats():
    # Atropos seeds its random numbers from the clock unless told not to (-r 0)
    from bids_app.preprocessing.segmentation import TISSUES, segment_tissues

    image, mask, _, priors = _segmentation_inputs(noise=40)
    first, second = (segment_tissues(image, mask, priors)[1] for _ in range(2))
    for tissue in TISSUES:
        assert np.array_equal(first[tissue].get_fdata(), second[tissue].get_fdata()), tissue


def test_local_refinement_follows_a_smaller_structure(tmp_path):
    """The subject's 'medulla' is a ball of radius 6 mm where the template's has 8 mm.

    With an identity global mapping the warped label keeps the template's size; the local SyN
    around it follows the subject's ball, and a label outside the refined set is untouched.
    """
    import ants

    shape, affine = (64, 64, 64), np.eye(4)
    grid = np.sqrt(((np.indices(shape).T - 31.5) ** 2).sum(axis=-1)).T

    def image(radius: float) -> nib.Nifti1Image:
        data = np.where(grid <= radius, 1000.0, 300.0)
        return nib.Nifti1Image(ndimage.gaussian_filter(data, 1.0).astype(np.float32), affine)

    labels = np.zeros(shape, np.int16)
    labels[grid <= 8] = 175
    labels[2:8, 2:8, 2:8] = 7  # far from the ball: outside the refined box
    identity = tmp_path / "identity.mat"
    ants.write_transform(ants.create_ants_transform(dimension=3), str(identity))
    atlas, subject = nib.Nifti1Image(labels, affine), image(6.0)
    plain = np.asarray(warp_labels(atlas, subject, [identity]).dataobj)
    refined = np.asarray(
        warp_labels(atlas, subject, [identity], refine=(175,), template_t1w=image(8.0)).dataobj
    )
    truth = int((grid <= 6).sum())
    assert (plain == labels).all()
    assert abs((refined == 175).sum() / truth - 1) < 0.15, ((refined == 175).sum(), truth)
    assert ((refined == 7) == (labels == 7)).all()
    with pytest.raises(ValueError, match="needs the template T1w"):
        warp_labels(atlas, subject, [identity], refine=(175,))

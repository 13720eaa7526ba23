"""Image-quality metrics of the participant level, and their normal ranges.

Pure functions on nibabel images or numpy arrays: no file naming, no nipype. The metrics follow
MRIQC's definitions where MRIQC has one (Esteban et al. 2017, PLoS ONE 12:e0184661,
https://mriqc.readthedocs.io/en/latest/iqms/t1w.html), with the differences stated in each
docstring. The tissue segmentation ``dseg`` follows sMRIPrep: 0 background, 1 CSF, 2 GM, 3 WM.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TypeAlias

import numpy as np
from nibabel.spatialimages import SpatialImage
from scipy import ndimage

#: A nibabel image, or its voxel array.
ImageLike: TypeAlias = SpatialImage | np.ndarray

#: Labels of the sMRIPrep ``dseg``.
TISSUE_LABELS: dict[str, int] = {"csf": 1, "gm": 2, "wm": 3}

#: Fewest voxels outside the head (and non-zero) for the air-background SNR; with fewer (a
#: skull-stripped, zero-padded or tightly cropped image) ``snr_air`` is NaN.
MIN_AIR_VOXELS = 1000

#: Distance (mm) kept between the head and the air used for the background noise, so that the
#: skin, the nose and partial-volume edges are not taken for noise.
AIR_MARGIN_MM = 10.0

#: Factor between the standard deviation of Rayleigh-distributed air and the noise sigma of the
#: complex signal (Dietrich et al. 2007, J Magn Reson Imaging 26:375), as in MRIQC's ``snrd``.
DIETRICH_FACTOR = math.sqrt(2.0 / (4.0 - math.pi))

#: Number of histogram bins of the normalised mutual information.
NMI_BINS = 32

#: Normal range (low, high) of each metric; a value outside it is flagged by
#: :func:`flag_metrics`. Unbounded sides are +-inf. These are screening thresholds meant to catch
#: failures (a wrong mask, a failed registration, a very noisy scan), not population norms.
#: "Measured here" values: real images of ``shared/data`` (Colin27, a chronic-stroke patient, an
#: MS patient; 3-class k-means segmentation in the reference brain mask; ANTs SyN to nilearn's
#: MNI152 2009a brain template at 2 mm), computed when these ranges were chosen.
QC_RANGES: dict[str, tuple[float, float]] = {
    # The brain mask encloses parenchyma and the CSF within it, so it is close to intracranial
    # volume: about 1100-1800 mL in adults (eTIV, Buckner et al. 2004, NeuroImage 23:724), less
    # with the CSF rim that skull stripping leaves out (measured here: 1030-1740 mL).
    # 900-1800 mL keeps small and atrophic adult brains and flags masks that leak into the skull
    # or lose a lobe. Not meant for children.
    "brain_volume_ml": (900.0, 1800.0),
    # Brain extraction methods agree with manual masks at Dice 0.93-0.98 (Iglesias et al. 2011,
    # IEEE TMI 30:1617; Isensee et al. 2019, Hum Brain Mapp 40:4952); the template mask warped
    # back after SyN measured here 0.95-0.97 (affine only: 0.52-0.91). Below 0.85 the mask or
    # the registration has failed (a missing lobe, the skull included).
    "dice_template_mask": (0.85, 1.0),
    # GM/WM CNR with tissue variances only (see contrast_to_noise), so a little above MRIQC's
    # cnr. Measured here 3.2-4.0. Below 1 the GM and WM intensity distributions overlap by more
    # than a pooled standard deviation and segmentation is unreliable. Heuristic threshold.
    "cnr": (1.0, math.inf),
    # Mean/std of WM (MRIQC's snr_wm): the spread includes bias field and anatomy, not only
    # noise. Measured here 11-25. Below 5 the scan is very noisy or WM badly segmented.
    # Heuristic threshold.
    "snr_wm": (5.0, math.inf),
    # Dietrich's SNR of WM from air noise (MRIQC's snrd_wm): measured 23 on a Siemens 2 mm
    # MPRAGE and 270 on a Philips MPRAGE (whose background is scaled down); NaN on zero-filled
    # backgrounds. Below 8 the noise is severe or the air carries ghosts. Heuristic threshold.
    "snr_air": (8.0, math.inf),
    # Pearson correlation of the T1w in MNI space with the template, inside the template's brain
    # or head (default_template_mask). Measured here with a brain-only template: 0.64-0.70 after
    # SyN, 0.52-0.61 affine only, 0.31 after shifting a good registration by 10 mm and 0.23
    # upside down. A whole-head template and image correlate more (the scalp adds contrast).
    # 0.5 flags gross failures; 0.6 would leave little margin below good registrations of
    # lesioned brains (0.64 on the stroke brain). No range for the NMI (1.03-1.09 here), which
    # depends on binning.
    "mni_correlation": (0.5, 1.0),
    # Tissue fractions of the segmented volume. Adults: GM about 40-50 %, WM 30-40 %, CSF
    # 10-30 % of intracranial volume, CSF rising with age and atrophy (e.g. Good et al. 2001,
    # NeuroImage 14:21); measured here CSF 0.11-0.25, GM 0.37-0.48, WM 0.35-0.50. Wide ranges
    # that flag segmentation failures only.
    "fraction_csf": (0.05, 0.5),
    "fraction_gm": (0.25, 0.65),
    "fraction_wm": (0.2, 0.55),
}


def _array(image: ImageLike, dtype: type = np.float64) -> np.ndarray:
    """Return the voxel array of an image or an array, as ``dtype``."""
    data = np.asanyarray(image.dataobj) if isinstance(image, SpatialImage) else np.asarray(image)
    return np.asarray(data, dtype=dtype)


def _check_shapes(reference: np.ndarray, **arrays: np.ndarray) -> None:
    """Raise ValueError naming every array whose shape differs from the reference."""
    for name, array in arrays.items():
        if array.shape != reference.shape:
            raise ValueError(
                f"{name} has shape {array.shape}, expected {reference.shape} (same grid)"
            )


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice coefficient of two binary arrays.

    Parameters
    ----------
    a, b : numpy.ndarray
        Arrays of the same shape; non-zero voxels are foreground.

    Returns
    -------
    float
        ``2 |A and B| / (|A| + |B|)``, 1.0 when both are empty.

    Raises
    ------
    ValueError
        If the shapes differ.

    Examples
    --------
    >>> dice(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0]))
    0.6666666666666666
    """
    a, b = np.asarray(a) != 0, np.asarray(b) != 0
    if a.shape != b.shape:
        raise ValueError(f"dice of arrays of different shapes {a.shape} and {b.shape}")
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def tissue_masks(dseg: np.ndarray) -> dict[str, np.ndarray]:
    """Split an sMRIPrep ``dseg`` into boolean masks.

    Parameters
    ----------
    dseg : numpy.ndarray
        Labels 0 background, 1 CSF, 2 GM, 3 WM.

    Returns
    -------
    dict of str to numpy.ndarray
        ``csf``, ``gm`` and ``wm`` masks.
    """
    labels = np.rint(np.asarray(dseg)).astype(np.int16)
    return {name: labels == label for name, label in TISSUE_LABELS.items()}


def core(mask: np.ndarray, min_voxels: int = 100) -> np.ndarray:
    """Erode a tissue mask by one voxel to avoid partial volume, unless too little is left.

    Parameters
    ----------
    mask : numpy.ndarray
        Boolean mask.
    min_voxels : int
        Keep the mask as is when its erosion has fewer voxels than this.

    Returns
    -------
    numpy.ndarray
        The eroded (or original) mask.
    """
    eroded = ndimage.binary_erosion(mask)
    return eroded if int(eroded.sum()) >= min_voxels else np.asarray(mask, dtype=bool)


def contrast_to_noise(data: np.ndarray, gm: np.ndarray, wm: np.ndarray) -> float:
    """GM/WM contrast-to-noise ratio.

    ``|mean_WM - mean_GM| / sqrt(var_WM + var_GM)``, on the eroded classes (:func:`core`).
    MRIQC's ``cnr`` also adds the air variance to the denominator; leaving it out keeps the
    metric defined on skull-stripped images and makes it a little larger.

    Parameters
    ----------
    data : numpy.ndarray
        T1w intensities.
    gm, wm : numpy.ndarray
        Boolean GM and WM masks on the same grid.

    Returns
    -------
    float
        The CNR; NaN when a class has fewer than two voxels or both variances are zero.
    """
    gm_values, wm_values = data[core(gm)], data[core(wm)]
    if gm_values.size < 2 or wm_values.size < 2:
        return math.nan
    spread = math.sqrt(float(gm_values.var(ddof=1) + wm_values.var(ddof=1)))
    contrast = abs(float(wm_values.mean() - gm_values.mean()))
    return contrast / spread if spread > 0 else math.nan


def snr_tissue(data: np.ndarray, tissue: np.ndarray) -> float:
    """Signal-to-noise ratio within a tissue class (MRIQC's ``snr_*``).

    ``mean / std`` of the eroded class (:func:`core`), with the unbiased (``n - 1``) standard
    deviation as in MRIQC. The spread includes bias field and anatomy, not only noise.

    Parameters
    ----------
    data : numpy.ndarray
        Intensities.
    tissue : numpy.ndarray
        Boolean mask of the class.

    Returns
    -------
    float
        The SNR; NaN with fewer than two voxels or a constant class.
    """
    values = data[core(tissue)]
    if values.size < 2:
        return math.nan
    spread = float(values.std(ddof=1))
    return float(values.mean()) / spread if spread > 0 else math.nan


def head_mask(data: np.ndarray, brain_mask: np.ndarray) -> np.ndarray:
    """Make a rough mask of the head, for finding the air around it.

    Thresholds at a fifth of the median brain intensity, removes isolated noise by an opening,
    keeps the connected components at least a tenth the size of the largest (the scalp can be
    cut off from the brain by the dark skull) together with the brain mask, and fills holes.

    Parameters
    ----------
    data : numpy.ndarray
        T1w intensities.
    brain_mask : numpy.ndarray
        Boolean brain mask.

    Returns
    -------
    numpy.ndarray
        Boolean head mask.
    """
    brain = np.asarray(brain_mask, dtype=bool)
    if not brain.any():
        return brain
    above = ndimage.binary_opening(data > 0.2 * float(np.median(data[brain])))
    labels, count = ndimage.label(above)
    if count:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        above = (sizes >= 0.1 * sizes.max())[labels]
    return ndimage.binary_fill_holes(above | brain)


def air_mask(
    data: np.ndarray,
    brain_mask: np.ndarray,
    zooms: tuple[float, ...],
    margin_mm: float = AIR_MARGIN_MM,
) -> np.ndarray:
    """Air background: non-zero voxels at least ``margin_mm`` away from the head.

    Exact zeros are left out: they are padding, defacing or skull stripping, not noise.

    Parameters
    ----------
    data : numpy.ndarray
        T1w intensities.
    brain_mask : numpy.ndarray
        Boolean brain mask.
    zooms : tuple of float
        Voxel size (mm).
    margin_mm : float
        Distance kept from the head.

    Returns
    -------
    numpy.ndarray
        Boolean air mask (possibly empty).
    """
    head = head_mask(data, brain_mask)
    if not head.any():
        return np.zeros(data.shape, dtype=bool)
    # The distance on a grid of about 2 mm is as good for a 10 mm margin and 8x faster at 1 mm;
    # the margin grows by a coarse voxel so that no voxel closer than margin_mm is kept.
    step = max(1, int(2.0 // min(zooms[:3])))
    coarse = head[::step, ::step, ::step]
    sampling = tuple(step * float(z) for z in zooms[:3])
    slack = max(sampling) if step > 1 else 0.0
    far = ndimage.distance_transform_edt(~coarse, sampling=sampling) > margin_mm + slack
    for axis, size in enumerate(data.shape):
        far = np.repeat(far, step, axis=axis).take(np.arange(size), axis=axis)
    return far & (data != 0)


def snr_dietrich(data: np.ndarray, tissue: np.ndarray, air: np.ndarray) -> float:
    """Dietrich's SNR: tissue mean over the noise sigma estimated from the air.

    ``mean_tissue / (sqrt(2 / (4 - pi)) * std_air)`` (Dietrich et al. 2007; MRIQC's
    ``snrd_*``): in a magnitude image the air is Rayleigh distributed and its standard deviation
    is ``sqrt((4 - pi) / 2)`` times the sigma of the complex noise.

    Parameters
    ----------
    data : numpy.ndarray
        Intensities.
    tissue : numpy.ndarray
        Boolean mask of the tissue (eroded with :func:`core`).
    air : numpy.ndarray
        Boolean mask of the air (see :func:`air_mask`).

    Returns
    -------
    float
        The SNR; NaN with fewer than :data:`MIN_AIR_VOXELS` air voxels, an empty tissue or
        constant air.
    """
    values = data[core(tissue)]
    if int(air.sum()) < MIN_AIR_VOXELS or values.size == 0:
        return math.nan
    spread = float(data[air].std(ddof=1))
    return float(values.mean()) / (DIETRICH_FACTOR * spread) if spread > 0 else math.nan


def default_template_mask(template: np.ndarray) -> np.ndarray:
    """Mask the template's head: voxels above a tenth of its 99th percentile.

    Parameters
    ----------
    template : numpy.ndarray
        Template intensities.

    Returns
    -------
    numpy.ndarray
        Boolean mask.
    """
    return template > 0.1 * float(np.percentile(template, 99))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two samples (NaN when either is constant or has < 2 values).

    Parameters
    ----------
    a, b : numpy.ndarray
        Samples of the same size.

    Returns
    -------
    float
        The correlation coefficient.

    Examples
    --------
    >>> round(pearson(np.arange(5.0), 2 * np.arange(5.0) + 1), 6)
    1.0
    """
    a, b = np.ravel(a).astype(float), np.ravel(b).astype(float)
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def normalized_mutual_information(a: np.ndarray, b: np.ndarray, bins: int = NMI_BINS) -> float:
    """Studholme's normalised mutual information ``(H(A) + H(B)) / H(A, B)``.

    As in FSL FLIRT's ``normmi`` and SPM's ``nmi``: 1 for independent samples, 2 for samples
    that determine each other. Entropies from a ``bins`` x ``bins`` joint histogram spanning
    each sample's range.

    Parameters
    ----------
    a, b : numpy.ndarray
        Samples of the same size.
    bins : int
        Histogram bins per sample.

    Returns
    -------
    float
        The NMI in [1, 2]; NaN when either sample is constant or empty.
    """
    a, b = np.ravel(a).astype(float), np.ravel(b).astype(float)
    if a.size == 0 or a.std() == 0 or b.std() == 0:
        return math.nan
    joint, _, _ = np.histogram2d(a, b, bins=bins)
    joint /= joint.sum()

    def entropy(p: np.ndarray) -> float:
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())

    return (entropy(joint.sum(axis=1)) + entropy(joint.sum(axis=0))) / entropy(joint)


def tissue_fractions(dseg: np.ndarray) -> dict[str, float]:
    """Fraction of the segmented volume in each class (MRIQC's ``icvs_*``).

    Parameters
    ----------
    dseg : numpy.ndarray
        sMRIPrep labels.

    Returns
    -------
    dict of str to float
        ``fraction_csf``, ``fraction_gm``, ``fraction_wm`` (summing to 1; NaN when nothing is
        segmented).
    """
    counts = {name: int(mask.sum()) for name, mask in tissue_masks(dseg).items()}
    total = sum(counts.values())
    return {
        f"fraction_{name}": count / total if total else math.nan for name, count in counts.items()
    }


def qc_metrics(
    t1w: SpatialImage,
    brain_mask: ImageLike,
    dseg: ImageLike,
    template_mask_native: ImageLike | None = None,
    t1w_mni: ImageLike | None = None,
    template: ImageLike | None = None,
    template_mask: ImageLike | None = None,
) -> dict[str, float]:
    """Quality metrics of one participant's anatomical processing.

    Every key is always present (NaN when its inputs are missing or it cannot be computed), so
    that tables of many sessions have the same columns:

    - ``brain_volume_ml``: volume of the brain mask (mL).
    - ``dice_template_mask``: Dice of the brain mask with the template's brain mask warped to
      the native grid (``template_mask_native``).
    - ``cnr``: GM/WM contrast-to-noise ratio (:func:`contrast_to_noise`).
    - ``snr_wm``: WM mean over WM standard deviation (:func:`snr_tissue`; MRIQC's ``snr_wm``).
    - ``snr_air``: Dietrich's SNR of WM, noise from the air around the head
      (:func:`snr_dietrich`; MRIQC's ``snrd_wm``); NaN without enough non-zero air (a
      skull-stripped, zero-filled or tightly cropped image).
    - ``mni_correlation``: Pearson correlation of ``t1w_mni`` with ``template`` within
      ``template_mask`` (default: :func:`default_template_mask`).
    - ``mni_nmi``: Studholme's normalised mutual information of the same voxels.
    - ``fraction_csf``, ``fraction_gm``, ``fraction_wm``: tissue fractions
      (:func:`tissue_fractions`).

    Parameters
    ----------
    t1w : nibabel.spatialimages.SpatialImage
        The T1w on its native grid (the voxel size gives volumes).
    brain_mask : nibabel image or numpy.ndarray
        Brain mask on the native grid (non-zero inside).
    dseg : nibabel image or numpy.ndarray
        sMRIPrep tissue labels on the native grid.
    template_mask_native : nibabel image or numpy.ndarray, optional
        The template's brain mask resampled to the native grid (> 0.5 inside).
    t1w_mni : nibabel image or numpy.ndarray, optional
        The T1w resampled to the template grid.
    template : nibabel image or numpy.ndarray, optional
        The template T1w on its grid.
    template_mask : nibabel image or numpy.ndarray, optional
        Voxels of the template grid where the similarity is computed.

    Returns
    -------
    dict of str to float
        The metrics.

    Raises
    ------
    ValueError
        If arrays meant to share a grid have different shapes.
    """
    data = _array(t1w)
    brain = _array(brain_mask) > 0
    labels = _array(dseg, np.int16)
    _check_shapes(data, brain_mask=brain, dseg=labels)
    zooms = tuple(float(z) for z in t1w.header.get_zooms()[:3])
    tissues = tissue_masks(labels)
    metrics = {
        "brain_volume_ml": float(brain.sum()) * float(np.prod(zooms)) / 1000.0,
        "dice_template_mask": math.nan,
        "cnr": contrast_to_noise(data, tissues["gm"], tissues["wm"]),
        "snr_wm": snr_tissue(data, tissues["wm"]),
        "snr_air": snr_dietrich(data, tissues["wm"], air_mask(data, brain, zooms)),
        "mni_correlation": math.nan,
        "mni_nmi": math.nan,
    }
    if template_mask_native is not None:
        warped = _array(template_mask_native) > 0.5
        _check_shapes(data, template_mask_native=warped)
        metrics["dice_template_mask"] = dice(brain, warped)
    if t1w_mni is not None and template is not None:
        moved, reference = np.nan_to_num(_array(t1w_mni)), np.nan_to_num(_array(template))
        _check_shapes(reference, t1w_mni=moved)
        inside = (
            default_template_mask(reference)
            if template_mask is None
            else _array(template_mask) > 0.5
        )
        _check_shapes(reference, template_mask=inside)
        metrics["mni_correlation"] = pearson(moved[inside], reference[inside])
        metrics["mni_nmi"] = normalized_mutual_information(moved[inside], reference[inside])
    metrics.update(tissue_fractions(labels))
    return metrics


def format_range(low: float, high: float) -> str:
    """Write a normal range for people.

    Parameters
    ----------
    low, high : float
        Bounds (infinite when open).

    Returns
    -------
    str
        For example ``"900-1800"``, ``">= 0.85"`` or ``"<= 3"``.

    Examples
    --------
    >>> format_range(0.85, math.inf)
    '>= 0.85'
    """
    if math.isinf(high):
        return f">= {low:g}"
    if math.isinf(low):
        return f"<= {high:g}"
    return f"{low:g}-{high:g}"


def flag_metrics(
    metrics: Mapping[str, float],
    ranges: Mapping[str, tuple[float, float]] = QC_RANGES,
) -> dict[str, str]:
    """Messages for the metrics outside their normal range.

    Missing and NaN metrics, and metrics without a range, are not flagged. The result is a
    plain dict, so the caller can add flags of its own (for example
    ``{"flair_coregistration": "failed: ..."}``).

    Parameters
    ----------
    metrics : mapping of str to float
        From :func:`qc_metrics`.
    ranges : mapping of str to (float, float)
        Normal range of each metric.

    Returns
    -------
    dict of str to str
        Metric name to message, in the order of ``ranges``.

    Examples
    --------
    >>> flag_metrics({"cnr": 0.4, "snr_wm": 12.0, "snr_air": float("nan")})
    {'cnr': 'cnr = 0.4 is below the normal range (>= 1)'}
    """
    flags = {}
    for name, (low, high) in ranges.items():
        value = metrics.get(name)
        if value is None or not math.isfinite(float(value)):
            continue
        value = float(value)
        if low <= value <= high:
            continue
        side = "below" if value < low else "above"
        flags[name] = f"{name} = {value:.3g} is {side} the normal range ({format_range(low, high)})"
    return flags


#: Smallest share of a lesion mask inside the brain mask; below it the mask is flagged. Lesions
#: lie in the brain: a mask drawn generously on a FLAIR strays into the CSF around the brain by
#: a few voxels, not by half (a mask drawn on another image, or shifted by its header, does).
MIN_LESION_IN_BRAIN = 0.5


def fraction_inside(mask: SpatialImage, region: SpatialImage) -> float:
    """Share of a mask's voxels whose centres fall inside a region, through the two affines.

    The grids may differ: each voxel centre of the mask is carried to the nearest voxel of the
    region; centres outside the region's field of view count as outside.

    Parameters
    ----------
    mask : nibabel image
        A mask (non-zero voxels), e.g. a lesion mask on its own grid.
    region : nibabel image
        A region (non-zero voxels), e.g. the brain mask.

    Returns
    -------
    float
        The share in [0, 1]; NaN for an empty mask.

    Examples
    --------
    >>> import nibabel as nib
    >>> region = nib.Nifti1Image(np.pad(np.ones((4, 4, 4)), 2), np.eye(4))
    >>> shifted = np.eye(4)
    >>> shifted[0, 3] = 3.0
    >>> fraction_inside(nib.Nifti1Image(_array(region), shifted), region)
    0.25
    """
    points = np.argwhere(_array(mask) > 0)
    if not len(points):
        return math.nan
    world = np.c_[points, np.ones(len(points))] @ mask.affine.T
    index = np.rint(world @ np.linalg.inv(region.affine).T)[:, :3].astype(int)
    on_grid = ((index >= 0) & (index < region.shape[:3])).all(axis=1)
    inside = np.zeros(len(points), dtype=bool)
    inside[on_grid] = (_array(region) > 0)[tuple(index[on_grid].T)]
    return float(inside.mean())


def lesion_mask_flag(lesion: SpatialImage, brain_mask: SpatialImage) -> str | None:
    """Return the QC flag of a lesion mask lying mostly outside the brain mask, if it does.

    Parameters
    ----------
    lesion : nibabel image
        The input lesion mask, on its own grid.
    brain_mask : nibabel image
        The final brain mask.

    Returns
    -------
    str or None
        The message; None for an empty mask (a session without lesions) or one inside the brain.
    """
    share = fraction_inside(lesion, brain_mask)
    if not math.isfinite(share) or share >= MIN_LESION_IN_BRAIN:
        return None
    return (
        f"{1 - share:.0%} of the lesion mask lies outside the brain mask: check that it was "
        "drawn on this T1w and that its header places it there"
    )

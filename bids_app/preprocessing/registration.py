"""Registration of a T1w image to the MNI152NLin2009aSym template with ANTsPy.

Coll 2023 §2.2 registers to MNI152 at 1 mm; we run affine then SyN (Avants et al. 2008) and
estimate the deformation on a coarser template grid (2 mm by default): the warp is smooth at
that scale and 8 times fewer voxels make SyN fast on two cores. Outputs are resampled at 1 mm.
Both directions are saved as single displacement fields (ITK convention, usable with
``ants.apply_transforms``), which also gives the Jacobian determinant directly. The affine stage
is kept on its own as well: Coll 2023 §2.2 registered to MNI152 with an affine only (FLIRT,
Jenkinson & Smith 2001), which leaves the subject's atrophy in the template-space image.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Collection
from dataclasses import asdict, dataclass
from pathlib import Path

import ants
import nibabel as nib
import numpy as np
import pandas as pd

from bids_app.preprocessing.antsio import to_ants, to_nibabel
from bids_app.preprocessing.templates import Template, with_head
from bids_app.utils.arrays import bounding_box, largest_component

#: Height (mm) of the head kept below its top before registration, as FSL's robustfov keeps
#: 170 mm: the neck of sagittal MPRAGEs otherwise pulls the centre-of-mass initialisation down.
HEAD_HEIGHT_MM = 180.0

#: Thickness (mm) of scalp and skull removed by :func:`rough_brain_mask`.
ROUGH_BRAIN_DEPTH_MM = 12.0

#: Height (mm) below the top of the head kept by :func:`rough_brain_mask` (the face and neck
#: lie lower).
ROUGH_BRAIN_HEIGHT_MM = 110.0

#: ITK's physical space is LPS+, nibabel's RAS+: the signs of x and y differ.
_RAS_TO_LPS = np.array([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class RegistrationSettings:
    """Settings of the affine + SyN registration.

    Parameters
    ----------
    template_resolution : int
        Voxel size (mm) of the template grid on which the registration runs.
    affine_iterations, affine_shrink, affine_smoothing : tuple of int
        Iterations, shrink factors and smoothing sigmas (voxels) per affine level.
    syn_iterations : tuple of int
        SyN iterations per level (ANTsPy halves the shrink factor at each level).
    syn_metric : str
        SyN similarity metric (``mattes`` mutual information or ``CC``).
    grad_step, flow_sigma, total_sigma : float
        SyN gradient step and regularisation (ANTsPy's defaults 0.2, 3, 0).
    mask_dilation_mm : float
        Dilation of the template brain mask used as the fixed-image metric mask. It must reach
        past the painted scalp (14.5 mm): with 16 mm the scalp's outer edge fell out of the
        metric and most 2 mm demo heads were scaled onto the scalp (Dice 0.61); with 24 mm,
        0.97 (Colin27 unchanged, 0.964).
    """

    template_resolution: int = 2
    affine_iterations: tuple[int, ...] = (200, 100, 20)
    affine_shrink: tuple[int, ...] = (4, 2, 1)
    affine_smoothing: tuple[int, ...] = (2, 1, 0)
    syn_iterations: tuple[int, ...] = (40, 20, 0)
    syn_metric: str = "mattes"
    grad_step: float = 0.2
    flow_sigma: float = 3.0
    total_sigma: float = 0.0
    mask_dilation_mm: float = 24.0

    def to_dict(self) -> dict:
        """Return the settings as JSON-serialisable values."""
        return {key: list(v) if isinstance(v, tuple) else v for key, v in asdict(self).items()}


#: ``precise`` is the default: on Colin27 its warped template mask matches the brain as well as
#: longer affine and SyN schedules do (Dice within 0.003) in two thirds to three quarters of
#: their time, a quarter of that of ANTsPy's ``SyN`` defaults. ``sloppy`` is for tests and
#: demonstrations (``--sloppy``): a quarter of the time on a small synthetic head for a slightly
#: lower Dice.
#: The measurements are in ``benchmarks/notes/code-history.md``, "Registration".
REGISTRATION_PRESETS = {
    "precise": RegistrationSettings(),
    # The coarsest affine level is kept: without it the synthetic head's registration failed.
    "sloppy": RegistrationSettings(
        affine_iterations=(200, 100, 0),
        syn_iterations=(40, 10, 0),
    ),
}


@dataclass(frozen=True)
class RegistrationResult:
    """Transforms between a T1w image and the template.

    Parameters
    ----------
    forward : Path
        Displacement field taking template points to T1w points (what resamples T1w-space
        images into the template), on the registration's template grid.
    inverse : Path
        Displacement field taking T1w points to template points (what resamples template
        images into T1w space), on a grid covering the T1w image.
    affine : Path
        The affine stage alone (ANTs ``.mat``, template points to T1w points, as ``forward``;
        ``ants.apply_transforms(..., whichtoinvert=[True])`` inverts it).
    """

    forward: Path
    inverse: Path
    affine: Path


def crop_to_head(image: nib.Nifti1Image, height_mm: float = HEAD_HEIGHT_MM) -> nib.Nifti1Image:
    """Set to zero everything lower than ``height_mm`` below the top of the head.

    Parameters
    ----------
    image : nibabel.Nifti1Image
        A RAS image of a head.
    height_mm : float
        How much to keep below the highest head voxel.

    Returns
    -------
    nibabel.Nifti1Image
        The image, the neck set to 0; unchanged if it is shorter than ``height_mm``.
    """
    data = np.asarray(image.dataobj, dtype=np.float32)
    foreground = head_mask(image)
    if not foreground.any():
        return image
    k = np.arange(data.shape[2])
    z = image.affine[2, 2] * k + image.affine[2, 3]  # RAS: the third axis is superior
    rows = foreground.any(axis=(0, 1))
    top = z[rows].max()
    keep = z >= top - height_mm
    if keep.all():
        return image
    cropped = data * keep[None, None, :]
    return nib.Nifti1Image(cropped, image.affine)


def head_mask(image: nib.Nifti1Image) -> np.ndarray:
    """Return the head: Otsu's threshold on log intensities, closed, holes filled, largest part.

    Log intensities separate the dark background from a head whose brain is darker than its
    scalp (plain Otsu then keeps only the bright fat).

    Parameters
    ----------
    image : nibabel.Nifti1Image
        A head image.

    Returns
    -------
    numpy.ndarray
        Boolean mask.
    """
    from scipy import ndimage as ndi

    data = np.clip(np.asarray(image.dataobj, dtype=np.float32), 0, None)
    threshold = np.expm1(_otsu(np.log1p(data)))
    return largest_component(
        ndi.binary_fill_holes(ndi.binary_closing(data > threshold, iterations=2))
    )


def rough_brain_mask(
    head: nib.Nifti1Image,
    depth_mm: float = ROUGH_BRAIN_DEPTH_MM,
    height_mm: float = ROUGH_BRAIN_HEIGHT_MM,
) -> np.ndarray:
    """Return a crude brain region: the head eroded by ``depth_mm``, top ``height_mm`` only.

    Used to initialise the affine registration: its centroid is put on the template brain's.

    Parameters
    ----------
    head : nibabel.Nifti1Image
        A RAS head image.
    depth_mm : float
        Scalp + skull thickness removed.
    height_mm : float
        Height kept below the top of the head.

    Returns
    -------
    numpy.ndarray
        Boolean mask (the whole head if erosion would leave too little).
    """
    from scipy import ndimage as ndi

    foreground = head_mask(head)
    zooms = np.array(head.header.get_zooms()[:3], dtype=float)
    radius = np.maximum(1, np.round(depth_mm / zooms)).astype(int)
    grid = np.ogrid[tuple(slice(-r, r + 1) for r in radius)]
    ball = sum((g * z / depth_mm) ** 2 for g, z in zip(grid, zooms, strict=True)) <= 1.0
    inner = ndi.binary_erosion(foreground, structure=ball)
    z = head.affine[2, 2] * np.arange(head.shape[2]) + head.affine[2, 3]
    top = z[foreground.any(axis=(0, 1))].max()
    inner &= (z >= top - height_mm)[None, None, :]
    return inner if inner.sum() > 0.1 * foreground.sum() else foreground


def initial_translation(rough: np.ndarray, affine: np.ndarray, template: Template) -> np.ndarray:
    """Return the translation (RAS, mm) taking the template brain's top onto a rough brain.

    Both centroids are taken over the same height below the top (the template's brain top
    plus 10 mm of scalp stands for the vertex).

    Parameters
    ----------
    rough : numpy.ndarray
        Rough brain mask of the moving image (see :func:`rough_brain_mask`).
    affine : numpy.ndarray
        Its voxel-to-world affine.
    template : Template
        The template.

    Returns
    -------
    numpy.ndarray
        Moving centroid minus template centroid.
    """
    brain = np.asarray(template.brain_mask.dataobj) > 0
    taffine = template.brain_mask.affine
    z = taffine[2, 2] * np.arange(brain.shape[2]) + taffine[2, 3]
    top = z[brain.any(axis=(0, 1))].max() + ROUGH_BRAIN_DEPTH_MM - 2.0
    brain &= (z >= top - ROUGH_BRAIN_HEIGHT_MM)[None, None, :]
    moving_centre = nib.affines.apply_affine(affine, np.argwhere(rough).mean(axis=0))
    fixed_centre = nib.affines.apply_affine(taffine, np.argwhere(brain).mean(axis=0))
    return moving_centre - fixed_centre


def _otsu(data: np.ndarray) -> float:
    from skimage.filters import threshold_otsu

    return float(threshold_otsu(data[::2, ::2, ::2]))


def register_to_template(
    moving: nib.Nifti1Image,
    template: Template,
    out_dir: Path,
    settings: RegistrationSettings = REGISTRATION_PRESETS["precise"],
    moving_is_head: bool = True,
) -> RegistrationResult:
    """Register a T1w image (head or brain) to the template: affine, then SyN.

    A head is registered to the template with a synthetic head painted around its brain
    (:func:`~bids_app.preprocessing.templates.with_head`): on the synthetic cohort this raised
    the Dice of the warped brain mask after the affine stage from 0.70 to 0.97, and left
    Colin27 unchanged (0.95). The affine stage starts from a translation that puts the template
    brain's centroid on the rough brain's (:func:`rough_brain_mask`), not from the centres of
    mass of the intensities, which faces and necks pull down.

    Parameters
    ----------
    moving : nibabel.Nifti1Image
        The bias-corrected T1w image (RAS); a head or a skull-stripped brain.
    template : Template
        The template at ``settings.template_resolution``.
    out_dir : Path
        Folder for the transform files (created).
    settings : RegistrationSettings
        Iterations and grids.
    moving_is_head : bool
        False when ``moving`` is already skull-stripped (then the brain template is used).

    Returns
    -------
    RegistrationResult
        The forward and inverse displacement fields and the affine stage.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    if moving_is_head:
        template = with_head(template)
    fixed = to_ants(template.t1w)
    dilation = max(1, round(settings.mask_dilation_mm / template.resolution))
    fixed_mask = ants.iMath(to_ants(template.brain_mask), "MD", dilation)
    cropped = crop_to_head(moving)
    moving_ants = to_ants(cropped)
    rough = rough_brain_mask(cropped)
    shift = initial_translation(rough, cropped.affine, template) * np.array([-1.0, -1.0, 1.0])
    initial = ants.create_ants_transform(
        transform_type="AffineTransform",
        dimension=3,
        translation=list(shift),  # ITK: LPS
    )
    initial_file = str(out_dir / "initial.mat")
    ants.write_transform(initial, initial_file)
    affine = ants.registration(
        fixed,
        moving_ants,
        type_of_transform="Affine",
        aff_iterations=settings.affine_iterations,
        aff_shrink_factors=settings.affine_shrink,
        aff_smoothing_sigmas=settings.affine_smoothing,
        mask=fixed_mask,
        initial_transform=initial_file,
        outprefix=str(out_dir / "affine_"),
    )
    affine_file = affine["fwdtransforms"][0]
    syn = ants.registration(
        fixed,
        moving_ants,
        type_of_transform="SyNOnly",
        initial_transform=affine_file,
        reg_iterations=settings.syn_iterations,
        syn_metric=settings.syn_metric,
        grad_step=settings.grad_step,
        flow_sigma=settings.flow_sigma,
        total_sigma=settings.total_sigma,
        mask=fixed_mask,
        outprefix=str(out_dir / "syn_"),
    )
    warp = next(f for f in syn["fwdtransforms"] if f.endswith("Warp.nii.gz"))
    inverse_warp = next(f for f in syn["invtransforms"] if f.endswith("InverseWarp.nii.gz"))
    forward = ants.apply_transforms(
        fixed, moving_ants, [warp, affine_file], compose=str(out_dir / "forward_")
    )
    native_grid = _coarse_grid(moving_ants, template.resolution)
    inverse = ants.apply_transforms(
        native_grid,
        fixed,
        [affine_file, inverse_warp],
        whichtoinvert=[True, False],
        compose=str(out_dir / "inverse_"),
    )
    return RegistrationResult(
        forward=Path(forward), inverse=Path(inverse), affine=Path(affine_file)
    )


def _coarse_grid(image: ants.ANTsImage, spacing: float) -> ants.ANTsImage:
    """Return ``image`` resampled to at least ``spacing`` mm (a grid for smooth fields)."""
    target = tuple(max(s, spacing) for s in image.spacing)
    if np.allclose(target, image.spacing):
        return image
    return ants.resample_image(image, target, use_voxels=False, interp_type=1)


def apply_transform(
    image: nib.Nifti1Image,
    reference: nib.Nifti1Image,
    transforms: list[Path],
    interpolation: str = "linear",
    invert: list[bool] | None = None,
) -> nib.Nifti1Image:
    """Resample an image onto a reference grid through displacement fields or affines.

    Parameters
    ----------
    image : nibabel.Nifti1Image
        What to resample.
    reference : nibabel.Nifti1Image
        Grid of the result.
    transforms : list of Path
        ANTs transforms in ANTs order (the last is applied to the reference points first).
    interpolation : str
        ANTs interpolator: ``linear``, ``nearestNeighbor``, ``bSpline``, ``genericLabel``...
    invert : list of bool or None
        Per transform, whether to use its inverse (affines only, e.g. the ``affine`` of
        :func:`register_to_template` to go from the template to the T1w).

    Returns
    -------
    nibabel.Nifti1Image
        Float32 image on the reference grid (0 outside the moving image).
    """
    warped = ants.apply_transforms(
        to_ants(reference),
        to_ants(image),
        [str(t) for t in transforms],
        interpolator=interpolation,
        whichtoinvert=invert,
    )
    return to_nibabel(warped)


def transform_points(world: np.ndarray, transforms: list[Path]) -> np.ndarray:
    """Map world points through ANTs transforms, in the direction points go.

    An ANTs transform maps the points of the fixed (reference) space to the moving one: the
    list that resamples an image of space A onto a grid of space B takes B's points to A's.
    Mapping points from B to A therefore takes that same list, so the template-to-T1w list
    (``inverse`` of :func:`register_to_template`, what warps template images onto the T1w)
    takes T1w points into the template.

    Parameters
    ----------
    world : numpy.ndarray
        Points ``(n, 3)`` in world coordinates (RAS mm, nibabel's convention).
    transforms : list of Path
        ANTs transforms in ANTs order (the last is applied to the points first), none inverted.

    Returns
    -------
    numpy.ndarray
        The mapped points ``(n, 3)``, RAS mm (float64).
    """
    lps = np.asarray(world, dtype=np.float64) * _RAS_TO_LPS
    mapped = ants.apply_transforms_to_points(
        3,
        pd.DataFrame(lps, columns=["x", "y", "z"]),
        [str(t) for t in transforms],
        whichtoinvert=[False] * len(transforms),  # ANTsPy inverts a leading .mat by default
    )
    return mapped[["x", "y", "z"]].to_numpy(dtype=np.float64) * _RAS_TO_LPS


def log_jacobian(forward: Path, reference: nib.Nifti1Image) -> nib.Nifti1Image:
    """Log-Jacobian determinant of the T1w-to-template mapping, in template space.

    Positive values mean the subject's tissue is larger than the template's there (the field
    maps template points to T1w points, so its Jacobian is the local volume ratio
    T1w / template; the affine part is included).

    Parameters
    ----------
    forward : Path
        The forward displacement field of :func:`register_to_template`.
    reference : nibabel.Nifti1Image
        Template-space grid of the result (e.g. the 1 mm template).

    Returns
    -------
    nibabel.Nifti1Image
        Float32 log-Jacobian determinant map.
    """
    field = ants.image_read(str(forward))
    jacobian = ants.create_jacobian_determinant_image(field_domain(field), str(forward), do_log=1)
    return to_nibabel(ants.resample_image_to_target(jacobian, to_ants(reference), "linear"))


def field_domain(field: ants.ANTsImage) -> ants.ANTsImage:
    """Return a scalar image on the grid of a displacement field."""
    return ants.from_numpy(
        np.zeros(field.shape, dtype=np.float32),
        origin=field.origin,
        spacing=field.spacing,
        direction=field.direction,
    )


@dataclass(frozen=True)
class LocalRefinement:
    """Settings of a local SyN that refines the template-to-T1w mapping around a few labels.

    The global registration's SyN stops at a 4 mm grid (:data:`REGISTRATION_PRESETS`): small
    structures such as the medulla oblongata (about 4 mL) follow it only in part. A second,
    dense SyN of a box around them, initialised by the global mapping, follows their borders
    with the cerebrospinal fluid and the cerebellum (see :func:`warp_labels`).

    Parameters
    ----------
    margin_mm : float
        Margin around the labels' bounding box in the T1w (mm).
    voxel_size_mm : float
        The local SyN runs on the box resampled to voxels of at least this size (mm).
    metric : str
        SyN similarity metric (``CC``, local cross-correlation, or ``mattes``).
    radius : int
        Radius (voxels) of ``CC``, or the histogram bins of ``mattes``. On the planted cohort
        of ``tests/test_planted_atrophy.py`` (2 mm) radius 1 read a planted 15 % medulla loss
        (realised 0.877 and 0.853) as 0.870 and 0.867 in 6 s, radius 2 as 0.868 and 0.882 in
        14 s; 40/20/10 iterations with radius 2 read 0.896 and 0.924.
    iterations : tuple of int
        SyN iterations per level (shrink factors 4, 2, 1).
    flow_sigma, grad_step : float
        SyN regularisation and gradient step.
    """

    margin_mm: float = 15.0
    voxel_size_mm: float = 2.0
    metric: str = "CC"
    radius: int = 1
    iterations: tuple[int, ...] = (100, 70, 30)
    flow_sigma: float = 3.0
    grad_step: float = 0.2


def warp_labels(
    labels: nib.Nifti1Image,
    reference: nib.Nifti1Image,
    inverse: list[Path],
    refine: Collection[int] = (),
    template_t1w: nib.Nifti1Image | None = None,
    settings: LocalRefinement = LocalRefinement(),
) -> nib.Nifti1Image:
    """Warp a template-space label map to the T1w (nearest label), refining some labels locally.

    Every label is warped with the global mapping. When ``refine`` is given, the T1w's box
    around those labels (plus ``settings.margin_mm``) is registered once more: the template
    T1w, brought into the box by the global mapping, is registered to the box with SyN
    (:class:`LocalRefinement`), and the label map is warped through both mappings. Inside the box,
    the voxels that either warp gives one of ``refine`` take the refined warp's label; all
    other voxels keep the global one.

    Parameters
    ----------
    labels : nibabel.Nifti1Image
        Integer labels in template space.
    reference : nibabel.Nifti1Image
        The T1w (grid of the result, and the fixed image of the local registration).
    inverse : list of Path
        Template-to-T1w transforms in ANTs order (e.g. the inverse of
        :func:`register_to_template`).
    refine : collection of int
        Labels whose borders are refined; none by default.
    template_t1w : nibabel.Nifti1Image or None
        The template T1w (on any grid in template space); needed when ``refine`` is given.
    settings : LocalRefinement
        Settings of the local SyN.

    Returns
    -------
    nibabel.Nifti1Image
        int16 labels on the grid of ``reference``.

    Raises
    ------
    ValueError
        When ``refine`` is given without ``template_t1w``.
    """
    transforms = [str(t) for t in inverse]
    warped = apply_transform(labels, reference, inverse, "nearestNeighbor")
    codes = np.rint(np.asarray(warped.dataobj)).astype(np.int16)
    target = np.isin(codes, list(refine))
    if not target.any():
        return nib.Nifti1Image(codes, reference.affine)
    if template_t1w is None:
        raise ValueError("refining labels needs the template T1w")
    zooms = np.asarray(reference.header.get_zooms()[:3], dtype=float)
    box = bounding_box(target, tuple(math.ceil(settings.margin_mm / z) for z in zooms))
    fixed = to_ants(reference.slicer[box])
    spacing = tuple(max(s, settings.voxel_size_mm) for s in fixed.spacing)
    grid = ants.resample_image(fixed, spacing, use_voxels=False, interp_type=0)
    moving = ants.apply_transforms(grid, to_ants(template_t1w), transforms, interpolator="linear")
    with tempfile.TemporaryDirectory(prefix="neurostrat_local_syn_") as tmp:
        local = ants.registration(
            grid,
            moving,
            type_of_transform="SyNOnly",
            initial_transform="Identity",
            syn_metric=settings.metric,
            syn_sampling=settings.radius,
            reg_iterations=settings.iterations,
            flow_sigma=settings.flow_sigma,
            grad_step=settings.grad_step,
            outprefix=f"{tmp}/local_",
        )
        refined = ants.apply_transforms(
            fixed,
            to_ants(labels),
            [*local["fwdtransforms"], *transforms],
            interpolator="nearestNeighbor",
        )
    refined_codes = np.rint(refined.numpy()).astype(np.int16)
    inside = codes[box]  # a view: edited in place
    change = np.isin(inside, list(refine)) | np.isin(refined_codes, list(refine))
    inside[change] = refined_codes[change]
    return nib.Nifti1Image(codes, reference.affine)

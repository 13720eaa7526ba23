"""Volumes (mL) from the tissue segmentation and atlas labels warped to the T1w.

Following 001 §2.4 (white matter, grey matter, intracranial, lateral-ventricle, brain-stem and
cerebellum volumes, lesion load) and 002 "Cortical Thickness Analysis and Volumetric Analysis"
(medulla oblongata volume, total intracranial volume):

* tissue volumes are sums of the Atropos posteriors, ``TIV = CSF + GM + WM`` inside the brain
  mask (the SPM convention: Malone et al. 2015, NeuroImage 104:366);
* a parenchymal structure (cerebellum, brain stem and its parts) counts the GM and WM voxels
  of the segmentation inside its atlas labels, warped to the T1w with nearest neighbour; the
  brain stem's parts through a local SyN of the box around them on a 2 mm grid, which follows
  their borders better than the global registration's 4 mm SyN (a planted 15 % medulla
  shrinkage read 0.93-0.94 without it, 0.87 with it);
* the lateral ventricles count the CSF voxels within :data:`VENTRICLE_REACH_MM` of their
  warped labels that the atlas places in deep white matter or nuclei (ventricles larger than
  the template's), plus half of the GM-classified voxels on their white-matter border: a voxel
  half CSF and half white matter has the T1w intensity of grey matter (partial volume);
* regional grey-matter volumes sum the GM posterior over the GM voxels of each region of the
  chosen atlas, each GM voxel joining its nearest region (as CAT12's ROI volumes).

A structure cut by the edge of the field of view, or absent after warping, is NaN with the
reason, never a partial number.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

from bids_app.features.brainstem import MEDULLA, MIDBRAIN, PONS

#: White-matter labels (Desikan-Killiany/aseg), where GM-classified voxels next to a ventricle
#: are partial volume.
WHITE_MATTER_LABELS = (2, 41, 77, 251, 252, 253, 254, 255)
#: Deep labels into which an enlarged lateral ventricle extends: white matter, the ventricles,
#: choroid plexus, caudate, putamen, pallidum, thalamus and accumbens.
DEEP_LABELS = (*WHITE_MATTER_LABELS, 4, 43, 31, 63, 10, 49, 11, 50, 12, 51, 13, 52, 26, 58)
#: Largest distance (mm) from the warped lateral-ventricle labels at which CSF still counts as
#: ventricle (a registration that does not follow enlarged ventricles all the way; measured
#: on the FreeSurfer test brain, the volume stops growing beyond ~4 mm).
VENTRICLE_REACH_MM = 6.0
#: Labels of the tissue segmentation (``dseg``).
CSF_CLASS, GM_CLASS, WM_CLASS = 1, 2, 3


@dataclass(frozen=True)
class Structure:
    """A structure measured from Desikan-Killiany (aseg) labels.

    Parameters
    ----------
    labels : tuple of int
        FreeSurfer codes in the brain-stem-split Desikan-Killiany atlas.
    tissue : {"csf", "parenchyma"}
        What fills it: the CSF posterior, or GM + WM.
    description : str
        For the data dictionary.
    """

    labels: tuple[int, ...]
    tissue: str
    description: str


#: Structures of 001 §2.4 and 002, FreeSurfer codes (lateral ventricles exclude the inferior
#: horns, as FreeSurfer's Lateral-Ventricle labels 4/43 do).
STRUCTURES: dict[str, Structure] = {
    "lateral_ventricles": Structure((4, 43), "csf", "left and right lateral ventricles"),
    "cerebellum": Structure((7, 8, 46, 47), "parenchyma", "cerebellar cortex and white matter"),
    "brainstem": Structure((MIDBRAIN, PONS, MEDULLA), "parenchyma", "midbrain, pons and medulla"),
    "midbrain": Structure((MIDBRAIN,), "parenchyma", "midbrain"),
    "pons": Structure((PONS,), "parenchyma", "pons"),
    "medulla": Structure((MEDULLA,), "parenchyma", "medulla oblongata"),
}

#: Tissue volumes and their descriptions.
TISSUE_VOLUMES: dict[str, str] = {
    "tiv": "total intracranial volume: CSF + GM + WM posteriors inside the brain mask",
    "brain": "brain parenchyma: GM + WM posteriors",
    "gm": "grey matter: sum of the GM posterior",
    "wm": "white matter: sum of the WM posterior",
    "csf": "CSF inside the brain mask: sum of the CSF posterior",
}


def voxel_volume_ml(img: nib.spatialimages.SpatialImage) -> float:
    """Return the volume of one voxel in mL.

    Parameters
    ----------
    img : nibabel image
        Any image.

    Returns
    -------
    float
        ``|det(affine[:3, :3])| / 1000``.
    """
    return float(abs(np.linalg.det(img.affine[:3, :3]))) / 1000.0


def _data(img: nib.spatialimages.SpatialImage) -> np.ndarray:
    return np.asarray(img.dataobj, dtype=np.float32)


def tissue_volumes(
    probseg: Mapping[str, nib.Nifti1Image], brain_mask: nib.Nifti1Image
) -> dict[str, float]:
    """Return TIV, brain, GM, WM and CSF volumes.

    Parameters
    ----------
    probseg : mapping
        ``{"CSF": img, "GM": img, "WM": img}`` posteriors on the T1w grid.
    brain_mask : nibabel.Nifti1Image
        The brain mask on the same grid.

    Returns
    -------
    dict of str to float
        The keys of :data:`TISSUE_VOLUMES`, in mL.
    """
    inside = _data(brain_mask) > 0
    ml = voxel_volume_ml(brain_mask)
    csf, gm, wm = (float(_data(probseg[t])[inside].sum()) * ml for t in ("CSF", "GM", "WM"))
    return {"tiv": csf + gm + wm, "brain": gm + wm, "gm": gm, "wm": wm, "csf": csf}


def _touches_edge(mask: np.ndarray) -> bool:
    """Tell whether a mask reaches the outer faces of its image (a structure cut by the FOV)."""
    faces = (np.take(mask, index, axis=axis) for axis in range(3) for index in (0, -1))
    return any(bool(face.any()) for face in faces)


def _ventricle_voxels(
    inside: np.ndarray, atlas: np.ndarray, tissues: np.ndarray, zooms: tuple[float, ...]
) -> float:
    """Count CSF voxels of a ventricle, plus half of its partial-volume border voxels."""
    distance = ndi.distance_transform_edt(~inside, sampling=zooms)
    core = (distance <= VENTRICLE_REACH_MM) & np.isin(atlas, DEEP_LABELS) & (tissues == CSF_CLASS)
    white = np.isin(atlas, WHITE_MATTER_LABELS) | inside
    border = ndi.binary_dilation(core) & ~core & white & (tissues == GM_CLASS)
    return float(core.sum()) + 0.5 * float(border.sum())


def structure_volumes(
    aparcaseg: nib.Nifti1Image, dseg: nib.Nifti1Image
) -> tuple[dict[str, float], dict[str, str]]:
    """Return the volumes of the structures of :data:`STRUCTURES`.

    Parameters
    ----------
    aparcaseg : nibabel.Nifti1Image
        The brain-stem-split Desikan-Killiany atlas warped to the T1w (nearest neighbour).
    dseg : nibabel.Nifti1Image
        The tissue segmentation on the same grid (1 CSF, 2 GM, 3 WM).

    Returns
    -------
    volumes : dict of str to float
        mL per structure (NaN when it cannot be measured).
    reasons : dict of str to str
        Why a structure is NaN.
    """
    atlas = np.rint(_data(aparcaseg)).astype(np.int32)
    tissues = np.rint(_data(dseg)).astype(np.int32)
    zooms = tuple(float(z) for z in aparcaseg.header.get_zooms()[:3])
    ml = voxel_volume_ml(aparcaseg)
    volumes: dict[str, float] = {}
    reasons: dict[str, str] = {}
    for name, structure in STRUCTURES.items():
        inside = np.isin(atlas, structure.labels)
        if not inside.any():
            volumes[name], reasons[name] = float("nan"), "empty after warping to the T1w"
        elif _touches_edge(inside):
            volumes[name], reasons[name] = float("nan"), "cut by the edge of the field of view"
        elif structure.tissue == "csf":
            volumes[name] = _ventricle_voxels(inside, atlas, tissues, zooms) * ml
        else:
            volumes[name] = float((inside & (tissues >= GM_CLASS)).sum()) * ml
    return volumes, reasons


def column_name(region: str) -> str:
    """Return a lower-case column-safe version of a region name.

    Parameters
    ----------
    region : str
        A label name, e.g. ``"ctx-lh-precentral"``.

    Returns
    -------
    str
        E.g. ``"ctx_lh_precentral"``.

    Examples
    --------
    >>> column_name("Left-Cerebellum-Cortex")
    'left_cerebellum_cortex'
    >>> column_name("Cerebellar_Vermal_Lobules_I-V")
    'cerebellar_vermal_lobules_i_v'
    """
    return re.sub(r"[^0-9a-z]+", "_", region.lower()).strip("_")


#: Largest distance (mm) over which a grey-matter voxel joins the nearest atlas region.
REGION_PROPAGATION_MM = 5.0


def regional_grey_volumes(
    labels: nib.Nifti1Image,
    dseg: nib.Nifti1Image,
    gm: nib.Nifti1Image,
    regions: Mapping[int, str],
) -> tuple[dict[str, float], dict[str, str]]:
    """Return the grey-matter volume of each atlas region.

    Every GM voxel of the segmentation joins the nearest region of the warped atlas (within
    :data:`REGION_PROPAGATION_MM`), and each region sums the GM posterior of its voxels.

    Parameters
    ----------
    labels : nibabel.Nifti1Image
        The atlas warped to the T1w grid (nearest neighbour).
    dseg : nibabel.Nifti1Image
        The tissue segmentation on the same grid (2 = GM).
    gm : nibabel.Nifti1Image
        The GM posterior on the same grid.
    regions : mapping of int to str
        Label value to region name (the atlas's grey-matter regions).

    Returns
    -------
    volumes : dict of str to float
        mL per region, keyed by :func:`column_name` of the region (NaN when absent).
    reasons : dict of str to str
        Why a region is NaN.
    """
    atlas = np.rint(_data(labels)).astype(np.int32)
    zooms = tuple(float(z) for z in labels.header.get_zooms()[:3])
    distance, nearest = ndi.distance_transform_edt(
        ~np.isin(atlas, list(regions)), sampling=zooms, return_indices=True
    )
    grey = (np.rint(_data(dseg)) == GM_CLASS) & (distance <= REGION_PROPAGATION_MM)
    assigned = np.zeros_like(atlas)
    assigned[grey] = atlas[tuple(index[grey] for index in nearest)]
    size = max(int(atlas.max(initial=0)), max(regions, default=0)) + 1
    sums = np.bincount(assigned.ravel(), weights=_data(gm).ravel(), minlength=size)
    present = np.bincount(atlas.ravel(), minlength=size) > 0
    volumes: dict[str, float] = {}
    reasons: dict[str, str] = {}
    for value, name in regions.items():
        key = column_name(name)
        if not present[value]:
            volumes[key], reasons[key] = float("nan"), "empty after warping to the T1w"
        else:
            volumes[key] = float(sums[value]) * voxel_volume_ml(gm)
    return volumes, reasons


def lesion_volume(lesion: nib.Nifti1Image) -> float:
    """Return the volume of a binary lesion mask in mL (the lesion load of 001 §2.4).

    Parameters
    ----------
    lesion : nibabel.Nifti1Image
        Lesion mask (values > 0.5 are lesion).

    Returns
    -------
    float
        mL.
    """
    return float((_data(lesion) > 0.5).sum()) * voxel_volume_ml(lesion)

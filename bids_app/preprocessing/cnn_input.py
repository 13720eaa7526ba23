"""CNN-ready images: brain-masked, intensity-normalised, cropped to a fixed box in MNI space.

Coll 2023 §2.2-2.3: min-max intensity normalisation and a 144 x 184 x 152 mm³ crop of the brain
region of MNI152 at 1 mm; Lu 2023 §II.A also normalises to [0, 1]. The box is centred on the
template's brain mask, so that every subject's crop covers the same anatomy.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
from nilearn.image import resample_to_img

from bids_app.preprocessing.qmaps import range_normalise

#: Size (mm) of the input patch of Coll 2023 §2.3.
CNN_BOX_MM = (144, 184, 152)

NORMALISATIONS = ("minmax", "zscore")


def crop_slices(
    template_mask: nib.Nifti1Image, box_mm: tuple[float, float, float] = CNN_BOX_MM
) -> tuple[slice, slice, slice]:
    """Voxel slices of a box of ``box_mm`` centred on the template brain's bounding box.

    Parameters
    ----------
    template_mask : nibabel.Nifti1Image
        The template's brain mask on the output grid.
    box_mm : tuple of float
        Box size along the grid axes (RAS), in mm.

    Returns
    -------
    tuple of slice
        May extend beyond the grid; :func:`crop` pads with zeros.
    """
    mask = np.asarray(template_mask.dataobj) > 0
    zooms = template_mask.header.get_zooms()[:3]
    slices = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        present = np.flatnonzero(mask.any(axis=other))
        centre = (present[0] + present[-1] + 1) / 2.0
        size = round(float(box_mm[axis]) / float(zooms[axis]))
        start = round(float(centre) - size / 2.0)
        slices.append(slice(start, start + size))
    return tuple(slices)


def crop(image: nib.Nifti1Image, slices: tuple[slice, slice, slice]) -> nib.Nifti1Image:
    """Crop (and zero-pad where the box leaves the grid), keeping world coordinates.

    Parameters
    ----------
    image : nibabel.Nifti1Image
        A 3D image.
    slices : tuple of slice
        Voxel ranges (``start`` may be negative, ``stop`` beyond the shape).

    Returns
    -------
    nibabel.Nifti1Image
        The box, its affine shifted to the box's first voxel.
    """
    data = np.asarray(image.dataobj)
    out = np.zeros([s.stop - s.start for s in slices], dtype=data.dtype)
    source, target = [], []
    for axis, s in enumerate(slices):
        lo, hi = max(s.start, 0), min(s.stop, data.shape[axis])
        source.append(slice(lo, hi))
        target.append(slice(lo - s.start, hi - s.start))
    out[tuple(target)] = data[tuple(source)]
    affine = image.affine.copy()
    affine[:3, 3] = nib.affines.apply_affine(image.affine, [s.start for s in slices])
    return nib.Nifti1Image(out, affine)


def normalise(data: np.ndarray, mask: np.ndarray, method: str = "minmax") -> np.ndarray:
    """Normalise intensities inside a mask; 0 outside.

    Parameters
    ----------
    data : numpy.ndarray
        Intensities.
    mask : numpy.ndarray
        Brain mask (bool).
    method : {"minmax", "zscore"}
        ``minmax`` maps the brain's minimum and maximum to 0 and 1 (Coll 2023 §2.2);
        ``zscore`` subtracts the brain's mean and divides by its standard deviation.

    Returns
    -------
    numpy.ndarray
        float32 array.

    Examples
    --------
    >>> normalise(np.array([2.0, 4.0, 6.0, 100.0]), np.array([True, True, True, False]))
    array([0. , 0.5, 1. , 0. ], dtype=float32)
    """
    if method not in NORMALISATIONS:
        raise ValueError(f"normalisation must be one of {NORMALISATIONS}, not {method!r}")
    values = data[mask]
    if values.size == 0:
        raise ValueError("the brain mask is empty: nothing to normalise")
    if method == "minmax":
        low, high = values.min(), values.max()
        scaled = (data - low) / max(high - low, np.finfo(np.float32).tiny)
    else:
        scaled = (data - values.mean()) / max(values.std(), np.finfo(np.float32).tiny)
    return np.where(mask, scaled, 0.0).astype(np.float32)


def cnn_ready(
    image_mni: nib.Nifti1Image,
    brain_mask_mni: nib.Nifti1Image,
    template_mask: nib.Nifti1Image,
    method: str = "minmax",
    box_mm: tuple[float, float, float] = CNN_BOX_MM,
    value_range: tuple[float, float] | None = None,
) -> nib.Nifti1Image:
    """Brain-mask, normalise and crop an image in template space.

    Parameters
    ----------
    image_mni : nibabel.Nifti1Image
        The image resampled to the template grid.
    brain_mask_mni : nibabel.Nifti1Image
        The subject's brain mask on the same grid.
    template_mask : nibabel.Nifti1Image
        The template's brain mask on the same grid (places the box).
    method : {"minmax", "zscore"}
        Intensity normalisation.
    box_mm : tuple of float
        Crop size in mm.
    value_range : tuple of float or None
        A quantitative map's range (:data:`~bids_app.preprocessing.qmaps.MAP_RANGES`): clipped
        and scaled to [0, 1] instead of ``method`` (Lu 2023 §II.A).

    Returns
    -------
    nibabel.Nifti1Image
        float32 crop of ``box_mm`` / voxel size voxels.
    """
    mask = np.asarray(brain_mask_mni.dataobj) > 0
    data = np.asarray(image_mni.dataobj, dtype=np.float32)
    if value_range is None:
        data = normalise(data, mask, method)
    else:
        data = range_normalise(data, mask, *value_range)
    return crop(nib.Nifti1Image(data, image_mni.affine), crop_slices(template_mask, box_mm))


def to_crop_grid(
    image: nib.Nifti1Image, crop_image: nib.Nifti1Image, interpolation: str = "nearest"
) -> nib.Nifti1Image:
    """Resample an MNI-space image (an atlas, a Jacobian, a mask) onto the grid of a crop.

    Parameters
    ----------
    image : nibabel.Nifti1Image
        An image in MNI space on any grid.
    crop_image : nibabel.Nifti1Image
        A CNN-ready crop (only its grid is used).
    interpolation : {"nearest", "linear", "continuous"}
        nilearn's interpolation (``nearest`` for labels and masks).

    Returns
    -------
    nibabel.Nifti1Image
        On the crop's grid, 0 outside ``image``.
    """
    return resample_to_img(
        image, crop_image, interpolation=interpolation, copy_header=True, force_resample=True
    )

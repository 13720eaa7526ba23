"""Conform an anatomical image: 3D, finite, float32, RAS orientation, consistent header.

Also the checks of an image's header and geometry that run before any processing
(:func:`image_error`, :func:`coverage_error`, :func:`grid_error`): each returns the
:class:`~bids_app.errors.DataError` to raise, naming the file and the fix, or None.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from bids_app.errors import DataError

#: Largest disagreement (mm, in any voxel-to-world entry) tolerated between qform and sform.
QFORM_SFORM_TOLERANCE = 1e-3
#: Smallest and largest voxel dimension (mm). Below, a header in metres or a microscopy
#: image; above, one in micrometres or a thumbnail. Thick clinical slices (up to 16 mm) pass:
#: they are resampled isotropic (:func:`resample_anisotropic`).
VOXEL_SIZE_MM = (0.2, 16.0)
#: Smallest field of view (mm) of a T1w along each axis: no brain is smaller (an adult's is
#: about 140 x 170 x 120 mm, a newborn's about 90 mm), so a smaller image is a slab, a
#: localiser or a crop, which the template registration cannot place (the suite's toy
#: phantoms are 60 mm).
MIN_FOV_MM = 50.0
#: What fixes a header whose orientation is missing or wrong.
_FIX_HEADER = "set the sform/qform (e.g. with fslorient or nibabel) or re-convert it (dcm2niix)"


def load_image(path: Path) -> nib.Nifti1Image:
    """Load a NIfTI image and its data, turning every reading failure into a clear error.

    Parameters
    ----------
    path : Path
        A ``.nii`` or ``.nii.gz`` file.

    Returns
    -------
    nibabel.Nifti1Image
        The image, its data read into memory (so corrupt files fail here, not later).

    Raises
    ------
    DataError
        Naming the file when it is missing, truncated, or not NIfTI.
    """
    if path.is_symlink() and not path.exists():
        raise DataError(
            f"{path} is a broken symbolic link (to {os.readlink(path)}); fetch its data "
            f"(e.g. datalad get {path.name}, or git annex get) or replace the link by the image"
        )
    try:
        img = nib.load(path)
        data = np.asanyarray(img.dataobj)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found") from exc
    except Exception as exc:  # nibabel raises many types for corrupt files (EOFError, zlib...)
        raise DataError(
            f"{path} cannot be read as NIfTI ({type(exc).__name__}: {exc}); "
            "re-export or re-convert this image (e.g. with dcm2niix)"
        ) from exc
    if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
        raise DataError(f"{path} is a {type(img).__name__}, not NIfTI; convert it to NIfTI")
    return nib.Nifti1Image(data, img.affine, img.header)


def image_error(img: nib.Nifti1Image, source: str) -> DataError | None:
    """Check that an image holds real numbers and a usable voxel-to-world affine.

    Refused: complex or RGB data, a header whose qform and sform codes are both 0 (its
    orientation, left from right, is unknown: the BIDS validator's error
    ``SFORM_AND_QFORM_IN_IMAGE_HEADER_ARE_ZERO``), a singular or non-finite affine, and voxel
    dimensions outside :data:`VOXEL_SIZE_MM`.

    Parameters
    ----------
    img : nibabel.Nifti1Image
        The image as loaded (its header's codes are read).
    source : str
        Name of the file, which starts the message.

    Returns
    -------
    DataError or None
        The error naming the file, what is wrong and the fix; None for a usable image.

    Examples
    --------
    >>> image_error(nib.Nifti1Image(np.ones((4, 4, 4), np.int8), np.eye(4)), "t1.nii") is None
    True
    >>> print(image_error(nib.Nifti1Image(np.ones((4, 4, 4), np.complex64), np.eye(4)), "t1.nii"))
    t1.nii: complex-valued data (complex64); save the magnitude image (e.g. numpy.abs) and use that
    """
    dtype = np.asanyarray(img.dataobj).dtype
    if dtype.names:
        return DataError(
            f"{source}: RGB colour data ({len(dtype.names)} channels); an MRI image is grey-scale: "
            "re-convert the scanner's image (e.g. with dcm2niix), not a colour rendering of it"
        )
    if dtype.kind == "c":
        return DataError(
            f"{source}: complex-valued data ({dtype}); "
            "save the magnitude image (e.g. numpy.abs) and use that"
        )
    if dtype.kind not in "biuf":
        return DataError(f"{source}: data of type {dtype} are not numbers; re-convert the image")
    header = img.header
    if not int(header["qform_code"]) and not int(header["sform_code"]):
        return DataError(
            f"{source}: the header's qform and sform codes are both 0, so its orientation (left "
            f"from right) is unknown; {_FIX_HEADER}"
        )
    affine = img.affine
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-6:
        return DataError(
            f"{source}: the header's voxel-to-world affine is singular or not finite; {_FIX_HEADER}"
        )
    zooms = nib.affines.voxel_sizes(affine)
    low, high = VOXEL_SIZE_MM
    if zooms.min() < low or zooms.max() > high:
        return DataError(
            f"{source}: voxel size {_mm(zooms)} mm is outside {low:g}-{high:g} mm; the header's "
            f"voxel size is probably in other units than mm: {_FIX_HEADER}"
        )
    return None


def coverage_error(img: nib.Nifti1Image, source: str) -> DataError | None:
    """Check that a T1w covers a head: a field of view of :data:`MIN_FOV_MM` or more per axis.

    Parameters
    ----------
    img : nibabel.Nifti1Image
        The T1w, its affine checked by :func:`image_error`.
    source : str
        Name of the file, which starts the message.

    Returns
    -------
    DataError or None
        The error naming the file and the fix; None when the image is large enough.

    Examples
    --------
    >>> error = coverage_error(nib.Nifti1Image(np.ones((4, 4, 4)), np.eye(4) * 3), "t1.nii")
    >>> str(error).split(";")[0]
    't1.nii: field of view 12 x 12 x 12 mm is under 50 mm along an axis, too small for a head'
    """
    fov = np.array(img.shape[:3]) * nib.affines.voxel_sizes(img.affine)
    if fov.min() >= MIN_FOV_MM:
        return None
    return DataError(
        f"{source}: field of view {_mm(fov)} mm is under {MIN_FOV_MM:g} mm along an axis, too "
        "small for a head; give the whole-head 3D T1w (not a slab, a localiser or a crop)"
    )


def grid_error(
    mask: nib.Nifti1Image, reference: nib.Nifti1Image, source: str, reference_name: str
) -> DataError | None:
    """Check that a mask is on the grid of its image (the same shape, once both are RAS).

    A mask of another shape was drawn on another image (BIDS and fMRIPrep define a lesion mask
    in the space of its T1w); resampling it through the two headers would silently trust a
    match nothing shows. Its position is checked later, against the brain mask.

    Parameters
    ----------
    mask : nibabel.Nifti1Image
        The mask (e.g. a lesion mask), its header checked by :func:`image_error`.
    reference : nibabel.Nifti1Image
        The image it belongs to (the T1w).
    source, reference_name : str
        Names of the two files, for the message.

    Returns
    -------
    DataError or None
        The error naming both files and the fix; None when the grids match.

    Examples
    --------
    >>> t1w = nib.Nifti1Image(np.ones((4, 5, 6)), np.diag([-1.0, 1.0, 1.0, 1.0]))
    >>> grid_error(nib.Nifti1Image(np.ones((4, 5, 6)), np.eye(4)), t1w, "m", "t") is None
    True
    >>> error = grid_error(nib.Nifti1Image(np.ones((2, 5, 6)), np.eye(4)), t1w, "m", "t")
    >>> str(error).split(";")[0]
    'm: its grid (2 x 5 x 6 voxels) is not that of t (4 x 5 x 6)'
    """
    shapes = [_ras_shape(img) for img in (mask, reference)]
    if shapes[0] == shapes[1]:
        return None
    return DataError(
        f"{source}: its grid ({' x '.join(map(str, shapes[0]))} voxels) is not that of "
        f"{reference_name} ({' x '.join(map(str, shapes[1]))}); resample it onto the T1w "
        "(e.g. antsApplyTransforms -n NearestNeighbor -r <T1w>) or remove it"
    )


def _ras_shape(img: nib.Nifti1Image) -> tuple[int, ...]:
    """Return the image's shape along the R, A and S axes (its axes reordered as RAS)."""
    ornt = nib.orientations.io_orientation(img.affine)
    shape = [0, 0, 0]
    for size, axis in zip(img.shape[:3], ornt[:, 0], strict=True):
        shape[int(axis)] = int(size)
    return tuple(shape)


def _mm(values: np.ndarray) -> str:
    return " x ".join(f"{value:.3g}" for value in values)


def conform(
    img: nib.Nifti1Image, source: str = "image", allow_constant: bool = False
) -> tuple[nib.Nifti1Image, dict[str, Any]]:
    """Make an anatomical image safe for every later step.

    Refuses what :func:`image_error` refuses, squeezes a trailing singleton 4th dimension,
    refuses other non-3D images, NaN/Inf and constant images, checks that qform and sform agree
    (sform wins, as in nibabel), reorients to RAS+ by axis permutation and flipping only (no
    resampling), and stores float32.

    Parameters
    ----------
    img : nibabel.Nifti1Image
        The input image.
    source : str
        Name of the input file, used in error messages.
    allow_constant : bool
        Accept a constant image (an empty lesion mask: a session without lesions).

    Returns
    -------
    conformed : nibabel.Nifti1Image
        RAS, float32 image with qform = sform.
    report : dict
        What was found and done: original orientation, shape, zooms and the changes.

    Raises
    ------
    DataError
        If the image is not 3D, has non-finite values, is constant (unless allowed), or its
        data type or header is unusable.

    Examples
    --------
    >>> data = np.random.default_rng(0).random((4, 5, 6))
    >>> las = nib.Nifti1Image(data, np.diag([-2.0, 2.0, 2.0, 1.0]))
    >>> out, report = conform(las)
    >>> report["orientation"], nib.aff2axcodes(out.affine), out.get_fdata().dtype.name
    ('LAS', ('R', 'A', 'S'), 'float64')
    >>> out.get_data_dtype().name
    'float32'
    """
    error = image_error(img, source)
    if error is not None:
        raise error
    data = np.asanyarray(img.dataobj)
    changes: list[str] = []
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
        changes.append("squeezed a singleton 4th dimension")
    if data.ndim != 3:
        raise DataError(f"{source}: expected a 3D image, got shape {data.shape}")
    if min(data.shape) < 2:
        raise DataError(f"{source}: a 2D image (shape {data.shape}) is not a volume")
    data = np.asarray(data, dtype=np.float32)
    if not np.isfinite(data).all():
        count = int((~np.isfinite(data)).sum())
        raise DataError(f"{source}: {count} voxels are NaN or Inf; fix or re-convert the image")
    if data.min() == data.max() and not allow_constant:
        raise DataError(f"{source}: the image is constant ({data.min()}); it holds no anatomy")
    affine = _checked_affine(img, changes)
    ornt = nib.orientations.io_orientation(affine)
    orientation = "".join(nib.orientations.ornt2axcodes(ornt))
    canonical = nib.as_closest_canonical(nib.Nifti1Image(data, affine))
    if orientation != "RAS":
        changes.append(f"reoriented {orientation} to RAS")
    out_data = np.asarray(canonical.dataobj, dtype=np.float32)
    out = nib.Nifti1Image(out_data, canonical.affine)
    out.set_qform(canonical.affine, code=1)
    out.set_sform(canonical.affine, code=1)
    out.header.set_xyzt_units("mm", "sec")
    report = {
        "orientation": orientation,
        "shape": list(data.shape),
        "zooms": [round(float(z), 4) for z in img.header.get_zooms()[:3]],
        "changes": changes,
    }
    return out, report


def _checked_affine(img: nib.Nifti1Image, changes: list[str]) -> np.ndarray:
    """Return the voxel-to-world affine, noting a qform that disagrees with the sform."""
    header = img.header
    sform, sform_code = header.get_sform(coded=True)
    qform, qform_code = header.get_qform(coded=True)
    if sform_code and qform_code and not np.allclose(sform, qform, atol=QFORM_SFORM_TOLERANCE):
        changes.append("qform and sform disagreed: used the sform")
    return img.affine


#: Voxel anisotropy (largest over smallest voxel size) above which an image is resampled to
#: isotropic voxels before registration (clinical 2D scans: 0.7 x 0.7 x 4 mm is 5.7).
MAX_ANISOTROPY = 3.0


def resample_anisotropic(
    img: nib.Nifti1Image, max_ratio: float = MAX_ANISOTROPY
) -> tuple[nib.Nifti1Image, str | None]:
    """Resample a strongly anisotropic image to isotropic voxels.

    The target voxel size is the smallest voxel dimension, but not below 1 mm (upsampling thick
    slices further adds no information and costs memory).

    Parameters
    ----------
    img : nibabel.Nifti1Image
        A conformed (RAS) image.
    max_ratio : float
        Largest tolerated ratio of the largest to the smallest voxel size.

    Returns
    -------
    image : nibabel.Nifti1Image
        The image, resampled (trilinear) if it was too anisotropic.
    note : str or None
        What was done, for the log and the sidecar; None if nothing was.

    Examples
    --------
    >>> data = np.random.default_rng(0).random((20, 20, 4), dtype=np.float32)
    >>> out, note = resample_anisotropic(nib.Nifti1Image(data, np.diag([1.0, 1.0, 5.0, 1.0])))
    >>> [float(z) for z in out.header.get_zooms()], out.shape, note is not None
    ([1.0, 1.0, 1.0], (20, 20, 20), True)
    """
    from nilearn.image import resample_img

    zooms = np.array(img.header.get_zooms()[:3], dtype=float)
    ratio = zooms.max() / zooms.min()
    if ratio <= max_ratio:
        return img, None
    size = max(float(zooms.min()), 1.0)
    extent = np.array(img.shape[:3]) * zooms
    shape = np.ceil(extent / size).astype(int)
    affine = img.affine.copy()
    affine[:3, :3] = np.diag([size] * 3)
    affine[:3, 3] = nib.affines.apply_affine(img.affine, -0.5 * np.ones(3)) + size / 2.0
    out = resample_img(
        img,
        target_affine=affine,
        target_shape=tuple(shape),
        interpolation="linear",
        force_resample=True,
        copy_header=True,
    )
    data = np.asarray(out.dataobj, dtype=np.float32)
    result = nib.Nifti1Image(data, affine)
    result.set_qform(affine, code=1)
    result.set_sform(affine, code=1)
    note = (
        f"voxels {' x '.join(f'{z:g}' for z in zooms)} mm (anisotropy {ratio:.1f} > "
        f"{max_ratio:g}): resampled to {size:g} mm isotropic"
    )
    return result, note

"""Conform an anatomical image: 3D, finite, float32, RAS orientation, consistent header."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from bids_app.errors import DataError

#: Largest disagreement (mm, in any voxel-to-world entry) tolerated between qform and sform.
QFORM_SFORM_TOLERANCE = 1e-3


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


def conform(img: nib.Nifti1Image, source: str = "image") -> tuple[nib.Nifti1Image, dict[str, Any]]:
    """Make an anatomical image safe for every later step.

    Squeezes a trailing singleton 4th dimension, refuses other non-3D images, refuses NaN/Inf
    and constant images, checks that qform and sform agree (sform wins, as in nibabel), reorients
    to RAS+ by axis permutation and flipping only (no resampling), and stores float32.

    Parameters
    ----------
    img : nibabel.Nifti1Image
        The input image.
    source : str
        Name of the input file, used in error messages.

    Returns
    -------
    conformed : nibabel.Nifti1Image
        RAS, float32 image with qform = sform.
    report : dict
        What was found and done: original orientation, shape, zooms and the changes.

    Raises
    ------
    DataError
        If the image is not 3D, has non-finite values, is constant, or its header is unusable.

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
    if data.min() == data.max():
        raise DataError(f"{source}: the image is constant ({data.min()}); it holds no anatomy")
    affine = _checked_affine(img, source, changes)
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


def _checked_affine(img: nib.Nifti1Image, source: str, changes: list[str]) -> np.ndarray:
    """Return the voxel-to-world affine, checking the header's qform and sform."""
    header = img.header
    sform, sform_code = header.get_sform(coded=True)
    qform, qform_code = header.get_qform(coded=True)
    if sform_code and qform_code and not np.allclose(sform, qform, atol=QFORM_SFORM_TOLERANCE):
        changes.append("qform and sform disagreed: used the sform")
    affine = img.affine
    if affine is None or not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-6:
        raise DataError(f"{source}: the header's voxel-to-world affine is missing or singular")
    if not sform_code and not qform_code:
        changes.append("header had no qform/sform code: assumed the affine is scanner space")
    return affine


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

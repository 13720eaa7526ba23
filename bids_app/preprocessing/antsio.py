"""Conversions between nibabel images (the house format) and ANTsPy images."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator

import ants
import nibabel as nib
import numpy as np


def to_ants(img: nib.Nifti1Image) -> ants.ANTsImage:
    """Convert a nibabel image to an ANTsPy image (float32, same physical space).

    Parameters
    ----------
    img : nibabel.Nifti1Image
        A 3D image.

    Returns
    -------
    ants.ANTsImage
        The same voxels and voxel-to-world mapping.
    """
    data = np.asarray(img.dataobj, dtype=np.float32)
    converted = nib.Nifti1Image(data, img.affine)
    converted.header.set_xyzt_units("mm", "sec")
    return ants.from_nibabel_nifti(converted)


def to_nibabel(img: ants.ANTsImage, dtype: type = np.float32) -> nib.Nifti1Image:
    """Convert an ANTsPy image to a nibabel image with qform = sform.

    Parameters
    ----------
    img : ants.ANTsImage
        A 3D image.
    dtype : numpy dtype
        Data type of the result.

    Returns
    -------
    nibabel.Nifti1Image
        The same voxels and voxel-to-world mapping.
    """
    converted = ants.to_nibabel_nifti(img)
    out = nib.Nifti1Image(np.asarray(converted.dataobj).astype(dtype), converted.affine)
    out.set_qform(converted.affine, code=1)
    out.set_sform(converted.affine, code=1)
    out.header.set_xyzt_units("mm", "sec")
    return out


@contextlib.contextmanager
def private_tempdir() -> Iterator[str]:
    """Give ANTsPy calls of the block a temporary folder that is removed afterwards.

    Some ANTsPy functions (``ants.atropos`` 0.6.3 among them) write their images to names from
    :func:`tempfile.mktemp` and never delete them: three posteriors and three priors per
    segmentation, gigabytes in ``/tmp`` over a large dataset. Inside the block
    :data:`tempfile.tempdir` points to a fresh folder; the previous value comes back after.

    Yields
    ------
    str
        The folder.
    """
    previous = tempfile.tempdir
    with tempfile.TemporaryDirectory(prefix="neurostrat-ants-") as folder:
        tempfile.tempdir = folder
        try:
            yield folder
        finally:
            tempfile.tempdir = previous

"""Small array helpers shared by the science modules."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def bounding_box(mask: np.ndarray, margin: int | tuple[int, ...]) -> tuple[slice, ...]:
    """Return the slices of the bounding box of a non-empty mask, grown by ``margin`` voxels.

    Parameters
    ----------
    mask : numpy.ndarray
        Boolean array with at least one True voxel.
    margin : int or tuple of int
        Voxels added on each side (one value, or one per axis); the box stays inside the array.

    Returns
    -------
    tuple of slice
        One slice per axis.

    Examples
    --------
    >>> mask = np.zeros((10, 10), bool)
    >>> mask[4, 5] = True
    >>> bounding_box(mask, 2)
    (slice(2, 7, None), slice(3, 8, None))
    """
    where = np.argwhere(mask)
    low = np.maximum(where.min(axis=0) - np.asarray(margin), 0)
    high = np.minimum(where.max(axis=0) + 1 + np.asarray(margin), mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(low, high, strict=True))


def largest_component(mask: np.ndarray, full_connectivity: bool = False) -> np.ndarray:
    """Return the largest connected component of the non-zero voxels of a mask.

    Parameters
    ----------
    mask : numpy.ndarray
        Boolean mask (or any array; its non-zero voxels are the foreground).
    full_connectivity : bool, default=False
        Neighbours by faces only (6-connected in 3D), or also by edges and corners
        (26-connected, as HD-BET's and brainchop's post-processing).

    Returns
    -------
    numpy.ndarray of bool
        The largest component; the foreground itself when it has fewer than two.

    Examples
    --------
    >>> mask = np.array([[[1, 0, 1, 1]]], bool)
    >>> largest_component(mask).astype(int)
    array([[[0, 0, 1, 1]]])
    >>> largest_component(np.eye(3, dtype=bool), full_connectivity=True).sum()
    np.int64(3)
    """
    structure = np.ones((3,) * mask.ndim, bool) if full_connectivity else None
    labels, count = ndimage.label(mask, structure=structure)
    if count < 2:
        return labels > 0
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == np.argmax(sizes)

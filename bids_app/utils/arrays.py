"""Small array helpers shared by the science modules."""

from __future__ import annotations

import numpy as np


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

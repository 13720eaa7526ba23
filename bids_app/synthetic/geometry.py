"""Small geometric helpers of the generator: smooth upsampling of lattices and rotations."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi


@functools.lru_cache(maxsize=64)
def _zoom_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Cubic-spline interpolation weights (n_out x n_in) mapping a coarse axis to a fine one."""
    return ndi.zoom(
        np.eye(n_in), (n_out / n_in, 1.0), order=3, mode="nearest", grid_mode=False
    ).astype(np.float32)


def upsample(coarse: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Smoothly interpolate a small 3-D lattice onto ``shape`` (separable cubic spline).

    Parameters
    ----------
    coarse : numpy.ndarray
        Values on a coarse lattice spanning the output grid, corner to corner.
    shape : sequence of int
        Shape of the output grid.

    Returns
    -------
    numpy.ndarray
        float32 array of ``shape``.
    """
    out = coarse.astype(np.float32)
    for axis, n_out in enumerate(shape):
        weights = _zoom_matrix(out.shape[axis], int(n_out))
        out = np.moveaxis(np.tensordot(weights, np.moveaxis(out, axis, 0), axes=1), 0, axis)
    return out


def rotation(angles_deg: np.ndarray) -> np.ndarray:
    """Return the rotation matrix of angles (degrees) about x, then y, then z.

    Parameters
    ----------
    angles_deg : numpy.ndarray
        Three angles in degrees.

    Returns
    -------
    numpy.ndarray
        Rotation matrix (3 x 3).

    Examples
    --------
    >>> rotation(np.array([0.0, 0.0, 90.0])).round(6) @ np.array([1.0, 0.0, 0.0])
    array([0., 1., 0.])
    """
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx

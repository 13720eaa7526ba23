"""White-matter lesions: smooth, periventricular-biased blobs that grow between sessions."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from bids_app.synthetic.anatomy import CEREBRAL_WM, WM_LESION, code_lut, load_anatomy
from bids_app.synthetic.geometry import rotation


@dataclass(frozen=True)
class Lesion:
    """A Gaussian ellipsoid in anatomy coordinates; voxels with summed value > 0.5 are lesion.

    Attributes
    ----------
    centre : numpy.ndarray
        World centre (mm).
    inv_sqrt_cov : numpy.ndarray
        Matrix (3 x 3) mapping an offset from the centre to standard units.
    reach_mm : float
        Half-width of the box outside which the blob is negligible.
    """

    centre: np.ndarray
    inv_sqrt_cov: np.ndarray
    reach_mm: float


@functools.lru_cache(maxsize=2)
def _lesion_prior(key: str) -> tuple[np.ndarray, np.ndarray]:
    """Candidate lesion centres (cerebral WM, 2 mm lattice) and periventricular weights."""
    anat = load_anatomy(key)
    sub = anat.labels[::2, ::2, ::2]
    wm = code_lut(CEREBRAL_WM)[sub]
    ventricles = code_lut((4, 43))[sub]
    dist = ndi.distance_transform_edt(~ventricles, sampling=2 * anat.spacing)
    idx = np.stack(np.nonzero(wm)).astype(np.float64) * 2
    world = anat.affine[:3, :3] @ idx + anat.affine[:3, 3:4]
    weights = np.exp(-dist[wm] / 8.0)  # periventricular bias, 8 mm length scale
    return world, weights / weights.sum()


def draw_lesions(key: str, n: int, rng: np.random.Generator) -> list[Lesion]:
    """Draw ``n`` smooth, periventricular-biased white-matter lesion blobs.

    Parameters
    ----------
    key : str
        Anatomy key (:func:`~bids_app.synthetic.anatomy.load_anatomy`).
    n : int
        Number of lesions.
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    list of Lesion
        The lesions, in anatomy coordinates.
    """
    if n == 0:
        return []
    world, weights = _lesion_prior(key)
    lesions = []
    for centre_idx in rng.choice(weights.size, size=n, p=weights):
        centre = world[:, centre_idx] + rng.uniform(-1.0, 1.0, 3)
        radii = np.exp(rng.normal(np.log(2.5), 0.35, 3))  # mm, Gaussian sd per axis
        rot = rotation(rng.uniform(-90, 90, 3))
        lesions.append(Lesion(centre, np.diag(1 / radii) @ rot.T, float(3 * radii.max())))
    return lesions


def apply_lesions(
    labels: np.ndarray, points: np.ndarray, lesions: Sequence[Lesion], growth: float
) -> None:
    """Set cerebral WM voxels inside the lesion blobs to code 77 (``WM_LESION``), in place.

    Parameters
    ----------
    labels : numpy.ndarray
        Flat label values sampled at ``points``.
    points : numpy.ndarray
        Anatomy positions (3, N) of the values.
    lesions : sequence of Lesion
        The subject's lesions.
    growth : float
        Linear growth factor of every lesion since the first session.
    """
    candidates = np.nonzero(code_lut(CEREBRAL_WM)[labels])[0]
    if not lesions or candidates.size == 0:
        return
    pts = points[:, candidates]
    total = np.zeros(candidates.size, dtype=np.float64)
    for lesion in lesions:
        near = np.all(np.abs(pts - lesion.centre[:, None]) < lesion.reach_mm * growth, axis=0)
        z = lesion.inv_sqrt_cov @ (pts[:, near] - lesion.centre[:, None]) / growth
        total[near] += np.exp(-0.5 * (z**2).sum(axis=0))
    labels[candidates[total > 0.5]] = WM_LESION

"""Data augmentation of 3D volumes for the networks of seeds 001 and 004 (torch only).

Two kinds:

- the offline expansion of Coll 2023 §2.3.2: a left-right ("axial") mirrored copy of every
  positive sample (EDSS >= 3) and of 75 % of the negatives is added to the training set once
  (:func:`flip_expansion`, applied by :class:`bids_app.deep.volumes.VolumeDataset`);
- random transforms drawn anew each time a sample is read (:class:`Augmentation`): Gaussian
  noise (σ = 0.02 in Coll 2023 §2.3.2, 0.2 in Lu 2023 §II.D), and in Lu 2023 §II.D random
  flips, random 90° rotations and random affine transforms (±30° rotation, ±10 % scaling).

Volumes are ``[C, D, H, W]`` tensors whose spatial axes 0, 1, 2 follow the image's voxel axes;
in RAS crops axis 0 runs left to right.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (torch's convention)

#: Coll 2023 §2.3.2: a mirrored copy of every EDSS >= 3 sample (label 1) and of 75 % of the others.
COLL2023_FLIP_RATES: Mapping[int, float] = {1: 1.0, 0: 0.75}

_PLANES = ((0, 1), (0, 2), (1, 2))


def mirror(x: torch.Tensor, axis: int = 0) -> torch.Tensor:
    """Mirror a ``[C, D, H, W]`` volume along one spatial axis.

    Parameters
    ----------
    x : torch.Tensor
        Volume of shape ``(C, D, H, W)``.
    axis : int, default=0
        Spatial axis (0, 1 or 2); 0 is left-right in RAS crops.

    Returns
    -------
    torch.Tensor
        The mirrored volume (a new tensor).
    """
    return x.flip(axis + 1)


def flip_expansion(
    labels: Sequence[int] | np.ndarray,
    rates: Mapping[int, float] = COLL2023_FLIP_RATES,
    rng: np.random.Generator | int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Items of a training set expanded with mirrored copies, as in Coll 2023 §2.3.2.

    Every sample is kept once unmirrored; for each class ``c`` a mirrored copy of
    ``round(rates[c] * n_c)`` of its samples, drawn without replacement, is appended. Classes
    missing from ``rates`` get no copies.

    Parameters
    ----------
    labels : array-like of int, shape (N,)
        Class of each sample.
    rates : mapping of int to float, default=COLL2023_FLIP_RATES
        Fraction of each class that gets a mirrored copy, in [0, 1].
    rng : numpy.random.Generator or int, optional
        Source of the choice of mirrored samples.

    Returns
    -------
    indices : numpy.ndarray of int
        Sample of each item: ``arange(N)`` followed by the mirrored samples.
    flips : numpy.ndarray of bool
        Whether each item is mirrored.

    Examples
    --------
    >>> indices, flips = flip_expansion([1, 0, 0, 0, 0, 1], rng=0)
    >>> len(indices), int(flips.sum())  # 6 originals + 2 positives + 3 of 4 negatives
    (11, 5)
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(rng)
    copies = []
    for label, rate in sorted(rates.items()):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"flip rate of class {label} must lie in [0, 1], got {rate}")
        members = np.flatnonzero(labels == label)
        copies.append(rng.choice(members, size=round(rate * len(members)), replace=False))
    mirrored = np.sort(np.concatenate([np.empty(0, dtype=np.int64), *copies]))
    indices = np.concatenate([np.arange(len(labels)), mirrored]).astype(np.int64)
    flips = np.arange(len(indices)) >= len(labels)
    return indices, flips


def add_noise(x: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """Add zero-mean Gaussian noise of standard deviation ``sigma`` to every voxel and channel.

    Parameters
    ----------
    x : torch.Tensor
        Volume of shape ``(C, D, H, W)``.
    sigma : float
        Standard deviation of the noise.
    generator : torch.Generator
        Source of the noise (on ``x``'s device).

    Returns
    -------
    torch.Tensor
        The noisy volume.
    """
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return x + sigma * noise


def random_rot90(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Rotate a volume by a random multiple of 90° in a random plane, keeping its shape.

    The plane is one of the three spatial planes; a quarter turn is drawn only where the plane
    is square, otherwise the turn is a half turn (which keeps any shape).

    Parameters
    ----------
    x : torch.Tensor
        Volume of shape ``(C, D, H, W)``.
    generator : torch.Generator
        Source of the plane and the angle.

    Returns
    -------
    torch.Tensor
        The rotated volume.
    """
    first, second = _PLANES[int(torch.randint(3, (), generator=generator))]
    square = x.shape[first + 1] == x.shape[second + 1]
    turns = int(torch.randint(1, 4, (), generator=generator)) if square else 2
    return torch.rot90(x, turns, dims=(first + 1, second + 1))


def affine_matrix(angles: Sequence[float], scales: Sequence[float]) -> torch.Tensor:
    """3x3 matrix of rotations about the three spatial axes after per-axis scaling.

    Parameters
    ----------
    angles : sequence of 3 float
        Rotation angles in radians about spatial axes 0, 1 and 2.
    scales : sequence of 3 float
        Scale factors along spatial axes 0, 1 and 2.

    Returns
    -------
    torch.Tensor
        ``R0 @ R1 @ R2 @ diag(scales)`` in float64, acting on voxel offsets ordered as the axes.
    """
    matrix = torch.diag(torch.as_tensor(scales, dtype=torch.float64))
    for axis in (2, 1, 0):
        first, second = (a for a in range(3) if a != axis)
        rotation = torch.eye(3, dtype=torch.float64)
        cos, sin = math.cos(angles[axis]), math.sin(angles[axis])
        rotation[first, first], rotation[first, second] = cos, -sin
        rotation[second, first], rotation[second, second] = sin, cos
        matrix = rotation @ matrix
    return matrix


def apply_affine(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Resample a volume through a linear map about its centre (trilinear, zeros outside).

    Parameters
    ----------
    x : torch.Tensor
        Volume of shape ``(C, D, H, W)``.
    matrix : torch.Tensor
        3x3 map from output voxel offsets to input voxel offsets (both from the volume's
        centre, in voxels, ordered as the spatial axes); rotations stay rigid on non-cubic
        volumes.

    Returns
    -------
    torch.Tensor
        The resampled volume, same shape and type as ``x``.
    """
    sizes = torch.tensor(x.shape[1:], dtype=torch.float64)
    # affine_grid works in coordinates normalised to [-1, 1] per axis, ordered (W, H, D).
    normalised = (2 / sizes)[:, None] * matrix.to(torch.float64) * (sizes / 2)[None, :]
    theta = torch.cat([normalised.flip(0).flip(1), torch.zeros(3, 1, dtype=torch.float64)], 1)
    theta = theta[None].to(dtype=x.dtype, device=x.device)
    grid = F.affine_grid(theta, [1, *x.shape], align_corners=False)
    resampled = F.grid_sample(
        x[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    return resampled[0]


def random_affine(
    x: torch.Tensor, max_degrees: float, max_scaling: float, generator: torch.Generator
) -> torch.Tensor:
    """Rotate and scale a volume by a random affine transform (Lu 2023 §II.D).

    Parameters
    ----------
    x : torch.Tensor
        Volume of shape ``(C, D, H, W)``.
    max_degrees : float
        Rotation about each spatial axis is uniform in ``[-max_degrees, max_degrees]``.
    max_scaling : float
        Scale along each spatial axis is uniform in ``[1 - max_scaling, 1 + max_scaling]``.
    generator : torch.Generator
        Source of the angles and scales.

    Returns
    -------
    torch.Tensor
        The transformed volume, same shape as ``x``.
    """
    uniform = 2 * torch.rand(6, generator=generator, dtype=torch.float64) - 1
    angles = (uniform[:3] * math.radians(max_degrees)).tolist()
    scales = (1 + uniform[3:] * max_scaling).tolist()
    return apply_affine(x, affine_matrix(angles, scales))


def _happens(probability: float, generator: torch.Generator) -> bool:
    """Draw an event of ``probability`` (no draw where it is 0 or 1)."""
    if probability <= 0:
        return False
    return probability >= 1 or bool(torch.rand((), generator=generator) < probability)


@dataclass(frozen=True)
class Augmentation:
    """Random transforms applied to each ``[C, D, H, W]`` sample when it is read.

    Applied in this order, each with its own probability: mirroring along each of
    ``flip_axes``, a 90° rotation (:func:`random_rot90`), an affine transform
    (:func:`random_affine`) and Gaussian noise (:func:`add_noise`).

    Parameters
    ----------
    noise_sigma : float, default=0.0
        Standard deviation of the Gaussian noise (0: none).
    noise_probability : float, default=1.0
        Probability of adding noise.
    flip_probability : float, default=0.0
        Probability of mirroring along each axis of ``flip_axes``.
    flip_axes : tuple of int, default=(0,)
        Spatial axes that may be mirrored; 0 is left-right in RAS crops.
    rot90_probability : float, default=0.0
        Probability of a 90° rotation in a random plane.
    affine_probability : float, default=0.0
        Probability of a random affine transform.
    max_rotation_degrees : float, default=0.0
        Largest rotation about each axis in the affine transform.
    max_scaling : float, default=0.0
        Largest relative scaling along each axis in the affine transform.
    """

    noise_sigma: float = 0.0
    noise_probability: float = 1.0
    flip_probability: float = 0.0
    flip_axes: tuple[int, ...] = (0,)
    rot90_probability: float = 0.0
    affine_probability: float = 0.0
    max_rotation_degrees: float = 0.0
    max_scaling: float = 0.0

    def __post_init__(self) -> None:
        for name in ("noise", "flip", "rot90", "affine"):
            probability = getattr(self, f"{name}_probability")
            if not 0.0 <= probability <= 1.0:
                raise ValueError(f"{name}_probability must lie in [0, 1], got {probability}")
        if self.noise_sigma < 0 or self.max_rotation_degrees < 0:
            raise ValueError("noise_sigma and max_rotation_degrees must be non-negative")
        if not 0.0 <= self.max_scaling < 1.0:
            raise ValueError(f"max_scaling must lie in [0, 1), got {self.max_scaling}")
        if not set(self.flip_axes) <= {0, 1, 2}:
            raise ValueError(f"flip_axes must be spatial axes 0, 1, 2, got {self.flip_axes}")

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Transform one volume.

        Parameters
        ----------
        x : torch.Tensor
            Volume of shape ``(C, D, H, W)``.
        generator : torch.Generator
            Source of every random choice; the same state gives the same output.

        Returns
        -------
        torch.Tensor
            The transformed volume, same shape as ``x``.
        """
        for axis in self.flip_axes:
            if _happens(self.flip_probability, generator):
                x = mirror(x, axis)
        if _happens(self.rot90_probability, generator):
            x = random_rot90(x, generator)
        if _happens(self.affine_probability, generator):
            x = random_affine(x, self.max_rotation_degrees, self.max_scaling, generator)
        if self.noise_sigma > 0 and _happens(self.noise_probability, generator):
            x = add_noise(x, self.noise_sigma, generator)
        return x


#: Augmentation presets. Lu 2023 §II.D names its transforms but not how often each is drawn;
#: each is applied with probability 0.5 here, and flips are left-right only (anatomically
#: plausible mirror images).
PRESETS: Mapping[str, Augmentation] = {
    "none": Augmentation(),
    # Coll 2023 §2.3.2: Gaussian noise of σ = 0.02 on both channels (the flips are offline).
    "coll2023": Augmentation(noise_sigma=0.02),
    # Lu 2023 §II.D: flips, 90° rotations, noise of σ = 0.2, affine ±30° and ±10 % scaling.
    "lu2023": Augmentation(
        noise_sigma=0.2,
        noise_probability=0.5,
        flip_probability=0.5,
        rot90_probability=0.5,
        affine_probability=0.5,
        max_rotation_degrees=30.0,
        max_scaling=0.1,
    ),
}

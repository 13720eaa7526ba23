"""Whole-brain crops in memory for the 3D networks: loading, checks and a torch ``Dataset``.

The networks of Coll 2023 (§2.3, two contrasts of 144x184x152 voxels) and Lu 2023 (§II.A, three
qMR maps of 96x96x112 voxels) see whole crops, so a cohort of a few hundred subjects is held in
memory as one ``[N, C, D, H, W]`` array. It is stored as float16 by default, half the memory of
float32: crops are min-max normalised to [0, 1] (Coll 2023 §2.2, Lu 2023 §II.A) or z-scored, far
inside float16's range (±65504) and resolved to about three significant digits. Samples are cast
to float32 one at a time when the network asks for them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from torch.utils.data import Dataset

from bids_app.deep.augment import mirror
from bids_app.errors import DataError

LOGGER = logging.getLogger(__name__)

#: Largest finite float16 value; larger magnitudes would become infinite.
FLOAT16_MAX = float(np.finfo(np.float16).max)

Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


class DeepInputError(DataError, ValueError):
    """A crop cannot be used by the networks (missing, unreadable, off-grid or not finite)."""


def memory_estimate(
    n_samples: int, shape: Sequence[int], dtype: np.dtype | type = np.float16
) -> int:
    """Bytes needed to hold ``n_samples`` volumes of ``shape`` in memory.

    Parameters
    ----------
    n_samples : int
        Number of samples.
    shape : sequence of int
        Shape of one sample, ``(C, D, H, W)``.
    dtype : numpy dtype, default=np.float16
        Storage type.

    Returns
    -------
    int
        Size in bytes.

    Examples
    --------
    >>> round(memory_estimate(385, (2, 144, 184, 152)) / 2**30, 2)  # Coll 2023's cohort, GiB
    5.78
    """
    return int(n_samples) * int(np.prod(shape)) * np.dtype(dtype).itemsize


def _read_crop(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one 3D crop as float32 with its affine, refusing missing, unreadable or 4D files."""
    if not path.is_file():
        raise DeepInputError(
            f"{path}: crop not found; run the participant level for this subject first or "
            "remove the subject from the analysis."
        )
    try:
        image = nib.load(path)
        data = image.get_fdata(dtype=np.float32)
    except Exception as error:  # nibabel raises many types for corrupt files
        raise DeepInputError(
            f"{path}: unreadable NIfTI ({error}); delete it and re-run the participant level."
        ) from error
    if data.ndim > 3 and all(size == 1 for size in data.shape[3:]):
        data = data.reshape(data.shape[:3])
    if data.ndim != 3:
        raise DeepInputError(
            f"{path}: crop has shape {data.shape}, a 3D image is needed; give one file per "
            "contrast."
        )
    return data, image.affine


def load_volumes(
    paths: Sequence[Sequence[Path]], dtype: np.dtype | type = np.float16
) -> np.ndarray:
    """Load crops on a common grid into one ``[N, C, D, H, W]`` array.

    Parameters
    ----------
    paths : sequence of sequence of Path
        One inner sequence per sample, one NIfTI path per contrast, contrasts in the same order
        for every sample.
    dtype : numpy dtype, default=np.float16
        Storage type. float16 halves the memory of float32; magnitudes above 65504 cannot be
        stored and are clipped with a warning (pass ``np.float32`` to keep them).

    Returns
    -------
    numpy.ndarray
        Array of shape ``(N, C, D, H, W)`` and type ``dtype``.

    Raises
    ------
    DeepInputError
        A file is missing or unreadable, a crop's shape or grid differs from the first sample's,
        a sample has a different number of contrasts, or a crop contains NaN or infinite values.
    """
    paths = [[Path(path) for path in sample] for sample in paths]
    if not paths or not paths[0]:
        raise DeepInputError("no crops given; at least one sample with one contrast is needed.")
    n_contrasts = len(paths[0])
    first, reference_affine = _read_crop(paths[0][0])
    shape = (len(paths), n_contrasts, *first.shape)
    LOGGER.info(
        "Loading %d samples of shape %s as %s (%.2f GiB).",
        len(paths),
        shape[1:],
        np.dtype(dtype).name,
        memory_estimate(len(paths), shape[1:], dtype) / 2**30,
    )
    volumes = np.empty(shape, dtype=dtype)
    for i, sample in enumerate(paths):
        if len(sample) != n_contrasts:
            raise DeepInputError(
                f"{sample[0] if sample else f'sample {i}'}: {len(sample)} contrasts where the "
                f"first sample has {n_contrasts}; give the same contrasts for every subject."
            )
        for c, path in enumerate(sample):
            data, affine = (first, reference_affine) if i == c == 0 else _read_crop(path)
            volumes[i, c] = _checked(data, affine, path, first.shape, reference_affine, dtype)
    return volumes


def resample_volumes(volumes: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Resample crops to another grid size by trilinear interpolation (corners not aligned).

    Used when a pretrained network was trained on crops of another size (Turrisi 2024 §2.2.2
    took its feature extractor from another study): the crop's field of view is kept, its
    voxels are resized.

    Parameters
    ----------
    volumes : numpy.ndarray of shape (N, C, D, H, W)
        The crops.
    shape : sequence of int
        The target ``(D, H, W)``.

    Returns
    -------
    numpy.ndarray of shape (N, C, *shape)
        The resampled crops, float32.

    Examples
    --------
    >>> resample_volumes(np.ones((2, 1, 4, 4, 4)), (8, 6, 4)).shape
    (2, 1, 8, 6, 4)
    """
    tensor = torch.as_tensor(np.ascontiguousarray(volumes), dtype=torch.float32)
    size = tuple(int(n) for n in shape)
    resized = torch.nn.functional.interpolate(
        tensor, size=size, mode="trilinear", align_corners=False
    )
    return resized.numpy()


def _checked(
    data: np.ndarray,
    affine: np.ndarray,
    path: Path,
    shape: tuple[int, ...],
    reference_affine: np.ndarray,
    dtype: np.dtype | type,
) -> np.ndarray:
    """Check one crop against the first one and for finite values; clip it to ``dtype``'s range."""
    if data.shape != shape:
        raise DeepInputError(
            f"{path}: crop shape {data.shape} differs from the first sample's {shape}; crop "
            "every subject to the same template box (re-run the participant level)."
        )
    if not np.allclose(affine, reference_affine, atol=1e-3):
        raise DeepInputError(
            f"{path}: crop grid (affine) differs from the first sample's; crops must lie on a "
            "common template grid (re-run the participant level)."
        )
    if not np.isfinite(data).all():
        raise DeepInputError(
            f"refused: {path} contains NaN or infinite values; re-run its preprocessing or "
            "exclude the subject."
        )
    if np.dtype(dtype) == np.float16 and np.abs(data).max() > FLOAT16_MAX:
        LOGGER.warning(
            "%s: values up to %.4g exceed the float16 range and are clipped to ±%g; normalise "
            "the crops (min-max or z-score) or load them as float32.",
            path,
            np.abs(data).max(),
            FLOAT16_MAX,
        )
        data = np.clip(data, -FLOAT16_MAX, FLOAT16_MAX)
    return data


class VolumeDataset(Dataset):
    """Samples of an in-memory ``[N, C, D, H, W]`` array, optionally mirrored and augmented.

    Items are rows of ``volumes`` selected by ``indices`` (default: every row once), so folds
    and the offline flip expansion of Coll 2023 §2.3.2 (see
    :func:`bids_app.deep.augment.flip_expansion`) share one array without copying it.

    Parameters
    ----------
    volumes : numpy.ndarray
        Array of shape ``(N, C, D, H, W)``, kept by reference.
    labels : array-like of int, shape (N,)
        Class of each row (0 or 1).
    ages : array-like of float, shape (N,), optional
        Age in years of each row, for networks that use age (Lu 2023 §II.C).
    weights : array-like of float, shape (N,), optional
        Loss weight of each row (e.g. :func:`bids_app.deep.training.edss_closeness_weights`).
    indices : array-like of int, shape (M,), optional
        Rows of ``volumes`` that make the items, repetitions allowed.
    flips : array-like of bool, shape (M,), optional
        Items whose volume is mirrored along ``flip_axis``.
    transform : callable, optional
        ``transform(x, generator)`` applied to each ``[C, D, H, W]`` float32 item, such as an
        :class:`bids_app.deep.augment.Augmentation`.
    flip_axis : int, default=0
        Spatial axis mirrored for ``flips``: 0 is left-right in RAS crops.
    seed : int, default=0
        Seed of the random stream of ``transform``; each item draws from its own generator
        seeded by ``(seed, epoch, item)``, so augmentation does not depend on the order in
        which items are read or on the number of loader workers.
    """

    def __init__(
        self,
        volumes: np.ndarray,
        labels: Sequence[int] | np.ndarray,
        *,
        ages: Sequence[float] | np.ndarray | None = None,
        weights: Sequence[float] | np.ndarray | None = None,
        indices: Sequence[int] | np.ndarray | None = None,
        flips: Sequence[bool] | np.ndarray | None = None,
        transform: Transform | None = None,
        flip_axis: int = 0,
        seed: int = 0,
    ) -> None:
        if volumes.ndim != 5:
            raise ValueError(f"volumes must be [N, C, D, H, W], got shape {volumes.shape}")
        n_rows = len(volumes)
        self.volumes = volumes
        self.labels = _per_row(labels, n_rows, "labels", np.int64)
        self.ages = None if ages is None else _per_row(ages, n_rows, "ages", np.float32)
        self.weights = None if weights is None else _per_row(weights, n_rows, "weights", np.float32)
        self.indices = np.arange(n_rows) if indices is None else np.asarray(indices, dtype=np.int64)
        if self.indices.size and not 0 <= self.indices.min() <= self.indices.max() < n_rows:
            raise ValueError(f"indices must lie in [0, {n_rows})")
        self.flips = (
            np.zeros(len(self.indices), dtype=bool)
            if flips is None
            else _per_row(flips, len(self.indices), "flips", bool)
        )
        if not 0 <= flip_axis < 3:
            raise ValueError(f"flip_axis must be a spatial axis 0, 1 or 2, got {flip_axis}")
        self.transform = transform
        self.flip_axis = flip_axis
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def item_labels(self) -> np.ndarray:
        """Labels of the items (after ``indices``), shape ``(len(self),)``."""
        return self.labels[self.indices]

    @property
    def item_weights(self) -> np.ndarray | None:
        """Loss weights of the items, or None where no weights were given."""
        return None if self.weights is None else self.weights[self.indices]

    def set_epoch(self, epoch: int, seed: int | None = None) -> None:
        """Select the augmentation stream of an epoch (and optionally a new base seed).

        Parameters
        ----------
        epoch : int
            Epoch number.
        seed : int, optional
            New base seed.
        """
        self.epoch = epoch
        if seed is not None:
            self.seed = seed

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        row = int(self.indices[item])
        x = torch.from_numpy(np.asarray(self.volumes[row], dtype=np.float32))
        if self.flips[item]:
            x = mirror(x, self.flip_axis)
        if self.transform is not None:
            state = np.random.SeedSequence([self.seed, self.epoch, item]).generate_state(1)
            x = self.transform(x, torch.Generator().manual_seed(int(state[0])))
        return {
            "x": x,
            "y": torch.tensor(self.labels[row]),
            "age": torch.tensor(np.nan if self.ages is None else self.ages[row]),
            "weight": torch.tensor(1.0 if self.weights is None else self.weights[row]),
        }


def _per_row(values: Sequence | np.ndarray, n_rows: int, name: str, dtype: type) -> np.ndarray:
    """``values`` as a 1D array of ``n_rows`` entries of ``dtype``."""
    array = np.asarray(values, dtype=dtype)
    if array.shape != (n_rows,):
        raise ValueError(f"{name} must have shape ({n_rows},), got {array.shape}")
    return array

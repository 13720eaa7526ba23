"""Group-level statistics of attention (relevance) maps on a common template grid.

Two papers analysed the relevance maps of their networks after training:

* Coll et al. (Coll 2023, §2.6) computed one layer-wise relevance propagation (LRP) map per
  patient (positive relevance only) and

  - grouped the patients by prediction result, true/false positives and negatives
    (:func:`prediction_groups`), averaged the maps within each group
    (:func:`class_average_maps`) and ranked the atlas regions by their mean relevance in each
    class-average map (:func:`region_relevance`, §2.6.2);
  - kept, in each patient's own map, the voxels above the 95th percentile of positive relevance
    (:func:`binarise_percentile`) and counted them per atlas region
    (:func:`individual_region_counts`, §2.6.1);
  - fitted, for every voxel and within each prediction group, an ordinary least-squares model of
    the relevance across patients on the voxel's lesion indicator and the Jacobian determinant of
    the registration to MNI, and mapped its R², the partial R² of each regressor and the
    standardised betas (:func:`voxelwise_regression`, §2.6.3 and Fig. 5);

* Lu et al. (Lu 2023, §II.G) binarised each relevance map from high to low quantiles of
  positive relevance within the brain (:func:`quantile_masks`), inverted the normalised qMR
  values inside each mask (:func:`invert_voxels`) and watched the classifier's AUC fall
  (:func:`inversion_test`); the mean qMR value inside the most informative mask was then
  correlated with the EDSS, Spearman's ρ with a two-sided permutation test of 20,000
  permutations (:func:`spearman_permutation`).

Everything here is a pure function of NumPy arrays (maps as ``[N, X, Y, Z]`` or flattened
``[N, V]``); the classifier enters :func:`inversion_test` only as a callable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import roc_auc_score

#: The prediction groups of Coll 2023 §2.6.2, in the order used for the keys of
#: :func:`class_average_maps`.
PREDICTION_GROUPS = ("TP", "FP", "TN", "FN")

#: Default quantiles of :func:`quantile_masks`, from high to low: Lu 2023 §II.G binarised the
#: maps "from high to low quantiles" and reported the top 40th quantile (the 0.6 quantile) as the
#: most informative mask (§III.B, Fig. 4).
DEFAULT_QUANTILES = (0.99, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)

#: Smallest eigenvalue of the regressors' correlation matrix below which a voxel's regressors
#: count as collinear in :func:`voxelwise_regression` (the matrix has unit diagonal).
_COLLINEARITY_TOLERANCE = 1e-10

#: Slack on ``|rho_perm| >= |rho|`` in :func:`spearman_permutation`, so that permutations giving
#: the observed |ρ| up to rounding (ties, the identity permutation) are counted.
_TIE_TOLERANCE = 1e-12


@dataclass(frozen=True)
class VoxelwiseResult:
    """Maps of a voxel-wise regression (see :func:`voxelwise_regression`).

    Every array has the spatial shape of the input (``[V]`` for flattened maps) and is NaN where
    the statistic is undefined or the voxel lies outside the mask.

    Attributes
    ----------
    r2 : numpy.ndarray
        Coefficient of determination of the full model.
    partial_r2 : dict of str to numpy.ndarray
        Coefficient of partial determination of each regressor.
    std_beta : dict of str to numpy.ndarray
        Standardised coefficient of each regressor, ``beta * sd(x) / sd(y)``.
    beta : dict of str to numpy.ndarray
        Raw least-squares coefficient of each regressor.
    n : numpy.ndarray
        Subjects with finite relevance and regressors at the voxel (0 outside the mask).
    """

    r2: np.ndarray
    partial_r2: dict[str, np.ndarray]
    std_beta: dict[str, np.ndarray]
    beta: dict[str, np.ndarray]
    n: np.ndarray


def prediction_groups(y_true: Sequence | np.ndarray, y_pred: Sequence | np.ndarray) -> np.ndarray:
    """Label each subject as a true/false positive/negative (Coll 2023 §2.6.2).

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_subjects,)
        Observed and predicted binary classes, as booleans or 0/1 (1 is the positive class).

    Returns
    -------
    numpy.ndarray
        One of ``"TP"``, ``"FP"``, ``"TN"``, ``"FN"`` per subject.

    Raises
    ------
    ValueError
        If the arrays differ in length or hold values other than 0/1.

    Examples
    --------
    >>> prediction_groups([1, 1, 0, 0], [1, 0, 0, 1]).tolist()
    ['TP', 'FN', 'TN', 'FP']
    """
    truth, predicted = _binary(y_true), _binary(y_pred)
    if truth.shape != predicted.shape:
        raise ValueError(f"y_true has {truth.shape} values, y_pred {predicted.shape}")
    correct = np.where(truth == predicted, "T", "F")
    sign = np.where(predicted, "P", "N")
    return np.char.add(correct, sign)


def class_average_maps(maps: np.ndarray, groups: Sequence | np.ndarray) -> dict[str, np.ndarray]:
    """Average the subjects' maps within each group (Coll 2023 §2.6.2).

    Parameters
    ----------
    maps : numpy.ndarray of shape (n_subjects, ...)
        One map per subject on a common grid.
    groups : array-like of shape (n_subjects,)
        Each subject's group, e.g. from :func:`prediction_groups`.

    Returns
    -------
    dict of str to numpy.ndarray
        The voxel-wise mean map of each group that has subjects, in the order of
        ``PREDICTION_GROUPS`` followed by any other labels sorted.

    Examples
    --------
    >>> maps = np.array([[1.0, 0.0], [3.0, 2.0], [5.0, 5.0]])
    >>> {k: v.tolist() for k, v in class_average_maps(maps, ["TP", "TP", "FN"]).items()}
    {'TP': [2.0, 1.0], 'FN': [5.0, 5.0]}
    """
    maps = np.asarray(maps)
    labels = np.asarray(groups).astype(str)
    if labels.shape != maps.shape[:1]:
        raise ValueError(f"{labels.size} groups for {maps.shape[0]} maps")
    known = {group: index for index, group in enumerate(PREDICTION_GROUPS)}
    order = sorted(np.unique(labels), key=lambda group: (known.get(group, len(known)), group))
    return {str(group): maps[labels == group].mean(axis=0) for group in order}


def binarise_percentile(
    relevance: np.ndarray, q: float = 95, mask: np.ndarray | None = None
) -> np.ndarray:
    """Keep the voxels at or above the q-th percentile of positive relevance (Coll 2023 §2.6.1).

    Parameters
    ----------
    relevance : numpy.ndarray
        One relevance map.
    q : float, optional
        Percentile (0-100) of the positive relevance values; Coll 2023 §2.6.1 thresholded at the
        95th, keeping the top 5% of the positive voxels.
    mask : numpy.ndarray of bool, optional
        Voxels to consider (e.g. the brain); all by default.

    Returns
    -------
    numpy.ndarray of bool
        Shape of ``relevance``; all False when no voxel has positive relevance. Ties at the
        threshold are kept.

    Examples
    --------
    >>> int(binarise_percentile(np.arange(-50.0, 201.0), q=95).sum())
    10
    """
    return quantile_masks(relevance, (q / 100,), mask)[0]


def quantile_masks(
    relevance: np.ndarray,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    brain_mask: np.ndarray | None = None,
) -> np.ndarray:
    """Binarise a relevance map at quantiles of its positive relevance (Lu 2023 §II.G).

    The mask at quantile ``q`` holds the voxels inside the brain whose relevance is positive and
    at or above the ``q`` quantile of the positive relevance inside the brain, about the top
    ``1 - q`` of them; masks of lower quantiles contain those of higher ones.

    Parameters
    ----------
    relevance : numpy.ndarray
        One relevance map (any shape).
    quantiles : sequence of float, optional
        Quantiles in [0, 1]; Lu 2023 went from high to low.
    brain_mask : numpy.ndarray of bool, optional
        The brain, broadcastable to ``relevance``; all voxels by default.

    Returns
    -------
    numpy.ndarray of bool of shape (len(quantiles), *relevance.shape)
        One mask per quantile; all False when no brain voxel has positive relevance.

    Examples
    --------
    >>> masks = quantile_masks(np.arange(1.0, 11.0), (0.9, 0.5))
    >>> masks.sum(axis=1).tolist()
    [1, 5]
    """
    relevance = np.asarray(relevance)
    levels = np.asarray(quantiles, dtype=float)
    if levels.ndim != 1 or np.any((levels < 0) | (levels > 1)):
        raise ValueError(f"quantiles must be a sequence of values in [0, 1], not {quantiles}")
    positive = relevance > 0
    if brain_mask is not None:
        positive &= np.broadcast_to(np.asarray(brain_mask, dtype=bool), relevance.shape)
    if not positive.any():
        return np.zeros((len(levels), *relevance.shape), dtype=bool)
    thresholds = np.quantile(relevance[positive], levels)
    return positive & (relevance >= thresholds.reshape(-1, *[1] * relevance.ndim))


def region_relevance(
    relevance: np.ndarray, labels: np.ndarray, names: Mapping[int, str]
) -> pd.DataFrame:
    """Rank the atlas regions by their mean relevance (Coll 2023 §2.6.2).

    Parameters
    ----------
    relevance : numpy.ndarray
        A relevance map, e.g. a class-average map from :func:`class_average_maps`.
    labels : numpy.ndarray of int
        Atlas parcellation on the same grid (non-negative integers).
    names : mapping of int to str
        The regions to report, label to name; other labels (e.g. 0, the background) are
        ignored.

    Returns
    -------
    pandas.DataFrame
        One row per region of ``names``, columns ``rank`` (1 = most relevant), ``label``,
        ``region``, ``n_voxels`` (voxels with a finite relevance) and ``mean_relevance``,
        sorted by decreasing mean relevance; regions without voxels have a NaN mean and come
        last.

    Examples
    --------
    >>> atlas = np.array([0, 1, 1, 2, 2, 2])
    >>> region_relevance(np.array([9.0, 1.0, 2.0, 3.0, 4.0, 5.0]), atlas, {1: "a", 2: "b"})
       rank  label region  n_voxels  mean_relevance
    0     1      2      b         3             4.0
    1     2      1      a         2             1.5
    """
    relevance = np.asarray(relevance, dtype=float)
    flat_labels, region_labels = _atlas(labels, relevance.shape, names)
    finite = np.isfinite(relevance).ravel()
    size = max(flat_labels.max(initial=0), region_labels.max(initial=0)) + 1
    counts = np.bincount(flat_labels[finite], minlength=size)[region_labels]
    sums = np.bincount(flat_labels[finite], relevance.ravel()[finite], minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums[region_labels] / counts
    table = pd.DataFrame(
        {
            "label": region_labels,
            "region": [names[label] for label in region_labels],
            "n_voxels": counts,
            "mean_relevance": means,
        }
    )
    table = table.sort_values("mean_relevance", ascending=False, na_position="last", kind="stable")
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table.reset_index(drop=True)


def individual_region_counts(
    maps: np.ndarray,
    labels: np.ndarray,
    names: Mapping[int, str],
    q: float = 95,
    mask: np.ndarray | None = None,
    subjects: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Count each subject's most relevant voxels per atlas region (Coll 2023 §2.6.1).

    Each subject's map is binarised at its own q-th percentile of positive relevance
    (:func:`binarise_percentile`) and the kept voxels are counted per region of the atlas.

    Parameters
    ----------
    maps : numpy.ndarray of shape (n_subjects, ...)
        One relevance map per subject on the atlas grid.
    labels : numpy.ndarray of int
        Atlas parcellation (non-negative integers), shape ``maps.shape[1:]``.
    names : mapping of int to str
        The regions to report, label to name.
    q : float, optional
        Percentile of positive relevance; 95 as in Coll 2023 §2.6.1.
    mask : numpy.ndarray of bool, optional
        Voxels over which the percentile is taken (e.g. the brain); all by default.
    subjects : sequence of str, optional
        Subject identifiers; ``0..n-1`` by default.

    Returns
    -------
    pandas.DataFrame
        Long format, one row per subject and region (subjects in input order, regions in
        label order), columns ``subject``, ``label``, ``region``, ``n_relevant`` (kept
        voxels in the region), ``fraction_relevant`` (``n_relevant`` over all the subject's
        kept voxels, including those outside the named regions; NaN if it has none) and
        ``fraction_of_region`` (``n_relevant`` over the region's voxels).
    """
    maps = np.asarray(maps)
    flat_labels, region_labels = _atlas(labels, maps.shape[1:], names)
    ids = list(range(len(maps))) if subjects is None else list(subjects)
    if len(ids) != len(maps):
        raise ValueError(f"{len(ids)} subject identifiers for {len(maps)} maps")
    size = max(flat_labels.max(initial=0), region_labels.max(initial=0)) + 1
    counts = np.empty((len(maps), len(region_labels)), dtype=np.int64)
    totals = np.empty(len(maps), dtype=np.int64)
    for index, subject_map in enumerate(maps):
        kept = binarise_percentile(subject_map, q, mask).ravel()
        counts[index] = np.bincount(flat_labels[kept], minlength=size)[region_labels]
        totals[index] = kept.sum()
    region_sizes = np.bincount(flat_labels, minlength=size)[region_labels]
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = counts / totals[:, None]
        of_region = counts / region_sizes
    return pd.DataFrame(
        {
            "subject": np.repeat(np.asarray(ids, dtype=object), len(region_labels)),
            "label": np.tile(region_labels, len(maps)),
            "region": np.tile([names[label] for label in region_labels], len(maps)),
            "n_relevant": counts.ravel(),
            "fraction_relevant": fraction.ravel(),
            "fraction_of_region": np.broadcast_to(of_region, counts.shape).ravel(),
        }
    )


def voxelwise_regression(
    y: np.ndarray,
    regressors: Mapping[str, np.ndarray],
    mask: np.ndarray | None = None,
    chunk_size: int = 8192,
) -> VoxelwiseResult:
    """Fit an OLS model of the relevance across subjects at every voxel (Coll 2023 §2.6.3).

    At voxel ``v`` the model is ``y[:, v] ~ 1 + x_1[:, v] + ... + x_p[:, v]`` over the subjects
    with finite values there; Coll 2023 used the lesion indicator and the Jacobian determinant
    of the registration to MNI as regressors and fitted one model per prediction group (pass the
    group's subjects). The models are solved together in chunks of voxels from the centred
    cross-products: with the regressors' correlation matrix ``R`` and ``g_j = S_xjy / sd_j``
    (``S`` the centred sums of squares and products), ``a = R^-1 g`` gives the standardised
    betas ``a / sqrt(S_yy)``, the raw betas ``a_j / sqrt(S_xjxj)`` and R² ``= a.g / S_yy``.

    The partial R² of a regressor is its coefficient of partial determination,
    ``(SSE_without - SSE_full) / SSE_without``, the squared partial correlation of ``y`` and the
    regressor given the others (Kutner et al., *Applied Linear Statistical Models*, 5th ed.,
    2005, §7.4), equal to ``t² / (t² + df_resid)``; the increase of R² when the regressor is
    added last follows as ``partial * (1 - R²) / (1 - partial)``.

    Undefined values are NaN, never an error:

    * a regressor constant over the voxel's subjects (e.g. no lesion there in any subject) is
      left out of that voxel's model, as a pseudo-inverse fit would do: its betas and partial
      R² are NaN, the other statistics come from the model without it;
    * a constant relevance gives NaN R², standardised betas and partial R² (raw betas are 0);
    * with fewer than ``p_eff + 2`` subjects (``p_eff`` the non-constant regressors, so no
      residual degree of freedom) or exactly collinear regressors, everything but ``n`` is NaN.

    Parameters
    ----------
    y : numpy.ndarray of shape (n_subjects, ...)
        The subjects' relevance maps, flattened ``[N, V]`` or on the grid ``[N, X, Y, Z]``;
        non-finite values drop the subject at that voxel.
    regressors : mapping of str to numpy.ndarray
        Named explanatory maps, each of the shape of ``y`` (e.g. ``{"lesion": ...,
        "log_jacobian": ...}``); non-finite values drop the subject at that voxel.
    mask : numpy.ndarray of bool, optional
        Voxels to fit, of shape ``y.shape[1:]``; all by default.
    chunk_size : int, optional
        Voxels fitted together; memory grows as ``8 * n_subjects * (p + 1) * chunk_size``
        bytes times a few temporaries. With two regressors and 150 subjects, 100,000 voxels
        took 0.6 s on one core, so a 1.5 mm brain (about a million voxels) takes seconds.

    Returns
    -------
    VoxelwiseResult
        Maps of shape ``y.shape[1:]``.
    """
    y = np.asarray(y)
    if y.ndim < 2:
        raise ValueError(f"y must be [N, ...] with at least one voxel axis, not {y.shape}")
    if not regressors:
        raise ValueError("at least one regressor is needed")
    names = list(regressors)
    columns = [np.asarray(regressors[name]) for name in names]
    for name, column in zip(names, columns, strict=True):
        if column.shape != y.shape:
            raise ValueError(f"regressor {name!r} has shape {column.shape}, y {y.shape}")
    shape, n_subjects = y.shape[1:], y.shape[0]
    response = y.reshape(n_subjects, -1)
    columns = [column.reshape(n_subjects, -1) for column in columns]
    n_voxels = response.shape[1]
    if mask is None:
        voxels = np.arange(n_voxels)
    else:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != shape:
            raise ValueError(f"mask has shape {mask.shape}, the maps {shape}")
        voxels = np.flatnonzero(mask)
    r2 = np.full(n_voxels, np.nan)
    per_regressor = {kind: np.full((len(names), n_voxels), np.nan) for kind in _REGRESSOR_STATS}
    n = np.zeros(n_voxels, dtype=np.int64)
    for start in range(0, len(voxels), chunk_size):
        chunk = voxels[start : start + chunk_size]
        design = np.stack([column[:, chunk] for column in columns]).astype(np.float64)
        fitted = _fit_voxels(response[:, chunk].astype(np.float64), design)
        r2[chunk], n[chunk] = fitted.pop("r2"), fitted.pop("n")
        for kind, values in fitted.items():
            per_regressor[kind][:, chunk] = values
    maps = {
        kind: {name: values[index].reshape(shape) for index, name in enumerate(names)}
        for kind, values in per_regressor.items()
    }
    return VoxelwiseResult(r2=r2.reshape(shape), n=n.reshape(shape), **maps)


#: The per-regressor fields of :class:`VoxelwiseResult`.
_REGRESSOR_STATS = ("partial_r2", "std_beta", "beta")


def _fit_voxels(response: np.ndarray, design: np.ndarray) -> dict[str, np.ndarray]:
    """Fit the OLS models of a chunk of voxels (see :func:`voxelwise_regression`).

    Parameters
    ----------
    response : numpy.ndarray of shape (n_subjects, n_voxels)
        Relevance.
    design : numpy.ndarray of shape (n_regressors, n_subjects, n_voxels)
        Regressors, without the intercept.

    Returns
    -------
    dict of str to numpy.ndarray
        ``r2`` and ``n`` of shape (n_voxels,), ``partial_r2``, ``std_beta`` and ``beta`` of
        shape (n_regressors, n_voxels).
    """
    valid = np.isfinite(response) & np.isfinite(design).all(axis=0)
    n = valid.sum(axis=0)
    response_c, response_constant = _centre(response, valid, n)
    design_c, design_constant = _centre(design, valid, n)
    # centred sums of squares and products, voxels first
    s_xx = np.einsum("pnv,qnv->vpq", design_c, design_c)
    s_xy = np.einsum("pnv,nv->vp", design_c, response_c)
    s_yy = np.einsum("nv,nv->v", response_c, response_c)
    constant = design_constant.T  # (n_voxels, n_regressors)
    scale = np.sqrt(np.where(constant, 1.0, np.diagonal(s_xx, axis1=1, axis2=2)))
    correlation = s_xx / (scale[:, :, None] * scale[:, None, :])
    # a constant regressor has zero rows and columns: a unit diagonal leaves it out of the fit
    correlation += np.eye(design.shape[0]) * constant[:, :, None]
    g = s_xy / scale
    df_resid = n - 1 - (~constant).sum(axis=1)
    collinear = np.linalg.eigvalsh(correlation)[:, 0] < _COLLINEARITY_TOLERANCE
    undefined = (df_resid < 1) | collinear
    correlation[undefined] = np.eye(design.shape[0])
    inverse = np.linalg.inv(correlation)
    a = np.einsum("vpq,vq->vp", inverse, g)
    explained = (a * g).sum(axis=1)
    sse = np.clip(s_yy - explained, 0.0, None)
    extra_sse = a**2 / np.diagonal(inverse, axis1=1, axis2=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = explained / s_yy
        std_beta = a / np.sqrt(s_yy)[:, None]
        partial_r2 = extra_sse / (extra_sse + sse[:, None])
    beta = a / scale
    r2[response_constant | undefined] = np.nan
    for values in (std_beta, partial_r2):
        values[response_constant | undefined] = np.nan
    for values in (std_beta, partial_r2, beta):
        values[constant] = np.nan
    beta[undefined] = np.nan
    return {"r2": r2, "n": n, "partial_r2": partial_r2.T, "std_beta": std_beta.T, "beta": beta.T}


def _centre(values: np.ndarray, valid: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre values over the valid subjects of each voxel, with zeros for the invalid ones.

    Parameters
    ----------
    values : numpy.ndarray of shape (..., n_subjects, n_voxels)
        Values to centre.
    valid : numpy.ndarray of bool of shape (n_subjects, n_voxels)
        Subjects that enter each voxel's model.
    n : numpy.ndarray of shape (n_voxels,)
        Number of valid subjects per voxel.

    Returns
    -------
    centred : numpy.ndarray
        Shape of ``values``; exactly zero where a voxel's valid values are all equal.
    constant : numpy.ndarray of bool of shape (..., n_voxels)
        Whether the valid values are all equal (or there are none).
    """
    highest = np.where(valid, values, -np.inf).max(axis=-2)
    lowest = np.where(valid, values, np.inf).min(axis=-2)
    constant = ~(highest > lowest)
    mean = np.where(valid, values, 0.0).sum(axis=-2) / np.maximum(n, 1)
    centred = np.where(valid & ~constant[..., None, :], values - mean[..., None, :], 0.0)
    return centred, constant


def invert_voxels(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Invert normalised image values inside a mask, ``x -> 1 - x`` (Lu 2023 §II.G).

    Parameters
    ----------
    image : numpy.ndarray
        Image(s) normalised to [0, 1], e.g. ``[C, X, Y, Z]``.
    mask : numpy.ndarray of bool
        Voxels to invert, broadcastable to ``image`` (a ``[X, Y, Z]`` mask inverts every
        channel).

    Returns
    -------
    numpy.ndarray
        A new array of the shape and dtype of ``image``.

    Examples
    --------
    >>> invert_voxels(np.array([0.25, 0.5, 0.875]), np.array([True, False, True])).tolist()
    [0.75, 0.5, 0.125]
    """
    image = np.asarray(image)
    return np.where(mask, 1 - image, image).astype(image.dtype, copy=False)


def inversion_test(
    predict: Callable[[np.ndarray], np.ndarray],
    images: np.ndarray,
    labels: Sequence | np.ndarray,
    relevance: np.ndarray,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    brain_mask: np.ndarray | None = None,
    n_random: int = 5,
    rng: np.random.Generator | int | None = None,
) -> pd.DataFrame:
    """Measure how much inverting the most relevant voxels costs the classifier (Lu 2023 §II.G).

    For every quantile ``q`` each subject's top voxels (:func:`quantile_masks` of its relevance
    map) are inverted (:func:`invert_voxels`) and the AUC of ``predict`` recomputed. As a
    control (not in Lu 2023, which compared relevance methods with each other), the same
    number of voxels drawn at random inside each subject's brain is inverted instead,
    ``n_random`` times; within one draw the random sets of the quantiles are nested like the
    relevance masks.

    Parameters
    ----------
    predict : callable
        Maps images ``[N, C, ...]`` to a score of the positive class ``[N]``.
    images : numpy.ndarray of shape (n_subjects, n_channels, ...)
        Images normalised to [0, 1] (Lu 2023's normalised qMR maps).
    labels : array-like of shape (n_subjects,)
        True binary classes (0/1).
    relevance : numpy.ndarray
        Either ``[N, ...]`` (one map per subject, applied to every channel: Lu 2023's combined
        map) or of the shape of ``images`` (one map per channel, each binarised on its own).
    quantiles : sequence of float, optional
        Quantiles of positive relevance defining the masks.
    brain_mask : numpy.ndarray of bool, optional
        The brain, broadcastable to ``relevance`` (e.g. ``[X, Y, Z]`` or ``[N, X, Y, Z]``);
        all voxels by default.
    n_random : int, optional
        Random draws per quantile.
    rng : numpy.random.Generator or int, optional
        Source of the random voxels.

    Returns
    -------
    pandas.DataFrame
        One row per quantile: ``quantile``; ``mean_inverted`` (voxels inverted per map, mean
        over the maps); ``auc_original``; ``auc_relevance`` and ``drop_relevance``
        (``auc_original - auc_relevance``) after inverting the top voxels; ``auc_random`` (mean
        over the draws), ``auc_random_sd`` and ``drop_random`` after inverting random voxels.
    """
    images = np.asarray(images)
    relevance = np.asarray(relevance)
    truth = _binary(labels)
    spatial = images.shape[2:]
    if relevance.shape == images.shape:
        maps = relevance
    elif relevance.shape == images.shape[:1] + spatial:
        maps = relevance[:, None]
    else:
        raise ValueError(f"relevance has shape {relevance.shape} for images {images.shape}")
    brain = np.ones(relevance.shape, dtype=bool)
    if brain_mask is not None:
        brain = np.broadcast_to(np.asarray(brain_mask, dtype=bool), relevance.shape)
    brain = brain.reshape(maps.shape)
    flat_maps = maps.reshape(*maps.shape[:2], -1)
    flat_brain = brain.reshape(flat_maps.shape)
    levels = np.asarray(quantiles, dtype=float)
    thresholds = np.full((*maps.shape[:2], len(levels)), np.inf)
    for index in np.ndindex(*maps.shape[:2]):
        kept = flat_maps[index][flat_brain[index] & (flat_maps[index] > 0)]
        if kept.size:
            thresholds[index] = np.quantile(kept, levels)
    generator = np.random.default_rng(rng)

    def auc(masks: np.ndarray) -> float:
        inverted = invert_voxels(images, masks.reshape(maps.shape))
        return float(roc_auc_score(truth, _scores(predict, inverted, len(images))))

    original = float(roc_auc_score(truth, _scores(predict, images, len(images))))
    relevant_auc = np.empty(len(levels))
    sizes = np.empty((len(levels), *maps.shape[:2]), dtype=np.int64)
    for level in range(len(levels)):
        masks = (flat_maps > 0) & flat_brain & (flat_maps >= thresholds[..., [level]])
        sizes[level] = masks.sum(axis=-1)
        relevant_auc[level] = auc(masks)
    random_auc = np.empty((n_random, len(levels)))
    for draw in range(n_random):
        ranks = _random_ranks(flat_brain, generator)
        for level, size in enumerate(sizes):
            random_auc[draw, level] = auc(ranks < size[..., None])
    return pd.DataFrame(
        {
            "quantile": levels,
            "mean_inverted": sizes.reshape(len(levels), -1).mean(axis=1),
            "auc_original": original,
            "auc_relevance": relevant_auc,
            "drop_relevance": original - relevant_auc,
            "auc_random": random_auc.mean(axis=0),
            "auc_random_sd": random_auc.std(axis=0, ddof=1) if n_random > 1 else np.nan,
            "drop_random": original - random_auc.mean(axis=0),
        }
    )


def _random_ranks(brain: np.ndarray, generator: np.random.Generator) -> np.ndarray:
    """Rank the brain voxels of every map in a random order (others get the largest rank).

    Parameters
    ----------
    brain : numpy.ndarray of bool of shape (..., n_voxels)
        Brain voxels of each map.
    generator : numpy.random.Generator
        Source of the permutations.

    Returns
    -------
    numpy.ndarray of int
        Shape of ``brain``: ``ranks < k`` selects ``k`` random brain voxels of each map.
    """
    ranks = np.full(brain.shape, brain.shape[-1], dtype=np.min_scalar_type(brain.shape[-1]))
    for index in np.ndindex(*brain.shape[:-1]):
        inside = np.flatnonzero(brain[index])
        ranks[index][inside] = generator.permutation(inside.size)
    return ranks


def _scores(
    predict: Callable[[np.ndarray], np.ndarray], images: np.ndarray, count: int
) -> np.ndarray:
    """Call ``predict`` and check that it returns one finite score per subject."""
    scores = np.asarray(predict(images), dtype=float)
    if scores.shape != (count,):
        raise ValueError(f"predict must return {count} scores, returned shape {scores.shape}")
    return scores


def spearman_permutation(
    values: Sequence[float] | np.ndarray,
    scores: Sequence[float] | np.ndarray,
    n_permutations: int = 20000,
    rng: np.random.Generator | int | None = None,
    chunk_size: int = 2000,
) -> tuple[float, float]:
    """Spearman's ρ with a two-sided permutation p-value (Lu 2023 §II.G).

    Lu 2023 correlated the mean normalised qMR value inside a quantile mask with the EDSS and
    tested ρ with a two-sided permutation test of 20,000 permutations. The scores are permuted
    against the values and ``p = (1 + #{|ρ_perm| >= |ρ|}) / (1 + n_permutations)``, the
    permutation p-value that counts the observed arrangement and so is never 0 (Phipson &
    Smyth, Stat. Appl. Genet. Mol. Biol. 9(1), 2010). ``scipy.stats.permutation_test`` doubles
    the smaller one-sided p-value instead, hence the few lines here.

    Parameters
    ----------
    values : array-like of shape (n_subjects,)
        E.g. each subject's mean qMR value inside its mask.
    scores : array-like of shape (n_subjects,)
        Clinical scores (e.g. EDSS).
    n_permutations : int, optional
        Random permutations; 20,000 as in Lu 2023.
    rng : numpy.random.Generator or int, optional
        Source of the permutations.
    chunk_size : int, optional
        Permutations evaluated together (memory ``8 * chunk_size * n_subjects`` bytes).

    Returns
    -------
    rho : float
        Spearman's ρ over the subjects with both values finite (ties get average ranks).
    p_value : float
        Two-sided permutation p-value; both NaN with fewer than three subjects or a constant
        variable.

    Examples
    --------
    >>> rho, p = spearman_permutation([1, 2, 3, 4, 5, 6], [2, 1, 4, 3, 6, 5], 2000, rng=0)
    >>> round(rho, 3), bool(p < 0.1)
    (0.829, True)
    """
    x = np.asarray(values, dtype=float).ravel()
    z = np.asarray(scores, dtype=float).ravel()
    if x.shape != z.shape:
        raise ValueError(f"{x.size} values for {z.size} scores")
    keep = np.isfinite(x) & np.isfinite(z)
    ranks = [stats.rankdata(column[keep]) for column in (x, z)]
    if keep.sum() < 3 or any(np.ptp(rank) == 0 for rank in ranks):
        return np.nan, np.nan
    x_rank, z_rank = (rank - rank.mean() for rank in ranks)
    x_rank, z_rank = x_rank / np.linalg.norm(x_rank), z_rank / np.linalg.norm(z_rank)
    rho = float(np.clip(x_rank @ z_rank, -1.0, 1.0))
    generator = np.random.default_rng(rng)
    exceed = 0
    for start in range(0, n_permutations, chunk_size):
        count = min(chunk_size, n_permutations - start)
        permuted = generator.permuted(np.tile(z_rank, (count, 1)), axis=1)
        exceed += int((np.abs(permuted @ x_rank) >= abs(rho) - _TIE_TOLERANCE).sum())
    return rho, (1 + exceed) / (1 + n_permutations)


def _binary(values: Sequence | np.ndarray) -> np.ndarray:
    """Check that values are binary (booleans or 0/1) and return them as booleans."""
    array = np.asarray(values).ravel()
    if array.dtype != bool:
        if not np.isin(array, (0, 1)).all():
            raise ValueError(f"expected binary 0/1 values, got {np.unique(array)[:5]}")
        array = array.astype(int) == 1
    return array


def _atlas(
    labels: np.ndarray, shape: tuple[int, ...], names: Mapping[int, str]
) -> tuple[np.ndarray, np.ndarray]:
    """Check an atlas against a map's shape and return its flat labels and the named labels."""
    labels = np.asarray(labels)
    if labels.shape != shape:
        raise ValueError(f"labels have shape {labels.shape}, the maps {shape}")
    if not np.issubdtype(labels.dtype, np.integer) or (labels.size and labels.min() < 0):
        raise ValueError("labels must be non-negative integers")
    region_labels = np.array(sorted(int(label) for label in names), dtype=np.int64)
    if region_labels.size and region_labels[0] < 0:
        raise ValueError("region labels must be non-negative")
    return labels.ravel().astype(np.int64, copy=False), region_labels


#: Quantile masks of Lu 2023's voxel-inversion test, from high to low down to the "top 40th
#: quantile, i.e., the 60th quantile" (§III.B, Fig. 4), where the proposed LRP approach had the
#: lowest AUC and whose mask entered the correlation with the EDSS (§III.C, Tables III-IV).
LU2023_QUANTILES = (0.99, 0.95, 0.9, 0.8, 0.7, 0.6)


def mean_attention_weights(
    weights: np.ndarray,
    y_true: Sequence | np.ndarray,
    y_pred: Sequence | np.ndarray,
    contrasts: Sequence[str],
) -> pd.DataFrame:
    """Mean attention weight of each contrast over the correctly classified samples.

    Lu 2023 §III.A, Table II: "the reported AWs were averaged across the correctly classified
    samples" (qT1 0.503, NDI 0.309, MWF 0.188 in cross-validation), the share of the combined
    representation ``n = sum_l a_l m_l`` (eq. (1)) that each contrast's path contributes.

    Parameters
    ----------
    weights : numpy.ndarray of shape (n_samples, n_contrasts)
        Attention weights ``a_l`` of each sample (rows sum to 1).
    y_true, y_pred : array-like of shape (n_samples,)
        Observed and predicted binary classes (0/1).
    contrasts : sequence of str
        Name of each column of ``weights``.

    Returns
    -------
    pandas.DataFrame
        One row per contrast, ranked by ``mean_weight`` (largest first): ``contrast``,
        ``mean_weight`` and ``sd_weight`` over the correctly classified samples, ``n_correct``,
        and ``mean_weight_all`` over all samples. NaN without a correctly classified sample.

    Examples
    --------
    >>> w = np.array([[0.7, 0.3], [0.6, 0.4], [0.1, 0.9]])
    >>> mean_attention_weights(w, [1, 0, 1], [1, 0, 0], ["qT1", "MWF"])[["contrast", "mean_weight"]]
      contrast  mean_weight
    0      qT1         0.65
    1      MWF         0.35
    """
    weights = np.asarray(weights, dtype=float)
    if weights.ndim != 2 or weights.shape[1] != len(contrasts):
        raise ValueError(f"weights of shape {weights.shape} for {len(contrasts)} contrasts")
    correct = _binary(y_true) == _binary(y_pred)
    if correct.shape != weights.shape[:1]:
        raise ValueError(f"{correct.size} labels for {len(weights)} samples")
    kept = weights[correct]
    table = pd.DataFrame(
        {
            "contrast": list(contrasts),
            "mean_weight": kept.mean(axis=0) if len(kept) else np.nan,
            "sd_weight": kept.std(axis=0, ddof=1) if len(kept) > 1 else np.nan,
            "n_correct": int(correct.sum()),
            "mean_weight_all": weights.mean(axis=0),
        }
    )
    table = table.sort_values("mean_weight", ascending=False, kind="stable", na_position="last")
    return table.reset_index(drop=True)


def mask_means(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Mean of every channel of every image inside the image's mask (Lu 2023 §II.G).

    Lu 2023 averaged "the normalized qMR values ... within the quantile mask of the scenario"
    before correlating them with the EDSS.

    Parameters
    ----------
    images : numpy.ndarray of shape (n_samples, n_channels, ...)
        Normalised images.
    masks : numpy.ndarray of bool
        ``[n_samples, ...]`` (one mask per sample for all channels, e.g. of the combined map of
        eq. (8)) or of the shape of ``images`` (one mask per channel).

    Returns
    -------
    numpy.ndarray of shape (n_samples, n_channels)
        NaN where a mask is empty.

    Examples
    --------
    >>> images = np.array([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]])
    >>> mask_means(images, np.array([[True, True, False]])).tolist()
    [[1.5, 4.5]]
    """
    images = np.asarray(images, dtype=float)
    masks = np.asarray(masks, dtype=bool)
    if masks.shape == images.shape[:1] + images.shape[2:]:
        masks = masks[:, None]
    masks = np.broadcast_to(masks, images.shape)
    axes = tuple(range(2, images.ndim))
    counts = masks.sum(axis=axes)
    sums = np.where(masks, images, 0.0).sum(axis=axes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan)


def contrast_spearman(
    images: np.ndarray,
    relevance: np.ndarray,
    scores: Sequence[float] | np.ndarray,
    contrasts: Sequence[str],
    quantile: float = LU2023_QUANTILES[-1],
    brain_mask: np.ndarray | None = None,
    n_permutations: int = 20000,
    rng: np.random.Generator | int | None = None,
) -> pd.DataFrame:
    """Spearman's ρ of each contrast's mean inside the relevant mask with a clinical score.

    Lu 2023 §II.G and §III.C (Tables III-IV): each subject's relevance map is binarised at a
    quantile of its positive relevance inside the brain (:func:`quantile_masks`; the top 40 %,
    quantile 0.6, in the paper), the normalised values of each qMR contrast are averaged inside
    the mask (:func:`mask_means`) and correlated with the EDSS across subjects, Spearman's ρ
    with a two-sided permutation test of 20,000 permutations (:func:`spearman_permutation`).

    Parameters
    ----------
    images : numpy.ndarray of shape (n_samples, n_contrasts, ...)
        Normalised images.
    relevance : numpy.ndarray
        ``[n_samples, ...]`` (one map per subject, e.g. the combined map of Lu 2023 eq. (8)) or
        of the shape of ``images`` (one map per contrast, each binarised on its own).
    scores : array-like of shape (n_samples,)
        The clinical score (e.g. EDSS).
    contrasts : sequence of str
        Name of each channel.
    quantile : float, optional
        Quantile of the masks (0.6, the top 40 %, as Lu 2023).
    brain_mask : numpy.ndarray of bool, optional
        The brain, broadcastable to one map.
    n_permutations : int, optional
        Permutations of the test.
    rng : numpy.random.Generator or int, optional
        Source of the permutations; every contrast is tested with the same permutations.

    Returns
    -------
    pandas.DataFrame
        One row per contrast: ``contrast``, ``quantile``, ``rho``, ``p_permutation``,
        ``n_permutations``, ``n`` (subjects with a non-empty mask and a score).
    """
    images = np.asarray(images)
    relevance = np.asarray(relevance)
    if images.shape[1] != len(contrasts):
        raise ValueError(f"{images.shape[1]} channels for {len(contrasts)} contrasts")
    if relevance.shape == images.shape:  # one mask per contrast
        masks = np.stack(
            [[quantile_masks(c, (quantile,), brain_mask)[0] for c in maps] for maps in relevance]
        )
    elif relevance.shape == images.shape[:1] + images.shape[2:]:
        masks = np.stack([quantile_masks(m, (quantile,), brain_mask)[0] for m in relevance])
    else:
        raise ValueError(f"relevance has shape {relevance.shape} for images {images.shape}")
    values = mask_means(images, masks)
    scores = np.asarray(scores, dtype=float)
    seed = np.random.default_rng(rng).integers(2**32)
    rows = []
    for index, contrast in enumerate(contrasts):
        rho, p = spearman_permutation(values[:, index], scores, n_permutations, rng=seed)
        rows.append(
            {
                "contrast": contrast,
                "quantile": quantile,
                "rho": rho,
                "p_permutation": p,
                "n_permutations": n_permutations,
                "n": int((np.isfinite(values[:, index]) & np.isfinite(scores)).sum()),
            }
        )
    return pd.DataFrame(rows)

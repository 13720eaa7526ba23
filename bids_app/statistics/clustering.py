"""Data-driven clustering of patients on imaging metrics (Milella 2023's two-step cluster analysis).

Milella et al. (Milella 2023) clustered 90 ALS patients on three metrics: the precentral and
paracentral cortical thickness, each averaged over the left and right hemispheres, and the
medulla oblongata volume corrected for the total intracranial volume (TIV) by the residual
method ("Cortical Thickness Analysis and Volumetric Analysis"). The metrics were min-max scaled
to 0-1 and entered SPSS's two-step cluster analysis with the Euclidean distance, the number of
clusters chosen by the Bayesian information criterion (BIC), and the clusters' cohesion and
separation judged with the silhouette coefficient ("Statistical Analysis").

The steps here, each a pure function of pandas or NumPy objects:

1. :func:`prepare_features` keeps the subjects with every clustering metric and lists the others
   with the reason;
2. :func:`residual_tiv_correction` applies the residual method, fitted on the controls;
3. :func:`minmax_scale` scales the metrics to 0-1 over the clustered subjects;
4. :func:`choose_k_by_bic` fits Gaussian mixtures with 1..K components and picks the lowest
   BIC, the analogue of the two-step analysis' BIC criterion;
5. :func:`cluster` labels the subjects (Gaussian mixture, k-means or Ward's agglomerative
   clustering), numbered deterministically;
6. :func:`silhouette` and :func:`bootstrap_stability` judge the partition.

SPSS's two-step analysis itself is not reproduced: it pre-clusters the cases in a cluster
features tree (whose result depends on the order of the cases), merges the leaves
hierarchically, and its automatic choice of k takes the BIC only for an initial estimate,
refined with the ratio of the distances between the clusters merged at successive steps. Seed
002 says only that "the Bayesian information criterion was used to determine the number of
clusters". A Gaussian mixture fitted by maximum likelihood, with k at the lowest BIC, is the
model-based reading of that sentence, with no dependence on the order of the subjects.

The fits are small (tens of subjects, a few metrics): multi-threaded BLAS only adds overhead,
by orders of magnitude on a loaded machine (``benchmarks/notes/code-history.md``,
"Clustering"), so they run with one BLAS/OpenMP thread.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.cluster import AgglomerativeClustering, KMeans
from sklearn.metrics import adjusted_rand_score, silhouette_samples, silhouette_score
from sklearn.mixture import GaussianMixture
from sklearn.preprocessing import MinMaxScaler
from threadpoolctl import threadpool_limits

#: Clustering methods of :func:`cluster`.
METHODS = ("gmm", "kmeans", "agglomerative")
#: Largest number of clusters tried by default; Milella 2023 found 3.
K_MAX = 6
#: Random restarts of every Gaussian mixture and k-means fit (the best is kept).
N_INIT = 10
#: Covariance of the Gaussian mixture's components (see :func:`choose_k_by_bic`).
COVARIANCE_TYPE = "tied"
#: Fewest reference subjects the residual TIV correction is fitted on.
MIN_REFERENCE = 3

ArrayLike = pd.DataFrame | np.ndarray


def prepare_features(
    table: pd.DataFrame, columns: Sequence[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep the subjects with every clustering metric; list the others with the reason.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per subject.
    columns : sequence of str
        The clustering metrics (Milella 2023: precentral and paracentral thickness averaged
        pair-wise, and the TIV-corrected medulla oblongata volume).

    Returns
    -------
    features : pandas.DataFrame
        ``table[columns]`` as floats, restricted to the rows where every metric is finite.
    exclusions : pandas.DataFrame
        One row per excluded subject (the table's index), with the column ``reason``
        (``"missing clustering feature: <names>"``).

    Raises
    ------
    ValueError
        If no column is given, a column is not in the table, or is not numeric.

    Examples
    --------
    >>> df = pd.DataFrame({"a": [1.0, np.nan, 3.0], "b": [1.0, 2.0, np.inf]},
    ...                   index=["sub-1", "sub-2", "sub-3"])
    >>> features, exclusions = prepare_features(df, ["a", "b"])
    >>> features.index.tolist()
    ['sub-1']
    >>> exclusions["reason"].tolist()
    ['missing clustering feature: a', 'missing clustering feature: b']
    """
    columns = list(columns)
    if not columns:
        raise ValueError("no clustering feature given")
    absent = [name for name in columns if name not in table.columns]
    if absent:
        raise ValueError(f"clustering features not in the table: {', '.join(absent)}")
    wrong = [name for name in columns if not _is_numeric(table[name])]
    if wrong:
        raise ValueError(f"clustering features must be numeric: {', '.join(wrong)}")
    values = table[columns].astype(float)
    missing = ~np.isfinite(values)
    incomplete = missing.any(axis=1)
    reasons = [
        "missing clustering feature: " + ", ".join(missing.columns[row])
        for row in missing[incomplete].to_numpy()
    ]
    exclusions = pd.DataFrame({"reason": reasons}, index=values.index[incomplete])
    return values[~incomplete], exclusions


def residual_tiv_correction(
    values: pd.DataFrame, tiv: pd.Series, reference: pd.Series | None = None
) -> pd.DataFrame:
    """Correct volumes for the total intracranial volume by the residual method.

    Milella 2023 ("Cortical Thickness Analysis and Volumetric Analysis") corrected the medulla
    oblongata volume this way, citing Pintzka et al. 2015 (Front Neurosci 9:238); the method
    as in Voevodskaya et al. 2014 (Front Aging Neurosci 6:264): for every metric ``V``,

    ``V_corrected = V - b * (TIV - mean(TIV_ref))``

    where ``b`` is the least-squares slope of ``V`` on TIV among the reference subjects and
    ``mean(TIV_ref)`` their mean TIV. Milella 2023 does not say which subjects the slope came
    from; the reference here is the controls when there are any, as in Voevodskaya et al., so
    that the disease does not bias the slope, else every subject. The corrected values keep
    the metric's units and its level at the reference's mean TIV.

    Parameters
    ----------
    values : pandas.DataFrame
        One row per subject, the numeric metrics to correct (e.g. volumes in mL).
    tiv : pandas.Series
        The subjects' TIV, with the index of ``values``.
    reference : pandas.Series of bool, optional
        True for the subjects the slope is fitted on (the controls), with the index of
        ``values``; None fits on every subject.

    Returns
    -------
    pandas.DataFrame
        The corrected metrics, same index and columns; missing where the metric or the TIV
        is. Each metric's slope is fitted on the reference subjects that have both.

    Raises
    ------
    ValueError
        If the indexes differ, or a metric has fewer than ``MIN_REFERENCE`` reference
        subjects with a value and a TIV, or their TIV is constant.

    Examples
    --------
    >>> tiv = pd.Series([1300.0, 1400.0, 1500.0, 1600.0])
    >>> vol = pd.DataFrame({"medulla": 0.003 * tiv + [0.1, -0.1, -0.1, 0.1]})
    >>> residual_tiv_correction(vol, tiv)["medulla"].round(2).tolist()
    [4.45, 4.25, 4.25, 4.45]
    """
    if not (tiv.index.equals(values.index)) or (
        reference is not None and not reference.index.equals(values.index)
    ):
        raise ValueError("values, tiv and reference must have the same index")
    tiv = tiv.astype(float)
    # a missing reference flag is not a reference subject
    in_reference = np.ones(len(values), dtype=bool) if reference is None else reference.eq(True)
    corrected = {}
    for name in values.columns:
        metric = values[name].astype(float)
        rows = np.asarray(in_reference & np.isfinite(metric) & np.isfinite(tiv))
        if rows.sum() < MIN_REFERENCE or np.ptp(tiv[rows]) == 0:
            raise ValueError(
                f"the TIV correction of {name!r} needs at least {MIN_REFERENCE} reference "
                f"subjects with a value and different TIVs; got {rows.sum()}"
            )
        slope = np.polyfit(tiv[rows], metric[rows], 1)[0]
        corrected[name] = metric - slope * (tiv - tiv[rows].mean())
    return pd.DataFrame(corrected, index=values.index)


def minmax_scale(values: pd.DataFrame) -> pd.DataFrame:
    """Scale every metric to 0-1 over the given subjects (Milella 2023, "Statistical Analysis").

    Milella 2023 min-max normalised the thickness and volume to a 0-1 scale "to account for
    different measurement scales". Pass the clustered subjects only (the patients): the
    minimum and maximum are theirs. A constant metric becomes 0.

    Parameters
    ----------
    values : pandas.DataFrame
        One row per subject, numeric metrics.

    Returns
    -------
    pandas.DataFrame
        The scaled metrics, same index and columns (missing values stay missing).

    Examples
    --------
    >>> minmax_scale(pd.DataFrame({"a": [2.0, 3.0, 4.0]}))["a"].tolist()
    [0.0, 0.5, 1.0]
    """
    scaled = MinMaxScaler().fit_transform(values.astype(float))
    return pd.DataFrame(scaled, index=values.index, columns=values.columns)


def choose_k_by_bic(
    X: ArrayLike,  # noqa: N803 (scikit-learn's name)
    k_max: int = K_MAX,
    covariance_type: str = COVARIANCE_TYPE,
    random_state: int = 0,
    n_init: int = N_INIT,
) -> tuple[pd.DataFrame, int]:
    """Choose the number of clusters as the lowest BIC of Gaussian mixtures with 1..k_max.

    The analogue of Milella 2023's two-step analysis with "the number of clusters not fixed a
    priori" and chosen by the BIC ("Statistical Analysis"); see the module's description for
    how SPSS's automatic choice differs. Each mixture is fitted by EM with ``n_init`` random
    restarts; the BIC is ``-2 log L + p log n`` with ``p`` its free parameters.

    The default covariance, ``"tied"`` (one full covariance shared by every cluster), is the
    model of Milella 2023's Euclidean distance, which gives every cluster the same spread,
    generalised to correlated metrics (the precentral and paracentral thicknesses are). It
    spends 3 + 1 parameters per extra cluster on three metrics, where ``"diag"`` (the
    independence model of SPSS's log-likelihood distance) spends 6 + 1 and ``"full"`` 9 + 1.
    On 20 cohorts of :func:`bids_app.synthetic.subtypes.make_subtype_cohort` (90 patients,
    three subtypes ~4 SDs apart) ``"tied"`` chose k = 3 in 20, ``"diag"`` in 6 (k = 2 in 12),
    ``"full"`` in 2 and ``"spherical"`` in 13; on 20 null cohorts (no subtypes) ``"tied"`` and
    ``"full"`` chose k = 1 in 20, ``"diag"`` in 17 and ``"spherical"`` in 7, as it cannot model
    the thicknesses' correlation. All four scikit-learn covariance types are accepted.

    Parameters
    ----------
    X : pandas.DataFrame or numpy.ndarray
        Subjects x metrics, finite (see :func:`prepare_features`), scaled (see
        :func:`minmax_scale`).
    k_max : int, default ``K_MAX``
        Largest number of clusters tried.
    covariance_type : {"tied", "full", "diag", "spherical"}, default ``COVARIANCE_TYPE``
        Covariance of the mixture's components.
    random_state : int, default 0
        Seed of the EM initialisations.
    n_init : int, default ``N_INIT``
        Restarts per mixture.

    Returns
    -------
    bic : pandas.DataFrame
        One row per k: columns ``k`` and ``bic``.
    k : int
        The k with the lowest BIC (the smallest such k on ties).

    Raises
    ------
    ValueError
        If ``k_max < 1``, there are fewer than ``2 * k_max`` subjects, or ``X`` is not a
        finite numeric matrix.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> X = np.vstack([rng.normal(0, 0.1, (30, 2)), rng.normal(1, 0.1, (30, 2))])
    >>> table, k = choose_k_by_bic(X, k_max=4)
    >>> k, table["k"].tolist()
    (2, [1, 2, 3, 4])
    """
    if k_max < 1:
        raise ValueError(f"k_max must be at least 1, got {k_max}")
    matrix = _as_matrix(X, 1)
    if len(matrix) < 2 * k_max:
        raise ValueError(
            f"trying up to {k_max} clusters needs at least {2 * k_max} subjects (2 per "
            f"cluster), got {len(matrix)}; lower k_max"
        )
    with threadpool_limits(limits=1):
        bic = [
            _mixture(k, covariance_type, random_state, n_init).fit(matrix).bic(matrix)
            for k in range(1, k_max + 1)
        ]
    table = pd.DataFrame({"k": np.arange(1, k_max + 1), "bic": bic})
    return table, int(table["k"][np.argmin(bic)])


def cluster(
    X: ArrayLike,  # noqa: N803 (scikit-learn's name)
    method: str = "gmm",
    k: int | None = None,
    random_state: int = 0,
    k_max: int = K_MAX,
    covariance_type: str = COVARIANCE_TYPE,
    n_init: int = N_INIT,
) -> pd.Series:
    """Cluster the subjects and number the clusters deterministically.

    Parameters
    ----------
    X : pandas.DataFrame or numpy.ndarray
        Subjects x metrics, finite and scaled.
    method : {"gmm", "kmeans", "agglomerative"}, default "gmm"
        Gaussian mixture (each subject to its most probable component), k-means, or Ward's
        agglomerative clustering; the last two use the Euclidean distance of Milella 2023.
    k : int, optional
        Number of clusters; None chooses it with :func:`choose_k_by_bic` (a Gaussian
        mixture's BIC, whatever the method).
    random_state : int, default 0
        Seed of the initialisations (unused by the agglomerative method).
    k_max, covariance_type, n_init
        As in :func:`choose_k_by_bic`; ``covariance_type`` applies to ``"gmm"`` and
        ``n_init`` to ``"gmm"`` and ``"kmeans"``.

    Returns
    -------
    pandas.Series
        Integer labels 1, 2, ... named ``cluster``, indexed like ``X`` (a range for an
        array). Cluster 1 is the largest; equal sizes are ordered by their centroids,
        compared metric by metric. A mixture component that gets no subject is dropped, so
        there can be fewer than k labels.

    Raises
    ------
    ValueError
        If the method is unknown, k < 1, there are fewer than ``2 * k`` subjects, or ``X``
        is not a finite numeric matrix.

    Examples
    --------
    >>> X = np.array([[0.0, 0.0], [0.1, 0.0], [1.0, 1.0], [0.9, 1.0], [1.0, 0.9]])
    >>> cluster(X, "kmeans", k=2).tolist()
    [2, 2, 1, 1, 1]
    """
    if method not in METHODS:
        raise ValueError(f"unknown clustering method {method!r}; choose from {METHODS}")
    if k is None:
        k = choose_k_by_bic(X, k_max, covariance_type, random_state, n_init)[1]
    if k < 1:
        raise ValueError(f"the number of clusters must be at least 1, got {k}")
    matrix = _as_matrix(X, k)
    index = X.index if isinstance(X, pd.DataFrame) else pd.RangeIndex(len(matrix))
    raw = _fit_labels(matrix, method, k, random_state, covariance_type, n_init)
    return pd.Series(_renumber(matrix, raw), index=index, name="cluster")


def silhouette(
    X: ArrayLike,  # noqa: N803 (scikit-learn's name)
    labels: pd.Series | np.ndarray,
) -> tuple[float, pd.DataFrame, pd.Series]:
    """Silhouette coefficients with the Euclidean distance, overall, per cluster, per subject.

    Milella 2023 ("Statistical Analysis", "Results") judged its clusters by the silhouette
    coefficient (0.6, "reasonable cohesion and separation" by Kaufman and Rousseeuw's scale:
    above 0.70 strong, 0.51-0.70 reasonable, 0.26-0.50 weak).

    Parameters
    ----------
    X : pandas.DataFrame or numpy.ndarray
        Subjects x metrics, the matrix that was clustered.
    labels : pandas.Series or numpy.ndarray
        One cluster label per subject.

    Returns
    -------
    overall : float
        Mean silhouette over the subjects.
    per_cluster : pandas.DataFrame
        One row per cluster (sorted): ``cluster``, ``n``, ``silhouette`` (the mean over its
        subjects).
    samples : pandas.Series
        Every subject's silhouette, named ``silhouette``, indexed like ``X``.

    Raises
    ------
    ValueError
        If the labels do not have between 2 and n - 1 distinct values, or their number
        differs from the subjects'.

    Examples
    --------
    >>> X = np.array([[0.0], [0.1], [1.0], [1.1]])
    >>> overall, per_cluster, _ = silhouette(X, np.array([1, 1, 2, 2]))
    >>> round(overall, 2), per_cluster["n"].tolist()
    (0.9, [2, 2])
    """
    matrix = _as_matrix(X, 1)
    labels = np.asarray(labels)
    if len(labels) != len(matrix):
        raise ValueError(f"{len(labels)} labels for {len(matrix)} subjects")
    n_clusters = len(np.unique(labels))
    if not 2 <= n_clusters <= len(matrix) - 1:
        raise ValueError(
            f"the silhouette needs 2 to n - 1 = {len(matrix) - 1} clusters, got {n_clusters}"
        )
    index = X.index if isinstance(X, pd.DataFrame) else pd.RangeIndex(len(matrix))
    samples = pd.Series(
        silhouette_samples(matrix, labels, metric="euclidean"), index=index, name="silhouette"
    )
    per_cluster = (
        samples.groupby(labels)
        .agg(["size", "mean"])
        .rename(columns={"size": "n", "mean": "silhouette"})
        .rename_axis("cluster")
        .reset_index()
    )
    overall = float(silhouette_score(matrix, labels, metric="euclidean"))
    return overall, per_cluster, samples


def bootstrap_stability(
    X: ArrayLike,  # noqa: N803 (scikit-learn's name)
    method: str,
    k: int,
    n_boot: int = 100,
    random_state: int = 0,
    covariance_type: str = COVARIANCE_TYPE,
    n_init: int = N_INIT,
) -> tuple[float, float]:
    """Stability of the partition: adjusted Rand index over bootstrap resamples.

    The subjects are clustered once on all the data; then ``n_boot`` times they are drawn with
    replacement, clustered again with the same method and k, and the new labels compared with
    the full-data labels of the same draws by the adjusted Rand index (ARI: 1 identical
    partitions up to the numbering, ~0 chance agreement). A subject drawn twice counts twice.
    Milella 2023 did not assess stability; this answers its own remark that the two-step
    solution may depend on the order of the cases.

    Parameters
    ----------
    X : pandas.DataFrame or numpy.ndarray
        Subjects x metrics, finite and scaled.
    method : {"gmm", "kmeans", "agglomerative"}
        As in :func:`cluster`.
    k : int
        Number of clusters, at least 2 (kept fixed in the resamples).
    n_boot : int, default 100
        Bootstrap resamples.
    random_state : int, default 0
        Seed of the resampling and of the fits; the same seed gives the same result.
    covariance_type, n_init
        As in :func:`cluster`.

    Returns
    -------
    mean : float
        Mean ARI over the resamples.
    sd : float
        Its standard deviation over the resamples (ddof 1; 0 for a single resample).

    Raises
    ------
    ValueError
        If ``k < 2``, ``n_boot < 1``, or as :func:`cluster`.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> X = np.vstack([rng.normal(0, 0.1, (30, 2)), rng.normal(1, 0.1, (30, 2))])
    >>> bootstrap_stability(X, "agglomerative", k=2, n_boot=5)
    (1.0, 0.0)
    """
    if k < 2:
        raise ValueError(f"stability needs at least 2 clusters, got k={k}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    matrix = _as_matrix(X, k)
    full = cluster(matrix, method, k, random_state, covariance_type=covariance_type, n_init=n_init)
    rng = np.random.default_rng(random_state)
    scores = []
    for _ in range(n_boot):
        draw = rng.integers(0, len(matrix), len(matrix))
        seed = int(rng.integers(2**31))
        labels = _fit_labels(matrix[draw], method, k, seed, covariance_type, n_init)
        scores.append(adjusted_rand_score(full.to_numpy()[draw], labels))
    spread = float(np.std(scores, ddof=1)) if n_boot > 1 else 0.0
    return float(np.mean(scores)), spread


def _mixture(k: int, covariance_type: str, random_state: int, n_init: int) -> GaussianMixture:
    """Return an unfitted Gaussian mixture with k components."""
    return GaussianMixture(
        n_components=k,
        covariance_type=covariance_type,
        n_init=n_init,
        random_state=random_state,
    )


def _fit_labels(
    matrix: np.ndarray,
    method: str,
    k: int,
    random_state: int,
    covariance_type: str,
    n_init: int,
) -> np.ndarray:
    """Cluster a finite matrix into k clusters; return the method's own labels."""
    if k == 1:
        return np.zeros(len(matrix), dtype=int)
    with threadpool_limits(limits=1):
        if method == "gmm":
            return _mixture(k, covariance_type, random_state, n_init).fit_predict(matrix)
        if method == "kmeans":
            return KMeans(k, n_init=n_init, random_state=random_state).fit_predict(matrix)
        return AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(matrix)


def _renumber(matrix: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Renumber the clusters 1, 2, ... by decreasing size, ties by centroid (metric by metric)."""
    clusters = np.unique(labels)
    sizes = np.array([np.sum(labels == c) for c in clusters])
    centroids = np.array([matrix[labels == c].mean(axis=0) for c in clusters])
    # np.lexsort sorts by its last key first: size (descending), then the centroid's metrics
    order = np.lexsort((*centroids.T[::-1], -sizes))
    new = np.empty(clusters.max() + 1, dtype=int)
    new[clusters[order]] = np.arange(1, len(clusters) + 1)
    return new[labels]


def _as_matrix(values: ArrayLike, k: int) -> np.ndarray:
    """Return the values as a finite float matrix with at least 2 * k rows, or raise."""
    matrix = np.asarray(values, dtype=float)
    if matrix.ndim != 2 or matrix.shape[1] < 1:
        raise ValueError(f"expected a subjects x metrics matrix, got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise ValueError(
            "the clustering matrix has missing or infinite values; exclude those subjects "
            "with prepare_features first"
        )
    if len(matrix) < 2 * k:
        raise ValueError(
            f"{k} clusters need at least {2 * k} subjects (2 per cluster), got {len(matrix)}"
        )
    return matrix


def _is_numeric(column: pd.Series) -> bool:
    """Tell whether a column holds numbers (not booleans)."""
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)

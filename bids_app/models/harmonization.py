"""ComBat harmonisation of multi-site features as a scikit-learn transformer.

ComBat (Johnson et al. 2007, Biostatistics 8:118) models each feature as the effects of the
covariates plus an additive and a multiplicative site effect on the residual, estimates the site
effects by empirical Bayes (pooling information over features) and removes them while keeping
the covariate effects. neuroHarmonize (Pomponio et al. 2020, NeuroImage 208:116450) implements it
for neuroimaging features as a model learnt on one data set and applied to another, which is
what cross-validation needs: :class:`ComBatHarmonizer` is fitted inside each training fold and
applied to the matching test fold, so that nothing of the test fold leaks into the model.

:func:`check_sites` checks a cohort before any fitting: a site too small to appear in every
training fold, or a site whose subjects all share one label (ComBat would remove the group
difference together with the site effect).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from neuroHarmonize import harmonizationApply, harmonizationLearn
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

#: Values of ``ComBatHarmonizer(unseen_site=...)``.
UNSEEN_SITE_OPTIONS = ("error", "reference")

#: Fewest rows of a site that ComBat can fit: its per-site variance needs two.
MIN_ROWS_PER_SITE = 2

#: neuroHarmonize builds an ``np.matrix`` in every fit; numpy warns about the class, not the data.
_MATRIX_WARNING = "the matrix subclass is not the recommended way"


def check_sites(
    sites: pd.Series,
    labels: pd.Series | None,
    n_splits: int,
    min_per_site: int = MIN_ROWS_PER_SITE,
) -> None:
    """Check that a cohort can be harmonised inside the folds of a cross-validation.

    Parameters
    ----------
    sites : pandas.Series
        The site of each subject, indexed by subject (one row per subject).
    labels : pandas.Series or None
        The label of each subject (same index as ``sites``), or None when there is none.
    n_splits : int
        Number of cross-validation folds (at least 2).
    min_per_site : int, default 2
        Fewest subjects of a site that every training fold must hold.

    Raises
    ------
    ValueError
        If ``sites`` has several rows for a subject or missing values; if a site has fewer
        than ``ceil(min_per_site * n_splits / (n_splits - 1))`` subjects; if ``labels`` lacks
        a subject of ``sites``; or if all subjects of a site share one label. The message names
        the sites (and labels) at fault and what to do.

    Notes
    -----
    A training fold holds ``(n_splits - 1) / n_splits`` of the subjects, so a site spread evenly
    over the folds needs ``min_per_site * n_splits / (n_splits - 1)`` subjects for every training
    fold to hold ``min_per_site`` of them. Folds stratified by label alone do not spread a site
    evenly, so :meth:`ComBatHarmonizer.fit` checks each training fold again.

    Examples
    --------
    >>> sites = pd.Series(["A", "A", "A", "B", "B", "B"], index=[f"s{i}" for i in range(6)])
    >>> labels = pd.Series(["ALS", "CN", "ALS", "CN", "ALS", "CN"], index=sites.index)
    >>> check_sites(sites, labels, n_splits=3)
    >>> check_sites(sites.iloc[:4], None, n_splits=3)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Too few subjects ... cross-validation: site 'B' has 1 (at least 3 are needed ...
    """
    if n_splits < 2:
        raise ValueError(f"n_splits must be at least 2, got {n_splits}")
    duplicated = sites.index[sites.index.duplicated()].unique()
    if len(duplicated):
        raise ValueError(
            f"sites has several rows for subject(s) {', '.join(map(str, duplicated[:5]))}: "
            "pass one row per subject (drop the extra sessions first)"
        )
    if sites.isna().any():
        missing = ", ".join(map(str, sites.index[sites.isna()][:5]))
        raise ValueError(f"The site is missing for subject(s) {missing}")

    required = math.ceil(min_per_site * n_splits / (n_splits - 1))
    counts = sites.value_counts().sort_index()
    small = counts[counts < required]
    if len(small):
        listed = ", ".join(f"site {site!r} has {count}" for site, count in small.items())
        raise ValueError(
            f"Too few subjects for harmonisation in {n_splits}-fold cross-validation: {listed} "
            f"(at least {required} are needed so that every training fold holds "
            f"{min_per_site}). Merge small sites (e.g. those sharing a scanner model), leave them "
            "out, use fewer folds, or run without harmonisation."
        )

    if labels is None:
        return
    aligned = labels.reindex(sites.index)
    if aligned.isna().any():
        missing = ", ".join(map(str, sites.index[aligned.isna()][:5]))
        raise ValueError(f"The label is missing for subject(s) {missing}")
    confounded = [
        f"site {site!r} has only {group.iloc[0]!r} ({len(group)} subjects)"
        for site, group in aligned.groupby(sites, sort=True)
        if group.nunique() == 1
    ]
    if confounded:
        raise ValueError(
            f"Site confounded with the label: {'; '.join(confounded)}. ComBat would remove the "
            "group difference together with the site effect. Add subjects of the other groups "
            "at those sites, leave the sites out, or run without harmonisation."
        )


class ComBatHarmonizer(TransformerMixin, BaseEstimator):
    """Remove site effects from features with ComBat (neuroHarmonize), keeping covariates.

    Parameters
    ----------
    site_column : str, default "site"
        Column of ``X`` holding the site (scanner) of each row.
    covariates : sequence of str, default ()
        Numeric columns of ``X`` whose effects ComBat keeps (e.g. age, sex coded 0/1).
        Categorical covariates must be encoded by the caller.
    unseen_site : {"error", "reference"}, default "error"
        What :meth:`transform` does with rows of a site absent at fit: ``"error"`` raises a
        ``ValueError``; ``"reference"`` adjusts them with the parameters of the largest training
        site (the first in sorted order on a tie), see Notes.
    eb : bool, default True
        Estimate the site effects by empirical Bayes (Johnson et al. 2007); False uses the
        per-site least-squares estimates. With a single feature to harmonise there is nothing
        to pool over and the empirical Bayes step is skipped, as neuroHarmonize does.

    Attributes
    ----------
    model_ : dict
        The neuroHarmonize model (``harmonizationLearn``'s first output).
    feature_names_in_ : numpy.ndarray
        The feature columns: every column of ``X`` but the site and the covariates.
    n_features_in_ : int
        Number of feature columns.
    sites_ : numpy.ndarray
        The training sites, sorted.
    site_counts_ : pandas.Series
        Number of training rows of each site, indexed by site (sorted).
    reference_site_ : object
        The largest training site: the one whose parameters ``unseen_site="reference"`` uses.
    constant_features_ : list of str
        Features constant in the training data: left out of ComBat and returned unchanged.

    Notes
    -----
    Every column of ``X`` other than the site and the covariates is a feature and must be
    numeric and finite; leave identifiers out. :meth:`transform` returns the harmonised feature
    columns only, with the index of ``X``.

    *Unseen sites.* neuroHarmonize's ``harmonizationApply`` returns NaN for rows of a site
    it was not fitted on. With ``unseen_site="reference"`` those rows are relabelled as the
    largest training site before applying the model, so they receive that site's location and
    scale correction: the best-estimated one, and the right one when the new scanner behaves
    like that site's. This is an approximation; harmonising a new site properly needs some of
    its data at fit.

    *Constant features.* ComBat divides by each feature's pooled residual variance. For a
    feature constant in the training data that variance is zero (NaN for every feature once the
    empirical Bayes priors pool over features) or rounding noise (distorted priors for every
    feature). Such features carry no site effect to estimate: they are left out of the model
    and returned unchanged, and are listed in ``constant_features_``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame(rng.normal(size=(40, 3)), columns=["f0", "f1", "f2"])
    >>> X["site"] = np.repeat(["A", "B"], 20)
    >>> X.loc[X["site"] == "B", ["f0", "f1", "f2"]] += 5.0
    >>> harmonised = ComBatHarmonizer().fit(X).transform(X)
    >>> harmonised.columns.tolist()
    ['f0', 'f1', 'f2']
    >>> bool(harmonised.groupby(X["site"]).mean().diff().abs().max().max() < 0.5)
    True
    """

    def __init__(
        self,
        site_column: str = "site",
        covariates: Sequence[str] = (),
        unseen_site: str = "error",
        eb: bool = True,
    ) -> None:
        self.site_column = site_column
        self.covariates = covariates
        self.unseen_site = unseen_site
        self.eb = eb

    def fit(self, X: pd.DataFrame, y: Any = None) -> ComBatHarmonizer:  # noqa: N803 (sklearn)
        """Learn the ComBat model of the features of ``X``.

        Parameters
        ----------
        X : pandas.DataFrame
            Feature columns plus ``site_column`` and the covariate columns.
        y : None
            Ignored; present for scikit-learn's API.

        Returns
        -------
        ComBatHarmonizer
            The fitted transformer.

        Raises
        ------
        ValueError
            On an invalid parameter, a missing or non-numeric column, a non-finite value, a
            constant covariate, fewer than two sites, a site with fewer than two rows, or no
            varying feature.
        """
        if self.unseen_site not in UNSEEN_SITE_OPTIONS:
            raise ValueError(
                f"unseen_site must be one of {UNSEEN_SITE_OPTIONS}, got {self.unseen_site!r}"
            )
        features, sites, covariates = self._split(X, self._feature_columns(X))

        counts = sites.value_counts().sort_index().rename("n_rows")
        if len(counts) < 2:
            raise ValueError(
                "ComBat needs at least two sites; the data being fitted has only "
                f"{list(counts.index)}: there is no site effect to remove, run without "
                "harmonisation."
            )
        small = counts[counts < MIN_ROWS_PER_SITE]
        if len(small):
            listed = ", ".join(f"site {site!r} has {count} row(s)" for site, count in small.items())
            raise ValueError(
                f"ComBat needs at least {MIN_ROWS_PER_SITE} rows per site in the data it is "
                f"fitted on: {listed}. Merge small sites (e.g. those sharing a scanner model), "
                "leave them out, or run without harmonisation."
            )
        for name, column in covariates.items():
            if column.nunique() < 2:
                raise ValueError(
                    f"Covariate {name!r} is constant in the data being fitted: leave it out"
                )

        values = features.to_numpy(dtype=float)
        constant = np.ptp(values, axis=0) == 0
        if constant.all():
            raise ValueError("Every feature is constant in the data being fitted")

        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=_MATRIX_WARNING, category=PendingDeprecationWarning
            )
            # Any seed but None: with None, harmonizationLearn reseeds numpy's global generator
            # (np.random.seed(None)); the linear ComBat model draws no random numbers.
            self.model_, _ = harmonizationLearn(
                values[:, ~constant],
                self._covars(sites, covariates),
                eb=self.eb and int((~constant).sum()) > 1,
                seed=0,
            )
        self.feature_names_in_ = np.asarray(features.columns, dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        self.constant_features_ = list(features.columns[constant])
        self.site_counts_ = counts
        self.sites_ = counts.index.to_numpy()
        self.reference_site_ = counts.idxmax()
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:  # noqa: N803 (sklearn)
        """Remove the fitted site effects from the features of ``X``.

        Parameters
        ----------
        X : pandas.DataFrame
            The feature columns seen at fit plus ``site_column`` and the covariate columns.

        Returns
        -------
        pandas.DataFrame
            The harmonised feature columns, in the order seen at fit, with the index of ``X``.

        Raises
        ------
        ValueError
            If a column is missing, extra or non-numeric, a value is not finite, or (with
            ``unseen_site="error"``) a row belongs to a site absent at fit.
        """
        check_is_fitted(self)
        columns = set(self._feature_columns(X))
        missing = [name for name in self.feature_names_in_ if name not in columns]
        extra = sorted(columns - set(self.feature_names_in_))
        if missing or extra:
            raise ValueError(
                f"X must have the feature columns seen at fit: missing {missing}, extra {extra}"
            )
        features, sites, covariates = self._split(X, list(self.feature_names_in_))

        unseen = sorted(set(sites) - set(self.sites_))
        if unseen and self.unseen_site == "error":
            raise ValueError(
                f"Site(s) {unseen} were not in the data ComBat was fitted on. Fit on data that "
                "includes them, or set unseen_site='reference' to adjust them with the "
                f"parameters of the largest training site ({self.reference_site_!r})."
            )
        sites = sites.where(sites.isin(self.sites_), self.reference_site_)

        fitted = [name for name in self.feature_names_in_ if name not in self.constant_features_]
        # harmonizationApply builds its design matrix from the sites present in the data and
        # fails unless every training site is there (neuroHarmonize issue #50); it adjusts each
        # row on its own, so one placeholder row per absent site is appended and dropped again.
        absent = sorted(set(self.sites_) - set(sites))
        placeholders = pd.DataFrame({"SITE": absent, **dict.fromkeys(covariates.columns, 0.0)})
        harmonised = harmonizationApply(
            np.vstack(
                [features[fitted].to_numpy(dtype=float), np.zeros((len(absent), len(fitted)))]
            ),
            pd.concat([self._covars(sites, covariates), placeholders], ignore_index=True),
            self.model_,
        )[: len(sites)]
        result = pd.concat(
            [
                pd.DataFrame(harmonised, index=X.index, columns=fitted),
                features[self.constant_features_],
            ],
            axis=1,
        )
        return result[list(self.feature_names_in_)]

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        """Return the names of the harmonised features (the feature columns seen at fit).

        Parameters
        ----------
        input_features : sequence of str or None, default None
            If given, must equal ``feature_names_in_``.

        Returns
        -------
        numpy.ndarray
            The feature names, as objects.
        """
        check_is_fitted(self)
        if input_features is not None and list(input_features) != list(self.feature_names_in_):
            raise ValueError("input_features must equal feature_names_in_")
        return self.feature_names_in_.copy()

    def _feature_columns(self, table: pd.DataFrame) -> list[str]:
        """Check the parameters and the type of ``table``; return its feature columns."""
        if not isinstance(table, pd.DataFrame):
            raise TypeError(
                "X must be a pandas DataFrame holding the features, the site column and the "
                f"covariate columns, got {type(table).__name__}"
            )
        if isinstance(self.covariates, str):
            raise ValueError(
                f"covariates must be a sequence of column names, e.g. ({self.covariates!r},)"
            )
        if self.site_column in self.covariates:
            raise ValueError(f"The site column {self.site_column!r} cannot be a covariate")
        missing = [
            name for name in (self.site_column, *self.covariates) if name not in table.columns
        ]
        if missing:
            raise ValueError(f"X lacks the column(s) {missing} (site column and covariates)")
        excluded = {self.site_column, *self.covariates}
        return [name for name in table.columns if name not in excluded]

    def _split(
        self, table: pd.DataFrame, feature_columns: list[str]
    ) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame]:
        """Split ``table`` into checked features, sites and covariates."""
        covariates, features = table[list(self.covariates)], table[feature_columns]
        for kind, frame in (("covariate", covariates), ("feature", features)):
            numeric = frame.dtypes.map(pd.api.types.is_numeric_dtype)
            if not numeric.all():
                hint = (
                    "encode it numerically (e.g. sex as 0/1)"
                    if kind == "covariate"
                    else "pass only features, the site column and covariates"
                )
                raise ValueError(
                    f"The {kind} column(s) {list(frame.columns[~numeric])} are not numeric: {hint}"
                )
            finite = np.isfinite(frame.to_numpy(dtype=float, na_value=np.nan)).all(axis=0)
            if not finite.all():
                raise ValueError(
                    f"The {kind} column(s) {list(frame.columns[~finite])} hold missing or "
                    "infinite values"
                )
        sites = table[self.site_column].astype(object)
        if sites.isna().any():
            raise ValueError(f"The site column {self.site_column!r} has missing values")
        return features, sites, covariates

    def _covars(self, sites: pd.Series, covariates: pd.DataFrame) -> pd.DataFrame:
        """Build neuroHarmonize's covariate table: ``SITE`` then the covariates, by position."""
        return pd.DataFrame(
            {"SITE": sites.to_numpy(), **{name: col.to_numpy() for name, col in covariates.items()}}
        )

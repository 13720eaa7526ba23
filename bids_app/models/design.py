"""The design of a group-level analysis: features, target, subjects, sites and covariates.

One row per session. Sessions of one subject share a ``group`` (the participant), so that the
cross-validation keeps them in one fold (Coll 2023 §2.1: "all MRI scans from a given patient
were included in the same fold"). Every row or column left out is listed with its reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from bids_app.errors import DataError

#: Name of the site column in :attr:`GroupDesign.meta` (what the ComBat step reads).
SITE = "site"
#: Feature columns missing in more than this share of the sessions are dropped (listed), the
#: remaining missing values exclude their session.
MAX_MISSING_FRACTION = 0.1
#: Identifier columns of the participant feature tables.
ID_COLUMNS = ("participant_id", "session_id")


class DesignError(DataError):
    """The group table cannot give a design (the message says why and what to do)."""


#: Fewest classes of a multi-class target (two classes are a binary target: --positive-label).
MIN_CLASSES = 3


@dataclass(frozen=True)
class Target:
    """What the classifiers predict.

    Without a positive label and a threshold the target is multi-class: every value of the
    column is a class (the stage of the disease in the brainstem/ALS PhD proposal, objective c).

    Parameters
    ----------
    column : str
        Column of participants.tsv (or sessions.tsv).
    positive_label : str or None
        The class called positive (for a categorical column).
    threshold : float or None
        For a numeric column: values ``>= threshold`` are positive (EDSS >= 3.0 in Coll 2023).
    classes : tuple of str
        The classes of a multi-class target, in order (class ``k`` is coded ``k``); empty: every
        value of the column, numbers in numeric order and text in alphabetical order.
    ordinal : bool
        The classes are ordered as listed (``--ordinal``: King's stages 1 < 2 < 3 < 4), which
        adds the ordinal metrics.
    """

    column: str
    positive_label: str | None = None
    threshold: float | None = None
    classes: tuple[str, ...] = ()
    ordinal: bool = False

    @property
    def multiclass(self) -> bool:
        """Whether every value is a class (no positive label, no threshold)."""
        return self.positive_label is None and self.threshold is None

    def describe(self) -> str:
        """Say in words which rows are positive, or which classes there are."""
        if self.threshold is not None:
            return f"{self.column} >= {self.threshold:g}"
        if self.multiclass:
            return f"{self.column} in {{{', '.join(self.classes)}}}"
        return f"{self.column} == {self.positive_label}"


@dataclass(frozen=True)
class GroupDesign:
    """Rows, features and labels of a group-level analysis.

    Parameters
    ----------
    features : pandas.DataFrame
        One row per session (index ``sub-X[_ses-Y]``), numeric feature columns only.
    meta : pandas.DataFrame
        Same index: ``participant_id``, ``site`` when there is one, and the covariates encoded as
        numbers (categorical ones as 0/1 indicator columns).
    y : numpy.ndarray
        1 for positive rows, 0 otherwise; for a multi-class target, the index of the row's class
        in ``target.classes``.
    feature_sets : dict of str to list of str
        Named sets of feature columns (a family, or families joined with ``+``).
    covariates : tuple of str
        The covariate columns of ``meta``.
    exclusions : pandas.DataFrame
        ``participant_id, session_id, reason`` of the sessions left out.
    dropped_features : pandas.DataFrame
        ``feature, reason`` of the feature columns left out.
    target : Target
        What ``y`` means (a multi-class target with its classes).
    """

    features: pd.DataFrame
    meta: pd.DataFrame
    y: np.ndarray
    feature_sets: dict[str, list[str]]
    covariates: tuple[str, ...]
    exclusions: pd.DataFrame
    dropped_features: pd.DataFrame
    target: Target

    @property
    def groups(self) -> np.ndarray:
        """The participant of every row (the unit that the folds keep together)."""
        return self.meta["participant_id"].to_numpy()

    @property
    def has_sites(self) -> bool:
        """Whether the rows come from more than one site."""
        return SITE in self.meta and self.meta[SITE].nunique() > 1

    def X(self, feature_set: str) -> pd.DataFrame:  # noqa: N802 (scikit-learn's name)
        """Return a feature set's columns with the site and covariate columns the pipeline uses.

        Parameters
        ----------
        feature_set : str
            Key of :attr:`feature_sets`.

        Returns
        -------
        pandas.DataFrame
            The features, then ``site`` (when there are sites) and the covariates.
        """
        extra = ([SITE] if SITE in self.meta else []) + list(self.covariates)
        return self.features[self.feature_sets[feature_set]].join(self.meta[extra])


def _missing(values: pd.Series) -> pd.Series:
    return values.isna() | values.astype(str).str.strip().isin(["", "n/a", "nan"])


def _is_numeric(values: pd.Series) -> bool:
    return bool(pd.to_numeric(values, errors="coerce").notna().all())


def _class_name(value: object, numeric: bool) -> str:
    return f"{float(value):g}" if numeric else str(value).strip()


def binary_target(values: pd.Series, target: Target) -> pd.Series:
    """Turn a column into 1 (positive), 0 (negative) or NaN (missing).

    Parameters
    ----------
    values : pandas.Series
        The target column.
    target : Target
        Positive label or threshold.

    Returns
    -------
    pandas.Series
        Float 1.0 / 0.0 / NaN, same index.

    Raises
    ------
    DesignError
        If a threshold is given for a non-numeric column, the positive label never occurs, or
        neither is given.

    Examples
    --------
    >>> binary_target(pd.Series([1.0, 3.0, None, 6.5]), Target("edss", threshold=3.0)).tolist()
    [0.0, 1.0, nan, 1.0]
    >>> binary_target(pd.Series(["ALS", "CN", None]), Target("dx", "ALS")).tolist()
    [1.0, 0.0, nan]
    """
    missing = _missing(values)
    if target.threshold is not None:
        numbers = pd.to_numeric(values.where(~missing), errors="coerce")
        bad = numbers.isna() & ~missing
        if bad.any():
            raise DesignError(
                f"target column {target.column!r} has non-numeric values "
                f"{sorted(values[bad].astype(str).unique())[:5]}; --threshold needs numbers"
            )
        return (numbers >= target.threshold).astype(float).where(~missing)
    if target.positive_label is None:
        levels = sorted(values[~missing].astype(str).unique())
        raise DesignError(
            f"target column {target.column!r}: say which class is positive with "
            f"--positive-label (values: {levels}), or give --threshold for a numeric column"
        )
    labels = values.astype(str).str.strip()
    if not (labels[~missing] == target.positive_label).any():
        levels = sorted(labels[~missing].unique())
        raise DesignError(
            f"target column {target.column!r} never equals --positive-label "
            f"{target.positive_label!r} (values: {levels}); classification needs both classes: "
            "give one of these values with --positive-label"
        )
    return (labels == target.positive_label).astype(float).where(~missing)


def multiclass_target(values: pd.Series, target: Target) -> tuple[pd.Series, tuple[str, ...]]:
    """Code every value of a multi-class column by its class: 0, 1, 2... or NaN.

    The classes are ``target.classes`` in that order, or else every value of the column: numbers
    in numeric order (stages 1 < 2 < 3 < 4), text in alphabetical order. A numeric column's
    values are compared as numbers (``"2"`` and ``"2.0"`` are one class).

    Parameters
    ----------
    values : pandas.Series
        The target column.
    target : Target
        A multi-class target.

    Returns
    -------
    codes : pandas.Series
        Float class codes, NaN where the value is missing or not among ``target.classes``.
    classes : tuple of str
        The class names, in the order of the codes.

    Raises
    ------
    DesignError
        If a value of ``target.classes`` never occurs, or there are fewer than
        :data:`MIN_CLASSES` classes (a binary target needs --positive-label or --threshold).

    Examples
    --------
    >>> codes, classes = multiclass_target(pd.Series(["2", "10", None, "1"]), Target("stage"))
    >>> codes.tolist(), classes
    ([1.0, 2.0, nan, 0.0], ('1', '2', '10'))
    >>> multiclass_target(pd.Series(list("abcd")), Target("g", classes=("c", "b", "a")))[0].tolist()
    [2.0, 1.0, 0.0, nan]
    """
    missing = _missing(values)
    present = values[~missing]
    given = pd.Series(target.classes, dtype=object)
    numeric = _is_numeric(present) and _is_numeric(given)
    names = present.map(lambda value: _class_name(value, numeric))
    levels = sorted(set(names), key=float if numeric else str)
    if target.classes:
        wanted = [_class_name(value, numeric) for value in target.classes]
        absent = [c for c, w in zip(target.classes, wanted, strict=True) if w not in levels]
        if absent:
            raise DesignError(
                f"target column {target.column!r} never takes the value(s) {absent} of "
                f"--target-classes (values: {levels}); give values of the column"
            )
        levels = wanted
    if len(levels) < MIN_CLASSES:
        raise DesignError(
            f"target column {target.column!r} has {len(levels)} class(es) {levels}: for a binary "
            "target say which class is positive with --positive-label, or give --threshold for "
            f"a numeric column; a multi-class target needs at least {MIN_CLASSES} classes"
        )
    codes = names.map({name: float(code) for code, name in enumerate(levels)})
    return codes.reindex(values.index), tuple(levels)


def encode_target(values: pd.Series, target: Target) -> tuple[pd.Series, Target]:
    """Turn a column into the labels of a binary or multi-class target.

    Parameters
    ----------
    values : pandas.Series
        The target column.
    target : Target
        Positive label, threshold, or neither (multi-class).

    Returns
    -------
    labels : pandas.Series
        Float labels (0/1, or class codes), NaN where missing or not among the classes.
    target : Target
        The target; a multi-class one with its classes.

    Raises
    ------
    DesignError
        From :func:`binary_target` or :func:`multiclass_target`.
    """
    if not target.multiclass:
        return binary_target(values, target), target
    codes, classes = multiclass_target(values, target)
    return codes, replace(target, classes=classes)


def encode_covariates(table: pd.DataFrame, covariates: Sequence[str]) -> pd.DataFrame:
    """Encode covariates as numbers: numeric columns as they are, categories as 0/1 columns.

    A categorical covariate with levels ``a < b < c`` becomes ``<name>_b`` and ``<name>_c``
    (the first level is the reference), as in a regression design.

    Parameters
    ----------
    table : pandas.DataFrame
        Holds the covariate columns.
    covariates : sequence of str
        Column names.

    Returns
    -------
    pandas.DataFrame
        Numeric columns, NaN where the covariate is missing.

    Examples
    --------
    >>> encode_covariates(pd.DataFrame({"age": [60, 70], "sex": ["F", "M"]}), ["age", "sex"])
       age  sex_M
    0   60    0.0
    1   70    1.0
    """
    columns = {}
    for name in covariates:
        values = table[name]
        numbers = pd.to_numeric(values, errors="coerce")
        if numbers.notna().sum() == values.notna().sum():
            columns[name] = numbers
            continue
        levels = sorted(values.dropna().astype(str).unique())
        for level in levels[1:]:
            columns[f"{name}_{level}"] = (
                (values.astype(str) == level).astype(float).where(values.notna())
            )
    return pd.DataFrame(columns, index=table.index)


def _session_keys(table: pd.DataFrame) -> pd.Index:
    keys = table["participant_id"].astype(str)
    if "session_id" in table:
        sessions = table["session_id"].fillna("").astype(str)
        keys = keys.where(sessions == "", keys + "_" + sessions)
    return pd.Index(keys, name="session")


def join_families(tables: Mapping[str, pd.DataFrame]) -> tuple[pd.DataFrame, dict[str, list]]:
    """Join the per-family session tables into one, side by side.

    Parameters
    ----------
    tables : mapping of str to pandas.DataFrame
        Family to its stacked session table (``participant_id``, maybe ``session_id``, features).

    Returns
    -------
    features : pandas.DataFrame
        Index ``sub-X[_ses-Y]``; ``participant_id``, ``session_id`` and every feature column (a
        name that two families share is prefixed with ``<family>_`` in both).
    families : dict of str to list of str
        Family to its feature columns.
    """
    names = [c for t in tables.values() for c in t.columns if c not in ID_COLUMNS]
    shared = {c for c in names if names.count(c) > 1}
    frames, families, ids = [], {}, []
    for family, table in tables.items():
        table = table.set_index(_session_keys(table))
        renamed = {c: f"{family}_{c}" for c in table.columns if c in shared}
        columns = [renamed.get(c, c) for c in table.columns if c not in ID_COLUMNS]
        frames.append(table.drop(columns=list(ID_COLUMNS), errors="ignore").rename(columns=renamed))
        ids.append(table.reindex(columns=list(ID_COLUMNS)))
        families[family] = columns
    joined = pd.concat(frames, axis=1, join="outer")
    id_table = pd.concat(ids).groupby(level=0).first().reindex(joined.index)
    return id_table.join(joined), families


def build_design(
    features: pd.DataFrame,
    families: Mapping[str, Sequence[str]],
    clinical: pd.DataFrame,
    target: Target,
    feature_sets: Sequence[str],
    covariates: Sequence[str] = (),
    site_column: str | None = None,
    max_missing_fraction: float = MAX_MISSING_FRACTION,
) -> GroupDesign:
    """Build the design of a classification: rows, features, labels, sites and covariates.

    Sessions are left out (and listed) when their target, site or a covariate is missing, or a
    feature of the union of the feature sets is missing. Feature columns missing in more than
    ``max_missing_fraction`` of the sessions (e.g. lesion load where few sessions have a lesion
    mask) or constant over the sessions are dropped first (and listed).

    Parameters
    ----------
    features : pandas.DataFrame
        From :func:`join_families`.
    families : mapping of str to sequence of str
        Family to its columns (from :func:`join_families`).
    clinical : pandas.DataFrame
        One row per session, same index as ``features``: participants.tsv values, overridden by
        sessions.tsv values where both have a column.
    target : Target
        What to predict.
    feature_sets : sequence of str
        Families or ``+``-joined families (``volumes+thickness``).
    covariates : sequence of str
        Clinical columns kept as covariates (ComBat keeps their effects).
    site_column : str or None
        Clinical column naming the acquisition site.
    max_missing_fraction : float
        See above.

    Returns
    -------
    GroupDesign
        The design.

    Raises
    ------
    DesignError
        For an absent column, an unknown family, a target with one class, or no rows left.
    """
    for name, role in [(target.column, "--target")] + [(c, "--covariates") for c in covariates]:
        if name not in clinical:
            raise DesignError(
                f"{role}: no column {name!r} in participants.tsv or sessions.tsv "
                f"(columns: {sorted(clinical.columns)})"
            )
    if site_column is not None and site_column not in clinical:
        raise DesignError(
            f"--site-column: no column {site_column!r} in participants.tsv "
            f"(columns: {sorted(clinical.columns)})"
        )
    sets = {}
    for name in feature_sets:
        unknown = [f for f in name.split("+") if f not in families]
        if unknown:
            raise DesignError(
                f"feature set {name!r}: no participant-level features of {unknown} "
                f"(available: {sorted(families)})"
            )
        sets[name] = [c for family in name.split("+") for c in families[family]]
    used = list(dict.fromkeys(c for columns in sets.values() for c in columns))
    clinical = clinical.reindex(features.index)

    values = features[used].apply(pd.to_numeric, errors="coerce")
    dropped = []
    fraction = values.isna().mean()
    for column in fraction.index[fraction > max_missing_fraction]:
        reason = f"missing in {fraction[column]:.0%} of the sessions"
        dropped.append({"feature": column, "reason": reason})
    constant = values.nunique(dropna=True) <= 1
    for column in constant.index[constant & (fraction <= max_missing_fraction)]:
        dropped.append({"feature": column, "reason": "the same value in every session"})
    dropped_names = {row["feature"] for row in dropped}
    values = values.drop(columns=list(dropped_names))
    sets = {name: [c for c in cols if c not in dropped_names] for name, cols in sets.items()}

    y, target = encode_target(clinical[target.column], target)
    meta = pd.DataFrame({"participant_id": features["participant_id"]}, index=features.index)
    if site_column is not None:
        meta[SITE] = clinical[site_column].astype("string")
    encoded = encode_covariates(clinical, covariates)
    meta = meta.join(encoded)

    reasons = pd.Series("", index=features.index)

    def leave_out(mask: pd.Series, reason: str) -> None:
        reasons[mask & (reasons == "")] = reason

    leave_out(_missing(clinical[target.column]), f"no value of the target {target.column!r}")
    leave_out(y.isna(), f"{target.column!r} is not among --target-classes {list(target.classes)}")
    if site_column is not None:
        leave_out(meta[SITE].isna(), f"no site ({site_column!r})")
    for column in encoded:
        leave_out(encoded[column].isna(), f"no value of the covariate {column!r}")
    all_missing = values.isna().all(axis=1)
    leave_out(all_missing, "no features (participant level not run or failed)")
    some_missing = values.isna().any(axis=1)
    for key in some_missing.index[some_missing & (reasons == "")]:
        columns = values.columns[values.loc[key].isna()]
        reasons[key] = f"missing features: {', '.join(columns[:5])}" + (
            f" and {len(columns) - 5} more" if len(columns) > 5 else ""
        )
    kept = reasons == ""
    exclusions = pd.DataFrame(
        {
            "participant_id": features.loc[~kept, "participant_id"],
            "session_id": features.loc[~kept, "session_id"] if "session_id" in features else pd.NA,
            "reason": reasons[~kept],
        }
    ).reset_index(drop=True)
    if not kept.any():
        raise DesignError(
            "no session is left for the analysis: "
            + "; ".join(f"{n} x {r}" for r, n in reasons.value_counts().items())
        )
    y_kept = y[kept].to_numpy(dtype=int)
    if target.multiclass and len(np.unique(y_kept)) < len(target.classes):
        lost = sorted(set(target.classes) - {target.classes[k] for k in y_kept})
        raise DesignError(
            f"the class(es) {lost} of the target {target.column!r} have no session left among "
            f"the {int(kept.sum())} sessions with every value; classification needs every "
            "class: leave them out with --target-classes, or add sessions"
        )
    if len(np.unique(y_kept)) < 2:
        raise DesignError(
            f"the target {target.describe()} has one class only among the "
            f"{int(kept.sum())} sessions left; classification needs both"
        )
    return GroupDesign(
        features=values[kept],
        meta=meta[kept],
        y=y_kept,
        feature_sets=sets,
        covariates=tuple(encoded.columns),
        exclusions=exclusions,
        dropped_features=pd.DataFrame(dropped, columns=["feature", "reason"]),
        target=target,
    )


def prediction_table(
    features: pd.DataFrame,
    clinical: pd.DataFrame,
    needed: Sequence[str],
    site_column: str | None,
    covariates: Sequence[str],
    encoded_covariates: Sequence[str],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Build the input of saved models for new sessions (external validation).

    Parameters
    ----------
    features : pandas.DataFrame
        From :func:`join_families`.
    clinical : pandas.DataFrame
        Per-session clinical values (same index).
    needed : sequence of str
        Feature columns the models use.
    site_column : str or None
        Clinical column of the site (None when the models hold no ComBat).
    covariates : sequence of str
        Clinical covariate columns to encode.
    encoded_covariates : sequence of str
        The encoded covariate columns the models expect.

    Returns
    -------
    X : pandas.DataFrame
        Rows with every needed value: the features, ``site`` and the encoded covariates.
    exclusions : pandas.DataFrame
        ``participant_id, session_id, reason`` of the sessions left out.

    Raises
    ------
    DesignError
        When a needed feature, the site or a covariate column is absent.
    """
    absent = [c for c in needed if c not in features]
    if absent:
        raise DesignError(
            f"the saved models need {len(absent)} feature column(s) this dataset lacks, e.g. "
            f"{absent[:5]}; run the participant level with the same --features"
        )
    table = features[list(needed)].apply(pd.to_numeric, errors="coerce")
    if site_column is not None:
        if site_column not in clinical:
            raise DesignError(f"--site-column: no column {site_column!r} in participants.tsv")
        table[SITE] = clinical[site_column].astype("string")
    missing_covariates = [c for c in covariates if c not in clinical]
    if missing_covariates:
        raise DesignError(f"--covariates: no column(s) {missing_covariates} in participants.tsv")
    encoded = encode_covariates(clinical, covariates).reindex(columns=list(encoded_covariates))
    table = table.join(encoded)
    incomplete = table.isna().any(axis=1)
    exclusions = pd.DataFrame(
        {
            "participant_id": features.loc[incomplete, "participant_id"],
            "reason": [
                "missing: " + ", ".join(table.columns[table.loc[key].isna()][:5])
                for key in table.index[incomplete]
            ],
        }
    ).reset_index(drop=True)
    return table[~incomplete], exclusions

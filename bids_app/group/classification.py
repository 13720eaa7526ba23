"""Group-level classification: design → nested cross-validation → tables, models, results.

The thin layer between the configuration and the estimators of :mod:`bids_app.models`: it picks
the feature sets, runs every classifier on every set, writes the tables (Turrisi 2024 Tables 1, 3
and 4 among them), the out-of-fold predictions and the saved models, and returns what the report
shows (:mod:`bids_app.reports.classification` draws it). ``--apply-models`` applies saved models
to this dataset instead.

A target without ``--positive-label`` or ``--threshold`` is multi-class: the stage of the disease
(King's stage 1-4 in ALS; the brainstem/ALS PhD proposal, objective c, "predict the stage of the
disease"). Every classifier of the comparison is multi-class natively (the SVMs one-vs-one, the
others directly; the DNN has one softmax output per class), SMOTE oversamples every class but
the largest, and the folds stay stratified (by class) and participant-grouped. The metrics are
macro-averaged with a one-vs-rest AUC per class, and the confusion matrices are a table of their
own. Saved multi-class models cannot be applied with ``--apply-models`` yet (refused).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import clone

from bids_app import __version__
from bids_app.config import Config
from bids_app.derivatives.naming import bundle_path
from bids_app.derivatives.writer import DerivativesWriter, software_versions
from bids_app.models.classifiers import (
    CLASSIFIERS,
    TURRISI_TABLE1,
    ClassifierSpec,
    build_pipeline,
    fixed_spec,
)
from bids_app.models.crossval import (
    CrossValidationError,
    CVResult,
    check_folds,
    check_smote,
    nested_cross_validate,
    outer_splits,
    summarise,
)
from bids_app.models.design import (
    SITE,
    DesignError,
    GroupDesign,
    Target,
    binary_target,
    encode_target,
    prediction_table,
)
from bids_app.models.harmonization import check_sites
from bids_app.models.metrics import METRICS, metric_names
from bids_app.models.parallel import parallel_map
from bids_app.models.persistence import (
    MANIFEST_FIX,
    ModelBundleError,
    SavedModel,
    apply_model,
    load_models,
    manifest,
    model_entry,
)
from bids_app.models.tables import best_models, chosen_parameters, confusion_table, f1_table

LOGGER = logging.getLogger("bids_app.group")

#: The logistic-regression baseline of Coll et al. (2023) §2.4 and §3.2: the volumes of WM, GM,
#: the lateral ventricles, brain stem and cerebellum (one volume in the paper, two here), the
#: total intracranial volume and the lesion load (``volumes`` columns; lesion only with masks).
COLL2023_VOLUMES = ("wm", "gm", "lateral_ventricles", "brainstem", "cerebellum", "tiv", "lesion")
#: Feature set and classifier of that baseline, run beside the networks of ``--dl-models``.
BASELINE_SET, BASELINE_CLASSIFIER = "volumes_coll2023", "logistic_regression"

_METRIC_COLUMNS = {
    "f1": {"Description": "F1 score of the positive class"},
    "precision": {"Description": "positive predictive value"},
    "recall": {"Description": "sensitivity (recall of the positive class)"},
    "auc": {"Description": "area under the ROC curve (from probabilities or decision values)"},
    "auprc": {"Description": "average precision (area under the precision-recall curve)"},
    "balanced_accuracy": {"Description": "mean of sensitivity and specificity"},
    "accuracy": {"Description": "fraction of correct predictions, (TP + TN) / n"},
    "sensitivity": {"Description": "TP / (TP + FN)"},
    "specificity": {"Description": "TN / (TN + FP)"},
    "tn": {"Description": "true negatives"},
    "fp": {"Description": "false positives"},
    "fn": {"Description": "false negatives"},
    "tp": {"Description": "true positives"},
}
_MULTICLASS_METRIC_COLUMNS = {
    "f1": {"Description": "macro-F1: unweighted mean of the classes' F1 scores"},
    "precision": {"Description": "unweighted mean of the classes' precision"},
    "recall": {"Description": "unweighted mean of the classes' recall"},
    "auc": {"Description": "unweighted mean of the classes' one-vs-rest ROC AUC"},
    "auprc": {"Description": "unweighted mean of the classes' one-vs-rest average precision"},
    "balanced_accuracy": {"Description": "unweighted mean of the classes' recall"},
}
_ORDINAL_METRIC_COLUMNS = {
    "mae": {"Description": "mean absolute error in classes, mean |true - predicted| (ordinal)"},
    "qwk": {"Description": "Cohen's kappa with quadratic weights (ordinal; 1 perfect, 0 chance)"},
}


def _confusion_columns(classes: Sequence[str]) -> dict[str, dict]:
    """Describe the columns of the multi-class confusion table."""
    return {
        "true": {"Description": "true class (one row per class and model)"},
        **{
            name: {"Description": f"sessions of the true class predicted as {name} (out of fold)"}
            for name in classes
        },
    }


def metric_columns(classes: Sequence[str], ordinal: bool = False) -> dict[str, dict]:
    """Describe the metric columns of a binary (no classes) or multi-class target.

    Parameters
    ----------
    classes : sequence of str
        The classes of a multi-class target; empty for a binary one.
    ordinal : bool
        The classes are ordered (the ordinal metrics are described too).

    Returns
    -------
    dict of str to dict
        Column to its BIDS description.
    """
    if not classes:
        return _METRIC_COLUMNS
    return {
        **_MULTICLASS_METRIC_COLUMNS,
        **(_ORDINAL_METRIC_COLUMNS if ordinal else {}),
        **{
            f"auc_{name}": {"Description": f"one-vs-rest ROC AUC of the class {name}"}
            for name in classes
        },
    }


@dataclass(frozen=True)
class ClassificationResult:
    """The comparison of the classifiers, for the report.

    Parameters
    ----------
    summary : pandas.DataFrame
        Metrics of every model, mean and SD over folds.
    best : pandas.DataFrame
        Best model per feature set; for a binary target with its summed confusion matrix.
    parameters : pandas.DataFrame
        Hyper-parameters the inner grid search chose.
    best_predictions : dict of str to pandas.DataFrame
        Best classical model of each feature set to its out-of-fold predictions (first repeat).
    labels : tuple of str
        Names of the negative and positive class, or the classes of a multi-class target.
    n_rows, n_participants : int
        Sessions and participants in the design.
    target : str
        The target in words.
    counts : dict
        Class name to its sessions.
    cv_folds, cv_repeats, seed : int
        The outer cross-validation.
    harmonized : bool
        Whether ComBat ran on the training folds.
    smote_k : int
        SMOTE's neighbours (0: no SMOTE).
    exclusions : pandas.DataFrame
        Sessions left out.
    dropped_features : pandas.DataFrame
        Feature columns left out.
    metrics : tuple of str
        The metric columns (:func:`~bids_app.models.metrics.metric_names`).
    confusion : pandas.DataFrame or None
        Multi-class target: the confusion matrix of every model (out of fold, first repeat),
        from :func:`~bids_app.models.tables.confusion_table`; None for a binary target.
    """

    summary: pd.DataFrame
    best: pd.DataFrame
    parameters: pd.DataFrame
    best_predictions: dict[str, pd.DataFrame]
    labels: tuple[str, ...]
    n_rows: int
    n_participants: int
    target: str
    counts: dict
    cv_folds: int
    cv_repeats: int
    seed: int
    harmonized: bool
    smote_k: int
    exclusions: pd.DataFrame
    dropped_features: pd.DataFrame
    metrics: tuple[str, ...] = METRICS
    confusion: pd.DataFrame | None = None

    @property
    def multiclass(self) -> bool:
        """Whether the target has more than two classes."""
        return self.confusion is not None


@dataclass(frozen=True)
class ExternalResult:
    """Saved models applied to this dataset (``--apply-models``).

    Parameters
    ----------
    directory : Path
        The models folder.
    n_models : int
        Models applied.
    target : str
        The models' target in words.
    target_column : str
        Its column.
    metrics : pandas.DataFrame
        Metrics on this dataset (empty without the target column).
    """

    directory: Path
    n_models: int
    target: str
    target_column: str
    metrics: pd.DataFrame


def default_feature_sets(families: Sequence[str]) -> list[str]:
    """Each feature family but the histograms, and all of them together.

    Parameters
    ----------
    families : sequence of str
        Families with participant-level tables.

    Returns
    -------
    list of str
        Feature-set names.

    Examples
    --------
    >>> default_feature_sets(["volumes", "thickness", "histogram"])
    ['volumes', 'thickness', 'volumes+thickness']
    """
    usable = [f for f in families if f != "histogram"]
    return usable + (["+".join(usable)] if len(usable) > 1 else [])


#: The representation of Turrisi 2024 Table 1 that a feature set is: the radiomics, and the
#: penultimate (DL7) or last (DL8) convolution of CNN8, pretrained (``--feature-extractor``) or
#: trained at the group level (its embedding is DL7).
TABLE1_ROWS = {
    "radiomics": "radiomics",
    "pretrained_dl7": "dl7",
    "deep_cnn8": "dl7",
    "pretrained_dl8": "dl8",
}


def classifier_spec(name: str, feature_set: str, hyperparameters: str = "grid") -> ClassifierSpec:
    """Return a classifier with its grid, or with Turrisi 2024 Table 1's fixed values.

    Parameters
    ----------
    name : str
        A key of :data:`~bids_app.models.classifiers.CLASSIFIERS`.
    feature_set : str
        The feature set it is trained on.
    hyperparameters : {"grid", "turrisi2024-table1"}
        ``--hyperparameters``; Table 1 has values for the radiomics and CNN sets of
        :data:`TABLE1_ROWS` and the classifiers but the DNNs and the logistic regression, the
        others keep their grid.

    Returns
    -------
    ClassifierSpec
        The classifier.

    Examples
    --------
    >>> classifier_spec("knn", "radiomics", "turrisi2024-table1").grid
    {'n_neighbors': (7,)}
    >>> classifier_spec("knn", "volumes", "turrisi2024-table1").grid
    {'n_neighbors': (3, 5, 7)}
    """
    spec = CLASSIFIERS[name]
    row = TABLE1_ROWS.get(feature_set)
    if hyperparameters != "turrisi2024-table1" or row is None:
        return spec
    values = TURRISI_TABLE1[row].get(name)
    return spec if values is None else fixed_spec(spec, values)


def covariates_for(config: Config, columns: Collection[str]) -> tuple[str, ...]:
    """Return ``--covariates``, or age and sex where the clinical table has them.

    Parameters
    ----------
    config : Config
        The run configuration.
    columns : collection of str
        Columns of the clinical table.

    Returns
    -------
    tuple of str
        The covariate columns.
    """
    return config.group.covariates or tuple(c for c in ("age", "sex") if c in columns)


def _params(config: Config, design: GroupDesign, harmonize: bool) -> dict:
    return {
        "target": design.target.describe(),
        "feature_sets": {k: len(v) for k, v in design.feature_sets.items()},
        "classifiers": list(config.group.classifiers),
        "cv_folds": config.group.cv_folds,
        "cv_repeats": config.group.cv_repeats,
        "split_seed": config.seed,
        "smote_k": config.group.smote_k or None,
        "hyperparameters": config.group.hyperparameters,
        "harmonization": "combat" if harmonize else "none",
        "covariates": list(design.covariates),
        "unseen_site": config.group.unseen_site,
    }


def _subject_series(design: GroupDesign, values: pd.Series) -> pd.Series:
    return values.groupby(design.meta["participant_id"]).first()


def _evaluate(
    design: GroupDesign,
    y: np.ndarray,
    groups: np.ndarray,
    splits: list,
    feature_set: str,
    name: str,
    config: Config,
    harmonize: bool,
    n_jobs: int,
) -> tuple[CVResult, float]:
    """Nested cross-validation of one classifier on one feature set; its result and seconds."""
    spec = classifier_spec(name, feature_set, config.group.hyperparameters)
    pipeline = build_pipeline(
        spec,
        design.feature_sets[feature_set],
        config.seed,
        site_column=SITE if harmonize else None,
        covariates=design.covariates if harmonize else (),
        unseen_site=config.group.unseen_site,
        smote_k=config.group.smote_k or None,
    )
    start = time.perf_counter()
    try:
        result = nested_cross_validate(
            design.X(feature_set),
            y,
            groups,
            spec,
            pipeline,
            splits,
            feature_set=feature_set,
            inner_folds=config.group.cv_folds,
            seed=config.seed,
            n_jobs=n_jobs,
            classes=design.target.classes,
            ordinal=design.target.ordinal,
        )
    except ValueError as exc:
        # e.g. ComBat on an inner training fold that holds one row of a site
        raise CrossValidationError(
            f"{feature_set} / {spec.label}: {exc} (with few participants per site, "
            "lower --cv-folds or use --harmonization none)"
        ) from exc
    return result, time.perf_counter() - start


def run_classification(
    design: GroupDesign,
    config: Config,
    writer: DerivativesWriter,
    labels: tuple[str, ...],
    extra_folds: pd.DataFrame | None = None,
    baseline: bool = False,
) -> ClassificationResult:
    """Compare the classifiers on the feature sets; write the tables and the best models.

    Parameters
    ----------
    design : GroupDesign
        Rows, features, labels, sites and covariates.
    config : Config
        Classifiers, folds, seed, SMOTE, harmonisation.
    writer : DerivativesWriter
        The output dataset.
    labels : tuple of str
        Names of the negative and positive class, or the classes (figures).
    extra_folds : pandas.DataFrame, optional
        Fold metrics of models trained elsewhere on the same folds (the networks of
        :mod:`bids_app.group.deep_learning`), added to the comparison tables.
    baseline : bool
        Also run the logistic-regression baseline of Coll 2023 §2.4 on :data:`COLL2023_VOLUMES`
        (feature set :data:`BASELINE_SET`, whatever ``--classifiers`` says), where the design
        has those volumes.

    Returns
    -------
    ClassificationResult
        The comparison tables, the best models' predictions and the design in numbers.
    """
    harmonize = config.group.harmonization == "combat" and design.has_sites
    y, groups = design.y, design.groups
    classes = design.target.classes
    metrics = metric_names(classes, design.target.ordinal)
    splits = outer_splits(y, groups, config.group.cv_folds, config.group.cv_repeats, config.seed)
    if config.group.smote_k:
        check_smote(y, groups, splits, config.group.smote_k, config.group.cv_folds, config.seed)
    if harmonize:
        try:
            check_sites(
                _subject_series(design, design.meta[SITE]),
                _subject_series(design, pd.Series(y, index=design.meta.index)),
                config.group.cv_folds,
            )
        except ValueError as exc:
            raise CrossValidationError(f"ComBat harmonisation: {exc}") from exc
    params = _params(config, design, harmonize)
    results: dict[tuple[str, str], CVResult] = {}
    jobs = [(f, name) for f in design.feature_sets for name in config.group.classifiers]
    volumes = [c for c in COLL2023_VOLUMES if c in design.features]
    if baseline and volumes:
        design = dataclasses.replace(
            design, feature_sets={**design.feature_sets, BASELINE_SET: volumes}
        )
        jobs.append((BASELINE_SET, BASELINE_CLASSIFIER))
    elif baseline:
        LOGGER.warning("no volumes table: no logistic-regression baseline (Coll 2023 §2.4)")
    # the grid of feature sets x classifiers runs in parallel (each job seeded alike, so the
    # results do not depend on --nprocs); one job alone parallelises its inner grid search
    n_jobs = -1 if config.resources.dask_scheduler else config.resources.nprocs
    outer = n_jobs if len(jobs) > 1 else 1
    evaluated = parallel_map(
        _evaluate,
        [
            (
                design,
                y,
                groups,
                splits,
                feature_set,
                name,
                config,
                harmonize,
                n_jobs if outer == 1 else 1,
            )
            for feature_set, name in jobs
        ],
        outer,
    )
    for (feature_set, name), (result, seconds) in zip(jobs, evaluated, strict=True):
        results[feature_set, name] = result
        LOGGER.info(
            "classification %s / %s: F1 %.3f, AUC %.3f (%.0f s)",
            feature_set,
            CLASSIFIERS[name].label,
            result.folds["f1"].mean(),
            result.folds["auc"].mean(),
            seconds,
        )
    folds = pd.concat([*(r.folds for r in results.values()), extra_folds], ignore_index=True)
    summary = summarise(folds, metrics)
    best = best_models(summary, metrics=metrics)
    parameters = chosen_parameters(folds)
    predictions = pd.concat(
        [r.predictions.assign(feature_set=fs, classifier=c) for (fs, c), r in results.items()],
        ignore_index=True,
    )
    confusion = None
    if classes:
        confusion = confusion_table(predictions, classes)
        codes = dict(enumerate(classes))
        predictions = predictions.assign(
            y_true=predictions["y_true"].map(codes), y_pred=predictions["y_pred"].map(codes)
        )
    else:
        totals = folds[folds.trial == 0].groupby(["feature_set", "classifier"])[
            ["tn", "fp", "fn", "tp"]
        ]
        best = best.join(totals.sum(), on=["feature_set", "classifier"])
    columns = metric_columns(classes, design.target.ordinal)
    tables = {
        "classification_folds": (folds, columns),
        "classification_summary": (summary, None),
        "classification_f1": (f1_table(summary).reset_index(), None),
        "classification_best": (best, columns),
        "classification_parameters": (parameters, None),
        "classification_predictions": (predictions, None),
        "classification_exclusions": (design.exclusions, None),
        "classification_dropped_features": (design.dropped_features, None),
    }
    if confusion is not None:
        tables["classification_confusion"] = (confusion, _confusion_columns(classes))
    for name, (table, columns) in tables.items():
        writer.write_group_table(table, name, params=params, columns=columns)

    best_classical = best[
        [(fs, c) in results for fs, c in zip(best.feature_set, best.classifier, strict=True)]
    ]
    best_predictions = {
        f"{row.feature_set} / {CLASSIFIERS[row.classifier].label}": results[
            row.feature_set, row.classifier
        ].predictions.query("repeat == 0")
        for row in best_classical.itertuples()
    }
    save_models(design, config, writer, results, best_classical, harmonize)
    counts = pd.Series(y).map(dict(enumerate(labels))).value_counts().to_dict()
    return ClassificationResult(
        summary=summary,
        best=best,
        parameters=parameters,
        best_predictions=best_predictions,
        labels=labels,
        n_rows=len(y),
        n_participants=len(set(groups)),
        target=design.target.describe(),
        counts=counts,
        cv_folds=config.group.cv_folds,
        cv_repeats=config.group.cv_repeats,
        seed=config.seed,
        harmonized=harmonize,
        smote_k=config.group.smote_k,
        exclusions=design.exclusions,
        dropped_features=design.dropped_features,
        metrics=metrics,
        confusion=confusion,
    )


def save_models(
    design: GroupDesign,
    config: Config,
    writer: DerivativesWriter,
    results: Mapping[tuple[str, str], CVResult],
    best: pd.DataFrame,
    harmonize: bool,
) -> Path:
    """Save the best model of each feature set: its fold models and a refit on all data.

    Parameters
    ----------
    design : GroupDesign
        The design.
    config : Config
        Seed, folds, SMOTE, harmonisation.
    writer : DerivativesWriter
        The output dataset.
    results : mapping
        ``(feature_set, classifier)`` to its cross-validation result.
    best : pandas.DataFrame
        From :func:`~bids_app.models.tables.best_models`.
    harmonize : bool
        Whether the pipelines hold ComBat.

    Returns
    -------
    Path
        The manifest.
    """
    metrics = metric_names(design.target.classes, design.target.ordinal)
    with writer.model_bundle("models") as bundle:
        entries = []
        for row in best.itertuples():
            result = results[row.feature_set, row.classifier]
            spec = CLASSIFIERS[row.classifier]
            name = f"{row.feature_set}__{row.classifier}"
            files = {
                f"fold-{k}": bundle.write_model(model, "model", model=name, fold=f"fold-{k}")
                for k, model in enumerate(result.models)
            }
            # the full model takes the hyper-parameters the folds chose most often
            chosen = result.folds.loc[result.folds.trial == 0, "params"].mode().iloc[0]
            full = clone(result.models[0]).set_params(
                **{f"classifier__{k}": v for k, v in json.loads(chosen).items()}
            )
            full.fit(design.X(row.feature_set), design.y)
            files["full"] = bundle.write_model(full, "model", model=name, fold="full")
            entries.append(
                model_entry(
                    row.feature_set,
                    row.classifier,
                    design.feature_sets[row.feature_set],
                    files,
                    bundle.root,
                    design.meta["participant_id"].tolist(),
                    {
                        "classifier_label": spec.label,
                        "site_column": SITE if harmonize else None,
                        "covariates": list(design.covariates) if harmonize else [],
                        "hyper_parameters_of_full_model": chosen,
                        "cv": {m: float(best.at[row.Index, m]) for m in metrics},
                    },
                )
            )
        target = {
            "column": design.target.column,
            "positive_label": design.target.positive_label,
            "threshold": design.target.threshold,
        }
        if design.target.multiclass:
            target["classes"] = list(design.target.classes)
            target["ordinal"] = design.target.ordinal
        info = {
            "neurostrat_version": __version__,
            "software": software_versions(),
            "target": target,
            "seed": config.seed,
            "harmonization": "combat" if harmonize else "none",
        }
        bundle.write_json(manifest(entries, info), "model_manifest")
    path = writer.group_file("model_manifest")
    LOGGER.info("saved models: %s", path)
    return path


def check_target(
    clinical: pd.DataFrame, participants: pd.Series, config: Config, source: str
) -> None:
    """Check, before anything is written, that the target can give a classification.

    Parameters
    ----------
    clinical : pandas.DataFrame
        Clinical values of the sessions with participant-level outputs.
    participants : pandas.Series
        The participant of each session (same index).
    config : Config
        Target, positive label or threshold, folds and SMOTE.
    source : str
        The table the target comes from (named in errors).

    Raises
    ------
    DesignError
        If the column is absent, a numeric column is given a positive label, or the sessions
        hold one class only.
    CrossValidationError
        If a class has fewer participants than folds, or SMOTE too few neighbours.
    """
    target = target_of(config)
    if target.column not in clinical:
        raise DesignError(
            f"{source}: no column {target.column!r} for --target (columns: "
            f"{sorted(clinical.columns)}); choose one of them with --target"
        )
    values = clinical[target.column].dropna()
    numbers = pd.to_numeric(values, errors="coerce")
    if target.positive_label is not None and numbers.notna().all() and numbers.nunique() > 2:
        raise DesignError(
            f"{source}: --target {target.column!r} is numeric ({numbers.nunique()} values from "
            f"{numbers.min():g} to {numbers.max():g}) and --positive-label is for a categorical "
            "column: give --threshold X instead (values >= X are positive)"
        )
    try:
        labels, target = encode_target(clinical[target.column], target)
    except DesignError as exc:
        raise DesignError(f"{source}: {exc}") from exc
    y = labels.dropna()
    if y.nunique() < 2:
        raise DesignError(
            f"{source}: the target {target.describe()} has one class only "
            f"({sorted(values.astype(str).unique())}) among the {len(y)} sessions with "
            "participant-level outputs; classification needs both: choose another --target or "
            "--positive-label, or add participants of the other class"
        )
    y_int, groups = y.to_numpy(dtype=int), participants[y.index].to_numpy()
    check_folds(y_int, groups, config.group.cv_folds)
    if config.group.smote_k:
        splits = outer_splits(
            y_int, groups, config.group.cv_folds, config.group.cv_repeats, config.seed
        )
        check_smote(y_int, groups, splits, config.group.smote_k, config.group.cv_folds, config.seed)


def load_saved_models(
    directory: Path, clinical: pd.DataFrame, config: Config, source: str
) -> tuple[dict, list[SavedModel], list[str]]:
    """Load the models of ``--apply-models`` and decide what ComBat does with unseen sites.

    Parameters
    ----------
    directory : Path
        The models folder of an earlier run.
    clinical : pandas.DataFrame
        Clinical values of the sessions with participant-level outputs.
    config : Config
        Site column and ``--unseen-site``.
    source : str
        The table the sites come from (named in errors).

    Returns
    -------
    info : dict
        The manifest.
    models : list of SavedModel
        The models, their ComBat steps set to ``--unseen-site``.
    unseen : list of str
        Sites of this dataset that the models were not harmonised on.

    Raises
    ------
    ModelBundleError
        If the bundle is unusable, or (``--unseen-site error``) a site is unseen.
    DesignError
        If the models need a site column that this dataset lacks.
    """
    path = bundle_path(directory, "model_manifest")
    info, models = load_models(path)
    target = info.get("target")
    if not isinstance(target, dict) or not isinstance(target.get("column"), str):
        raise ModelBundleError(f"{path}: no 'target' with its 'column'; {MANIFEST_FIX}")
    if target.get("classes"):
        raise ModelBundleError(
            f"{path}: the models predict the multi-class target {target['column']!r} "
            f"(classes {target['classes']}), and --apply-models applies binary models only; "
            "train binary models (--positive-label or --threshold) to validate them externally"
        )
    harmonised = [model for model in models if model.entry.get("site_column")]
    if not harmonised:
        return info, models, []
    column = config.group.site_column or "site"
    if column not in clinical:
        raise DesignError(
            f"{source}: no site column {column!r}, and the models of {directory} harmonise the "
            "sites with ComBat; add the column or name it with --site-column"
        )
    sites = set(clinical[column].dropna().astype(str))
    combats = [p.named_steps["combat"] for m in harmonised for p in (*m.folds, m.full)]
    trained = sorted({str(site) for combat in combats for site in combat.sites_})
    unseen = sorted(sites - {str(site) for combat in combats for site in combat.sites_})
    if unseen and config.group.unseen_site == "error":
        raise ModelBundleError(
            f"{source}: site(s) {unseen} (column {column!r}) are not among the sites the models "
            f"of {directory} were harmonised on ({trained}), and ComBat cannot harmonise an "
            "unseen site: give --unseen-site reference to adjust them with the largest training "
            "site's parameters, or relabel them with the training site of the same scanner"
        )
    for combat in combats:
        combat.set_params(unseen_site=config.group.unseen_site)
    if unseen:
        LOGGER.warning(
            "site(s) %s are not among the sites the saved models were harmonised on: ComBat "
            "adjusts them with the parameters of the largest training site %r (--unseen-site "
            "reference), an approximation",
            unseen,
            str(harmonised[0].full.named_steps["combat"].reference_site_),
        )
    return info, models, unseen


def run_apply_models(
    directory: Path,
    saved: tuple[dict, list[SavedModel], list[str]],
    features: pd.DataFrame,
    clinical: pd.DataFrame,
    config: Config,
    writer: DerivativesWriter,
) -> ExternalResult:
    """Apply saved models to this dataset (external validation, Coll 2023 §2.5).

    Each model predicts every session with the values it needs; the labels, when this dataset
    has the models' target column, give the metrics of the majority vote and of the full model.

    Parameters
    ----------
    directory : Path
        The models folder of an earlier run.
    saved : tuple
        Its manifest, models and the unseen sites, from :func:`load_saved_models`.
    features : pandas.DataFrame
        From :func:`~bids_app.models.design.join_families`.
    clinical : pandas.DataFrame
        Per-session clinical values, same index.
    config : Config
        Site column and covariates of this dataset.
    writer : DerivativesWriter
        The output dataset.

    Returns
    -------
    ExternalResult
        The models applied and their metrics on this dataset.
    """
    info, models, unseen = saved
    target = Target(
        info["target"]["column"],
        info["target"].get("positive_label"),
        info["target"].get("threshold"),
    )
    covariates = covariates_for(config, clinical.columns)
    predictions, metrics, exclusions = [], [], []
    for model in models:
        site_column = None
        if model.entry.get("site_column"):
            site_column = config.group.site_column or "site"
        X, left_out = prediction_table(  # noqa: N806
            features,
            clinical,
            model.entry["features"],
            site_column,
            covariates if model.entry.get("covariates") else (),
            model.entry.get("covariates", ()),
        )
        y = None
        if target.column in clinical:
            labels = binary_target(clinical.loc[X.index, target.column], target)
            X, y = X[labels.notna()], labels.dropna().to_numpy(dtype=int)  # noqa: N806
        table, scores = apply_model(model, X, y)
        table.insert(0, "participant_id", features.loc[X.index, "participant_id"])
        predictions.append(table.reset_index(names="session").assign(model=model.name))
        metrics.append(scores)
        exclusions.append(left_out.assign(model=model.name))
    params = {
        "models": str(directory),
        "trained_with": info.get("neurostrat_version"),
        "unseen_sites": unseen,
        "unseen_site": config.group.unseen_site,
    }
    out = {
        "external_predictions": pd.concat(predictions, ignore_index=True),
        "external_exclusions": pd.concat(exclusions, ignore_index=True),
    }
    metrics_table = pd.concat(metrics, ignore_index=True)
    if len(metrics_table):
        out["external_metrics"] = metrics_table
    for name, table in out.items():
        writer.write_group_table(table, name, params=params)
    return ExternalResult(directory, len(models), target.describe(), target.column, metrics_table)


def target_of(config: Config) -> Target:
    """Return the configured target.

    Parameters
    ----------
    config : Config
        The run configuration (``target`` set).

    Returns
    -------
    Target
        Column with positive label or threshold, or multi-class (with ``--target-classes``).
    """
    return Target(
        str(config.group.target),
        config.group.positive_label,
        config.group.threshold,
        config.group.target_classes,
        config.group.ordinal,
    )


def class_names(target: Target) -> tuple[str, ...]:
    """Names of the negative and positive class, or the classes, for figures.

    Parameters
    ----------
    target : Target
        The target (a multi-class one with its classes, as the design gives it).

    Returns
    -------
    tuple of str
        (negative, positive), or the classes of a multi-class target.
    """
    if target.multiclass:
        return target.classes
    if target.threshold is not None:
        return f"< {target.threshold:g}", f">= {target.threshold:g}"
    return f"not {target.positive_label}", str(target.positive_label)

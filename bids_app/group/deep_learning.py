"""Group level: train 3D CNNs on the CNN-ready crops with the classifiers' folds.

For every network of ``--dl-models``: subject-grouped stratified cross-validation with the same
outer folds as the classical classifiers (a validation fold held out of each training set, seed
001 §2.3.2), fold metrics in the classifiers' tables, a bundle of fold checkpoints with a model
card (``group/deep_models``), out-of-fold predictions, out-of-fold penultimate features (a
feature family for the classical pipeline) and out-of-fold attention maps (LRP), each subject
explained by the fold model that did not train on it.

A multi-class target (``--target-classes``, e.g. King's stages) trains one logit per class with the
class-weighted cross-entropy; the fold metrics are the classifiers' multi-class ones (with the
ordinal ones under ``--ordinal``), the predictions hold every class's probability and the
confusion matrix is written beside them. The attention maps explain each subject's predicted
class, or the class of ``--lrp-class``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
import torch

from bids_app import __version__
from bids_app.config import Config
from bids_app.deep.augment import COLL2023_FLIP_RATES
from bids_app.deep.augment import PRESETS as AUGMENTATIONS
from bids_app.deep.bundle import CARD_VERSION, checkpoint, load_checkpoint
from bids_app.deep.crossval import DeepCVResult, NetworkSpec, deep_cross_validate, fold_models
from bids_app.deep.devices import resolve_device
from bids_app.deep.lrp import explained_classes, relevance
from bids_app.deep.training import PRESETS as TRAININGS
from bids_app.deep.training import edss_closeness_weights
from bids_app.deep.volumes import load_volumes, resample_volumes
from bids_app.derivatives.naming import contrast_output
from bids_app.derivatives.writer import DerivativesWriter, read_sidecar, software_versions
from bids_app.group.classification import metric_columns
from bids_app.inputs.inventory import SessionInputs
from bids_app.models.crossval import outer_splits, summarise
from bids_app.models.design import DesignError, Target, binary_target, multiclass_target
from bids_app.models.metrics import metric_names
from bids_app.models.tables import confusion_table
from bids_app.utils.digests import file_digest

LOGGER = logging.getLogger("bids_app.deep")


@dataclass(frozen=True)
class DeepRun:
    """How the networks were trained (for the report).

    Parameters
    ----------
    networks : tuple of str
        The networks of ``--dl-models``.
    feature_set : str
        Name of the input, ``crops_<contrasts>``.
    cv_folds : int
        Outer folds.
    preset : str
        ``--dl-preset``.
    validation : bool
        Whether a validation fold was held out of each training set.
    lrp_rule : str
        LRP rule preset of the attention maps.
    lrp_target : str
        Class the attention maps explain: ``predicted`` or ``positive`` (``--lrp-target``).
    cnn_space : str
        Template space of the crops (``--cnn-space`` of the participant level).
    channels : tuple of (str, str)
        Each input contrast with the normalisation of its crops (their sidecars'
        ``Normalisation``: a weighted image's ``--cnn-normalisation``, or a quantitative map's
        range, Lu 2023 §II.A).
    classes : tuple of str
        The classes of a multi-class target; empty for a binary one.
    ordinal : bool
        The classes are ordered (``--ordinal``).
    lrp_class : str or None
        The class every attention map explains (``--lrp-class``); None: the predicted class.
    """

    networks: tuple[str, ...]
    feature_set: str
    cv_folds: int
    preset: str
    validation: bool
    lrp_rule: str
    lrp_target: str = "predicted"
    cnn_space: str = "nonlinear"
    channels: tuple[tuple[str, str], ...] = ()
    classes: tuple[str, ...] = ()
    ordinal: bool = False
    lrp_class: str | None = None

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metric columns of the fold tables."""
        return metric_names(self.classes, self.ordinal)


@dataclass
class DeepOutcome:
    """What the deep-learning step hands back to the group level.

    Parameters
    ----------
    run : DeepRun or None
        How the networks were trained.
    left_out : pandas.DataFrame
        Sessions with crops left out (no label, or no age for GAMER), with the reason.
    missing_crops : pandas.DataFrame
        Sessions without CNN-ready crops, with the reason.
    folds : pandas.DataFrame
        Fold metrics in the layout of the classifiers' ``classification_folds`` table.
    features : dict of str to pandas.DataFrame
        ``deep_<network>`` to its out-of-fold embeddings (``participant_id``, maybe
        ``session_id``, then the features): feature families for the classifiers.
    relevance : dict of str to numpy.ndarray
        Network to the out-of-fold relevance maps ``[n_rows, X, Y, Z]`` (summed over
        contrasts) of the class in the predictions' ``explained_class``.
    predictions : dict of str to pandas.DataFrame
        Network to its out-of-fold predictions (first repeat), in the order of ``rows``, with
        the class each row's relevance map explains (``explained_class``).
    rows : pandas.DataFrame
        The sessions used, in the order of the maps: ids, crop paths, ``y_true``, the target
        column and ``age`` when known.
    affine : numpy.ndarray
        Affine of the crop grid.
    results : dict
        Network to its cross-validation result and spec.
    volumes : numpy.ndarray
        The crops ``[n_rows, C, X, Y, Z]``.
    ages : numpy.ndarray or None
        Ages of the rows in years.
    confusion : dict of str to pandas.DataFrame
        Multi-class target: network to its out-of-fold confusion matrix (first repeat, from
        :func:`~bids_app.models.tables.confusion_table`); empty for a binary target.
    """

    run: DeepRun | None = None
    left_out: pd.DataFrame = field(default_factory=pd.DataFrame)
    missing_crops: pd.DataFrame = field(default_factory=pd.DataFrame)
    folds: pd.DataFrame = field(default_factory=pd.DataFrame)
    features: dict[str, pd.DataFrame] = field(default_factory=dict)
    relevance: dict[str, np.ndarray] = field(default_factory=dict)
    predictions: dict[str, pd.DataFrame] = field(default_factory=dict)
    rows: pd.DataFrame = field(default_factory=pd.DataFrame)
    affine: np.ndarray = field(default_factory=lambda: np.eye(4))
    results: dict[str, tuple[DeepCVResult, NetworkSpec]] = field(default_factory=dict)
    volumes: np.ndarray = field(default_factory=lambda: np.empty((0, 1, 1, 1, 1)))
    ages: np.ndarray | None = None
    confusion: dict[str, pd.DataFrame] = field(default_factory=dict)


def network_options(name: str, base_width: int) -> dict[str, Any]:
    """Keyword arguments of a network scaled from the width of its first convolutions.

    Parameters
    ----------
    name : str
        ``resnet3d``, ``cnn8`` or ``gamer``.
    base_width : int
        Kernels of the first convolution (16 in seeds 001 and 004).

    Returns
    -------
    dict
        With ``base_width=16``: ResNet3D kernels 16/32/64/128 and head 128-64 (Coll 2023
        §2.3.1); CNN8 kernels 32-256, giving 256 features per layer (Turrisi 2024 §2.2.2); GAMER
        16 initial features (Lu 2023 §II.C).

    Examples
    --------
    >>> network_options("resnet3d", 4)
    {'widths': (4, 8, 16, 32), 'head': (32, 16)}
    """
    w = base_width
    if name == "resnet3d":
        return {"widths": (w, 2 * w, 4 * w, 8 * w), "head": (8 * w, 4 * w)}
    if name == "cnn8":
        return {"widths": (2 * w, 2 * w, 4 * w, 4 * w, 8 * w, 8 * w, 16 * w, 16 * w)}
    if name == "gamer":
        return {"init_features": w}
    raise ValueError(f"unknown network {name!r}")


def network_spec(name: str, config: Config, n_classes: int = 2) -> NetworkSpec:
    """Build a network's training from ``--dl-preset`` and the overrides.

    Parameters
    ----------
    name : str
        The network.
    config : Config
        The run configuration.
    n_classes : int
        Classes of the target; a multi-class one gives the network ``n_classes`` logits.

    Returns
    -------
    NetworkSpec
        Network options, training, augmentation, the Coll 2023 flips and the validation fold.
    """
    training = TRAININGS[config.deep.dl_preset]
    overrides: dict[str, Any] = {"seed": config.seed}
    if config.deep.dl_epochs is not None:
        overrides["epochs"] = config.deep.dl_epochs
    if config.deep.dl_batch_size is not None:
        overrides["batch_size"] = config.deep.dl_batch_size
    options = network_options(name, config.deep.dl_base_width)
    if n_classes > 2:
        options["n_classes"] = n_classes
    # Coll 2023 §2.3.2's flip rates are per binary class (all positives, 75 % of negatives); a
    # multi-class target gets no flipped copies and relies on the class weights alone
    coll = config.deep.dl_preset == "coll2023" and n_classes == 2
    return NetworkSpec(
        name=name,
        options=options,
        training=dataclasses.replace(training, **overrides),
        augmentation=AUGMENTATIONS[config.deep.dl_preset],
        flip_rates=COLL2023_FLIP_RATES if coll else None,
        validation=config.deep.dl_validation,
    )


def _closeness_weights(
    rows: pd.DataFrame, target: Target, spec: NetworkSpec
) -> tuple[np.ndarray | None, NetworkSpec]:
    """Lu 2023's EDSS-closeness loss weights, centred on the target's threshold.

    Without a numeric target (``--threshold``) there is no score to be close to: the
    class-weighted cross-entropy of Coll 2023 is used instead, with a warning.
    """
    scores = pd.to_numeric(rows[target.column], errors="coerce")
    if target.threshold is None or scores.isna().any() or not scores.between(0, 10).all():
        LOGGER.warning(
            "%s: the EDSS-closeness loss of Lu 2023 needs a numeric --target in [0, 10] with "
            "--threshold; using the class-weighted cross-entropy",
            spec.name,
        )
        return None, dataclasses.replace(
            spec, training=dataclasses.replace(spec.training, loss="weighted-ce")
        )
    # Lu 2023 §II.D centres the weights on EDSS 5, its class threshold
    return edss_closeness_weights(scores.to_numpy(), centre=target.threshold), spec


def collect_crops(
    inventory: Sequence[SessionInputs], writer: DerivativesWriter, contrasts: Sequence[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Find every session's CNN-ready crops.

    Parameters
    ----------
    inventory : sequence of SessionInputs
        The selected sessions.
    writer : DerivativesWriter
        The derivatives dataset (it knows the file names).
    contrasts : sequence of str
        Contrasts of the input channels.

    Returns
    -------
    crops : pandas.DataFrame
        One row per session with all crops (index ``sub-X[_ses-Y]``): ``participant_id``,
        ``session_id`` when there are sessions, a path column per contrast and ``cnn_space``
        (the first contrast's sidecar ``CnnSpace``; ``nonlinear``, the only space before
        ``--cnn-space``, when it has none).
    missing : pandas.DataFrame
        ``participant_id, session_id, reason`` of the sessions left out.
    """
    rows, missing = [], []
    for item in inventory:
        paths = {c: writer.path(contrast_output(c, "cnn"), item.entities) for c in contrasts}
        ids = {"participant_id": f"sub-{item.subject}"}
        if item.session:
            ids["session_id"] = f"ses-{item.session}"
        absent = [c for c, p in paths.items() if not p.exists()]
        if absent:
            missing.append(
                {
                    **ids,
                    "reason": f"no CNN-ready {'/'.join(absent)} crop "
                    "(run the participant level; a contrast besides the T1w needs its image "
                    "in the session)",
                }
            )
            continue
        space = str(read_sidecar(paths[contrasts[0]]).get("CnnSpace", "nonlinear"))
        rows.append(
            {"key": item.key, **ids, **{c: str(p) for c, p in paths.items()}, "cnn_space": space}
        )
    crops = pd.DataFrame(rows).set_index("key") if rows else pd.DataFrame()
    return crops, pd.DataFrame(missing, columns=["participant_id", "session_id", "reason"])


def crop_space(crops: pd.DataFrame) -> str:
    """Return the one template space of the sessions' crops (``--cnn-space``).

    Crops resampled through the whole registration and through its affine stage only differ
    in what they show of atrophy (Coll 2023 §2.2): one network must not see both.

    Parameters
    ----------
    crops : pandas.DataFrame
        From :func:`collect_crops`.

    Returns
    -------
    str
        ``nonlinear`` or ``affine``.

    Raises
    ------
    DesignError
        When the crops come from both spaces.
    """
    spaces = sorted(set(crops["cnn_space"]))
    if len(spaces) > 1:
        counts = crops["cnn_space"].value_counts().to_dict()
        raise DesignError(
            f"the CNN-ready crops come from different --cnn-space settings {counts}: re-run the "
            "participant level of the sessions of one space with the other's --cnn-space"
        )
    return spaces[0] if spaces else "nonlinear"


def _labels(
    crops: pd.DataFrame, clinical: pd.DataFrame, target: Target, needs_age: bool
) -> tuple[pd.DataFrame, pd.DataFrame, Target]:
    """Sessions with a label (and an age when a network needs it), those left out, the target.

    A multi-class target comes back with its classes (those of the column when not given).
    """
    if target.column not in clinical:
        raise DesignError(f"no column {target.column!r} for the networks' target")
    if target.multiclass:
        y, classes = multiclass_target(clinical[target.column], target)
        target = dataclasses.replace(target, classes=classes)
    else:
        y = binary_target(clinical[target.column], target)
    reasons = pd.Series("", index=crops.index)
    reasons[y.isna()] = f"no {target.column}"
    if needs_age:
        age = pd.to_numeric(clinical.get("age"), errors="coerce")
        reasons[(reasons == "") & age.isna()] = "no age (GAMER takes age, Lu 2023 §II.C)"
    kept = crops[reasons == ""].assign(
        y_true=y[reasons == ""].astype(int), **{target.column: clinical[target.column]}
    )
    if needs_age or "age" in clinical:
        kept["age"] = pd.to_numeric(clinical.loc[kept.index].get("age"), errors="coerce")
    left = crops[reasons != ""][["participant_id"]].assign(reason=reasons[reasons != ""])
    return kept, left, target


def _named_class(target: Target, name: str | None) -> int | None:
    """Code of the class of ``--lrp-class`` (None when not given)."""
    if name is None:
        return None
    if name not in target.classes:
        raise DesignError(
            f"--lrp-class {name!r} is not a class of {target.column!r} "
            f"(classes: {list(target.classes)})"
        )
    return target.classes.index(name)


def _fold_rows(result: DeepCVResult, feature_set: str, spec: NetworkSpec) -> pd.DataFrame:
    """Fold metrics in the layout of the classifiers' fold table."""
    params = json.dumps(
        {"epochs": spec.training.epochs, "batch_size": spec.training.batch_size}, sort_keys=True
    )
    return result.folds.assign(
        feature_set=feature_set, classifier=result.network, trial=0, params=params
    )


def run_deep_learning(
    crops: pd.DataFrame,
    clinical: pd.DataFrame,
    target: Target,
    config: Config,
    writer: DerivativesWriter,
) -> DeepOutcome:
    """Cross-validate every network of ``--dl-models``; write tables, bundle and maps.

    Parameters
    ----------
    crops : pandas.DataFrame
        From :func:`collect_crops`.
    clinical : pandas.DataFrame
        The sessions' clinical values (same index as ``crops``).
    target : Target
        What the networks predict.
    config : Config
        Networks, preset, folds, seed, device.
    writer : DerivativesWriter
        The output dataset.

    Returns
    -------
    DeepOutcome
        Fold metrics, out-of-fold predictions, features and relevance maps.

    Raises
    ------
    DesignError
        When no session has crops and a label.
    """
    rows, left_out, target = _labels(crops, clinical, target, "gamer" in config.deep.dl_models)
    if rows.empty:
        raise DesignError(
            "no session has CNN-ready crops and a target value: run the participant level "
            f"and check the {target.column!r} column"
        )
    contrasts = list(config.deep.dl_contrasts)
    volumes = load_volumes([[Path(p) for p in r] for r in rows[contrasts].to_numpy()])
    first = nib.load(rows[contrasts[0]].iloc[0])
    affine, zooms = first.affine, first.header.get_zooms()[:3]
    y = rows["y_true"].to_numpy()
    groups = rows["participant_id"].to_numpy()
    ages = rows["age"].to_numpy(dtype=np.float32) if "age" in rows else None
    splits = outer_splits(y, groups, config.group.cv_folds, config.group.cv_repeats, config.seed)
    device = resolve_device(config.resources.device)
    feature_set = "crops_" + "+".join(contrasts)
    run = DeepRun(
        networks=tuple(config.deep.dl_models),
        feature_set=feature_set,
        cv_folds=config.group.cv_folds,
        preset=config.deep.dl_preset,
        validation=bool(config.deep.dl_validation),
        lrp_rule=config.deep.lrp_rule,
        lrp_target=config.deep.lrp_target,
        cnn_space=crop_space(rows),
        channels=tuple(
            (c, str(read_sidecar(Path(rows[c].iloc[0])).get("Normalisation", "not recorded")))
            for c in contrasts
        ),
        classes=target.classes if target.multiclass else (),
        ordinal=target.ordinal,
        lrp_class=config.deep.lrp_class,
    )
    named = _named_class(target, config.deep.lrp_class) if target.multiclass else None
    n_classes = max(len(run.classes), 2)
    outcome = DeepOutcome(
        run=run, left_out=left_out, rows=rows, affine=affine, volumes=volumes, ages=ages
    )
    results = outcome.results
    weights = None
    # the folds train side by side on the CPU (on a GPU one after the other)
    n_jobs = -1 if config.resources.dask_scheduler else config.resources.nprocs
    n_jobs = n_jobs if device.type == "cpu" else 1
    for name in config.deep.dl_models:
        spec = network_spec(name, config, n_classes)
        if spec.training.loss == "edss-closeness":
            weights, spec = _closeness_weights(rows, target, spec)
        start = time.perf_counter()
        result = deep_cross_validate(
            volumes,
            y,
            groups,
            splits,
            spec,
            device,
            ages=ages,
            sample_values=weights,
            seed=config.seed,
            classes=run.classes,
            ordinal=run.ordinal,
            n_jobs=n_jobs,
        )
        LOGGER.info(
            "%s on %s: AUC %.3f, F1 %.3f (%.0f s on %s)",
            name,
            feature_set,
            result.folds["auc"].mean(),
            result.folds["f1"].mean(),
            time.perf_counter() - start,
            device,
        )
        results[name] = (result, spec)
        prediction = result.predictions.query("repeat == 0").set_index("row").sort_index()
        classes = explained_classes(
            prediction["y_pred"].to_numpy(), config.deep.lrp_target, n_classes, named
        )
        outcome.relevance[name] = out_of_fold_relevance(
            result, spec, volumes, ages, config.deep.lrp_rule, device, classes
        )
        scores = [c for c in prediction if c == "score" or c.startswith("score_")]
        outcome.predictions[name] = rows[["participant_id"]].assign(
            **{c: rows[c] for c in ("session_id",) if c in rows},
            y_true=y,
            **{c: prediction[c].to_numpy() for c in scores},
            y_pred=prediction["y_pred"].to_numpy(),
            fold=result.test_fold,
            explained_class=classes,
        )
        if run.classes:
            outcome.confusion[name] = confusion_table(
                result.predictions.assign(feature_set=feature_set, classifier=name), run.classes
            )
        ids = rows[[c for c in ("participant_id", "session_id") if c in rows]]
        embedding = pd.DataFrame(
            result.embeddings,
            index=rows.index,
            columns=[f"{name}_{k:03d}" for k in range(result.embeddings.shape[1])],
        )
        outcome.features[f"deep_{name}"] = pd.concat([ids, embedding], axis=1).reset_index(
            drop=True
        )
    outcome.folds = pd.concat(
        [_fold_rows(r, feature_set, s) for r, s in results.values()], ignore_index=True
    )
    _write_tables(outcome, results, left_out, writer, config)
    save_bundle(
        results,
        rows,
        contrasts,
        volumes.shape[2:],
        float(zooms[0]),
        run.cnn_space,
        target,
        config,
        writer,
    )
    return outcome


def out_of_fold_batches(
    result: DeepCVResult,
    spec: NetworkSpec,
    volumes: np.ndarray,
    ages: np.ndarray | None,
    device: torch.device,
    batch_size: int,
) -> Iterator[tuple[torch.nn.Module, np.ndarray, torch.Tensor, torch.Tensor | None]]:
    """Yield each fold model with a batch of the rows it did not train on (out of fold)."""
    for fold, net in enumerate(fold_models(result, spec, volumes.shape[1], device)):
        members = np.flatnonzero(result.test_fold == fold)
        for start in range(0, len(members), batch_size):
            rows = members[start : start + batch_size]
            x = torch.as_tensor(volumes[rows], dtype=torch.float32, device=device)
            age = None if ages is None else torch.as_tensor(ages[rows], device=device)
            yield net, rows, x, age


def out_of_fold_relevance(
    result: DeepCVResult,
    spec: NetworkSpec,
    volumes: np.ndarray,
    ages: np.ndarray | None,
    rule: str,
    device: torch.device,
    classes: np.ndarray | None = None,
    batch_size: int = 4,
) -> np.ndarray:
    """Explain every row with the fold model that did not train on it.

    Parameters
    ----------
    result : DeepCVResult
        The network's cross-validation (fold weights and test folds of the first repeat).
    spec : NetworkSpec
        The network.
    volumes : numpy.ndarray
        The crops ``[n_rows, C, X, Y, Z]``.
    ages : numpy.ndarray or None
        Ages in years.
    rule : str
        LRP rule preset.
    device : torch.device
        Where to compute.
    classes : numpy.ndarray or None
        The class each row's map explains (:func:`~bids_app.deep.lrp.explained_classes`);
        None explains the positive class of every row.
    batch_size : int
        Rows per LRP pass.

    Returns
    -------
    numpy.ndarray
        float32 ``[n_rows, X, Y, Z]``: relevance of each row's class summed over contrasts.
    """
    maps = np.zeros((len(volumes), *volumes.shape[2:]), dtype=np.float32)
    for net, rows, x, age in out_of_fold_batches(result, spec, volumes, ages, device, batch_size):
        target = torch.ones(len(rows), dtype=torch.long, device=device)
        if classes is not None:
            target = torch.as_tensor(classes[rows], dtype=torch.long, device=device)
        r = relevance(net, x, age, target=target, rule=rule)
        maps[rows] = r.sum(dim=1).detach().float().cpu().numpy()
    return maps


def save_bundle(
    results: Mapping[str, tuple[DeepCVResult, NetworkSpec]],
    rows: pd.DataFrame,
    contrasts: Sequence[str],
    input_shape: Sequence[int],
    voxel_size_mm: float,
    cnn_space: str,
    target: Target,
    config: Config,
    writer: DerivativesWriter,
) -> Path:
    """Write the fold checkpoints of every network and the model card.

    Parameters
    ----------
    results : mapping
        Network name to its cross-validation result and spec.
    rows : pandas.DataFrame
        The sessions trained on (``participant_id``).
    contrasts : sequence of str
        Input channels.
    input_shape : sequence of int
        Crop size in voxels.
    voxel_size_mm : float
        Crop voxel size.
    cnn_space : str
        Template space of the crops (``--cnn-space``); ``--models`` checks it.
    target : Target
        What the networks predict.
    config : Config
        Preset, folds, seed.
    writer : DerivativesWriter
        The output dataset.

    Returns
    -------
    Path
        The model card.
    """
    networks = {}
    metrics = metric_names(target.classes if target.multiclass else (), target.ordinal)
    with writer.model_bundle("deep_models") as bundle:
        for name, (result, spec) in results.items():
            files = {}
            for fold, state in enumerate(result.states):
                path = bundle.write_model(
                    checkpoint(
                        name, spec.options, len(contrasts), input_shape, voxel_size_mm, state
                    ),
                    "deep_checkpoint",
                    network=name,
                    fold=f"fold-{fold}",
                )
                files[f"fold-{fold}"] = {
                    "path": path.relative_to(bundle.root).as_posix(),
                    "sha256": file_digest(path),
                }
            first = result.folds[result.folds["repeat"] == 0]
            networks[name] = {
                "network": name,
                "options": dict(spec.options),
                "contrasts": list(contrasts),
                "input_shape": [int(n) for n in input_shape],
                "voxel_size_mm": voxel_size_mm,
                "files": files,
                "training": {k: v for k, v in vars(spec.training).items() if not k.startswith("_")},
                "augmentation": {
                    k: v for k, v in vars(spec.augmentation).items() if not k.startswith("_")
                }
                if spec.augmentation
                else None,
                "flip_rates": {str(k): v for k, v in (spec.flip_rates or {}).items()},
                "validation_fold": spec.validation,
                "folds": first.to_dict(orient="records"),
                "metrics_mean": {m: float(result.folds[m].mean()) for m in metrics},
                "metrics_sd": {m: float(result.folds[m].std(ddof=1)) for m in metrics},
            }
        card = {
            "card_version": CARD_VERSION,
            "neurostrat_version": __version__,
            "software": software_versions(),
            "target": target.describe(),
            "target_column": target.column,
            "positive_label": target.positive_label,
            "threshold": target.threshold,
            "classes": list(target.classes) if target.multiclass else [],
            "ordinal": target.ordinal,
            "cv_folds": config.group.cv_folds,
            "cv_repeats": config.group.cv_repeats,
            "seed": config.seed,
            "preset": config.deep.dl_preset,
            "lrp_rule": config.deep.lrp_rule,
            "lrp_target": config.deep.lrp_target,
            "cnn_space": cnn_space,
            "training_participants": sorted(set(rows["participant_id"])),
            "n_sessions": len(rows),
            "networks": networks,
        }
        bundle.write_json(card, "deep_model_card")
    return writer.group_file("deep_model_card")


def _write_tables(
    outcome: DeepOutcome,
    results: Mapping[str, tuple[DeepCVResult, NetworkSpec]],
    left_out: pd.DataFrame,
    writer: DerivativesWriter,
    config: Config,
) -> None:
    params = {
        "networks": list(results),
        "preset": config.deep.dl_preset,
        "seed": config.seed,
        "lrp_rule": config.deep.lrp_rule,
        "lrp_target": config.deep.lrp_target,
        "cnn_space": outcome.run.cnn_space if outcome.run else "nonlinear",
        "classes": list(outcome.run.classes) if outcome.run else [],
        "ordinal": bool(outcome.run and outcome.run.ordinal),
        "lrp_class": config.deep.lrp_class,
    }
    histories = pd.concat(
        [r.histories.assign(network=name) for name, (r, _) in results.items()], ignore_index=True
    )
    run = outcome.run
    metrics = run.metrics if run else metric_names()
    tables = {
        "deep_folds": outcome.folds,
        "deep_summary": summarise(outcome.folds, metrics),
        "deep_history": histories,
        "deep_exclusions": left_out,
    }
    columns = metric_columns(run.classes if run else (), bool(run and run.ordinal))
    for name, table in tables.items():
        writer.write_group_table(
            table, name, params=params, columns=columns if name == "deep_folds" else None
        )
    for name, table in outcome.predictions.items():
        writer.write_group_table(
            table,
            "deep_predictions",
            params=params,
            columns=_prediction_columns(run.classes if run else ()),
            network=name,
        )
    for name, table in outcome.confusion.items():
        writer.write_group_table(table, "deep_confusion", params=params, network=name)
    for family, table in outcome.features.items():
        writer.write_group_table(table, "features", params=params, family=family)
    for name, maps in outcome.relevance.items():
        image = nib.Nifti1Image(np.moveaxis(maps, 0, -1), outcome.affine)
        writer.write_group_image(image, "deep_relevance", network=name)


def _prediction_columns(classes: Sequence[str]) -> dict[str, dict]:
    """Describe the columns of the out-of-fold predictions of a binary or multi-class target."""
    levels = (
        {str(k): name for k, name in enumerate(classes)}
        if classes
        else {"0": "negative", "1": "positive"}
    )
    described = {
        "y_true": {"Description": "true class", "Levels": levels},
        "y_pred": {"Description": "predicted class (most probable)", "Levels": levels},
        "explained_class": {
            "Description": "class whose output the row's attention map explains (LRP)",
            "Levels": levels,
        },
    }
    if classes:
        described |= {
            f"score_{name}": {"Description": f"out-of-fold probability of the class {name}"}
            for name in classes
        }
    else:
        described["score"] = {"Description": "out-of-fold probability of the positive class"}
    return described


def pretrained_features(
    path: Path,
    crops: pd.DataFrame,
    contrasts: Sequence[str],
    device: torch.device,
    batch_size: int = 2,
) -> dict[str, pd.DataFrame]:
    """Extract a pretrained network's deep features of every session (``--feature-extractor``).

    Turrisi 2024 §2.2.2 used a 3D CNN trained on Alzheimer's disease as a feature extractor: the
    global averages of its last (DL8) and penultimate (DL7) convolution, 256 features each. A
    CNN8 checkpoint gives both families; other networks give their penultimate features.
    Nothing is fitted on the data, so the features carry no label information.

    Parameters
    ----------
    path : Path
        A checkpoint (format in :mod:`bids_app.deep.bundle`).
    crops : pandas.DataFrame
        From :func:`collect_crops`.
    contrasts : sequence of str
        Input channels (must match the checkpoint's).
    device : torch.device
        Where to run.
    batch_size : int
        Sessions per forward pass.

    Returns
    -------
    tables : dict of str to pandas.DataFrame
        ``pretrained_dl7`` and ``pretrained_dl8`` (CNN8), or ``pretrained`` (other networks):
        ``participant_id``, maybe ``session_id``, then the features.
    params : dict
        The checkpoint, its network, its crop size and the data's, and whether the crops were
        resampled to the checkpoint's size (a checkpoint trained on crops of another size).

    Raises
    ------
    BundleError
        If the checkpoint is unusable or has another number of contrasts.
    """
    volumes = load_volumes([[Path(p) for p in r] for r in crops[list(contrasts)].to_numpy()])
    crops_shape = volumes.shape[2:]
    model, info = load_checkpoint(path, in_channels=volumes.shape[1])
    trained_shape = [int(n) for n in info["input_shape"]]
    resampled = list(volumes.shape[2:]) != trained_shape
    if resampled:  # another crop size: resize the crops to the network's (reported)
        LOGGER.warning(
            "%s was trained on crops of %s voxels, the data's are %s: the crops are resampled "
            "to the network's size (trilinear); the features describe resized images",
            path,
            trained_shape,
            list(volumes.shape[2:]),
        )
        volumes = resample_volumes(volumes, trained_shape)
    model.to(device).eval()
    batches: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        for start in range(0, len(volumes), batch_size):
            x = torch.as_tensor(volumes[start : start + batch_size], dtype=torch.float32)
            x = x.to(device)
            if hasattr(model, "conv_features"):
                outputs = {f"pretrained_{k}": v for k, v in model.conv_features(x).items()}
            else:
                outputs = {"pretrained": model.embed(x)}
            for key, value in outputs.items():
                batches.setdefault(key, []).append(value.float().cpu().numpy())
    ids = crops[[c for c in ("participant_id", "session_id") if c in crops]].reset_index(drop=True)
    tables = {}
    for family, parts in batches.items():
        values = np.concatenate(parts)
        columns = [f"{family}_{k:03d}" for k in range(values.shape[1])]
        tables[family] = pd.concat([ids, pd.DataFrame(values, columns=columns)], axis=1)
    LOGGER.info("features of %s (%s) for %d sessions", path, info["network"], len(volumes))
    return tables, {
        "feature_extractor": str(path),
        "network": info["network"],
        "checkpoint_crop_shape": trained_shape,
        "data_crop_shape": [int(n) for n in crops_shape],
        "resampled": resampled,
    }

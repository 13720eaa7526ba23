"""Cross-validated training of a 3D CNN on the folds of the classical pipeline.

The outer folds are those of :func:`bids_app.models.crossval.outer_splits` (participants grouped,
labels stratified, the same seed), so the networks' metrics sit in the same tables as the
classifiers'. Inside each outer training set one further group-stratified fold is held out for
validation, as Coll 2023 §2.3.2 did (7 folds: five train, one validates, one tests): it drives the
early stopping and the learning-rate decay and never sees the test fold. Each test participant is
predicted and embedded by the one fold model that did not train on it, so the out-of-fold
embeddings can enter the classical pipeline as a feature set without leakage.

A multi-class target (``classes``) trains one logit per class (the network's ``n_classes`` option,
set by the caller); the predicted class is the most probable one, and the fold metrics are the
classifiers' :func:`~bids_app.models.metrics.multiclass_metrics`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import StratifiedGroupKFold

from bids_app.deep.augment import Augmentation, flip_expansion
from bids_app.deep.networks import build_network
from bids_app.deep.training import (
    TrainingConfig,
    embed,
    predict,
    predict_proba,
    train_with_oom_fallback,
)
from bids_app.deep.volumes import VolumeDataset
from bids_app.models.crossval import Split
from bids_app.models.metrics import binary_metrics, class_metrics
from bids_app.models.parallel import parallel_map

LOGGER = logging.getLogger("bids_app.deep")


@dataclass(frozen=True)
class NetworkSpec:
    """A network and how to train it.

    Parameters
    ----------
    name : str
        A key of :data:`bids_app.deep.networks.NETWORKS`.
    options : mapping
        Keyword arguments of the network (widths...).
    training : TrainingConfig
        Optimiser, loss, epochs, batch size, early stopping.
    augmentation : Augmentation
        On-the-fly transforms of the training volumes.
    flip_rates : mapping of int to float or None
        Coll 2023 §2.3.2's offline left-right flips per class (1.0 positives, 0.75 negatives);
        None adds no flipped copies.
    validation : bool
        Hold out a validation fold of the training participants.
    """

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    augmentation: Augmentation | None = None
    flip_rates: Mapping[int, float] | None = None
    validation: bool = True


@dataclass
class DeepCVResult:
    """What the cross-validation of one network gives.

    Parameters
    ----------
    network : str
        The network's name.
    folds : pandas.DataFrame
        One row per repeat and fold: sizes, the metrics of
        :func:`~bids_app.models.metrics.binary_metrics` (or of
        :func:`~bids_app.models.metrics.class_metrics` for a multi-class target), best epoch and
        epochs run.
    predictions : pandas.DataFrame
        One row per repeat and test row: ``row, repeat, fold, y_true``, ``score`` (the positive
        class's probability) or ``score_<class>`` (every class's probability), and ``y_pred``.
    histories : pandas.DataFrame
        The training history of every fold (``repeat, fold`` and the per-epoch columns).
    states : list of dict
        The fold models' weights (first repeat), in fold order.
    embeddings : numpy.ndarray
        Out-of-fold penultimate features of every row (first repeat).
    test_fold : numpy.ndarray
        The first repeat's fold that tested each row (which model explains it).
    """

    network: str
    folds: pd.DataFrame
    predictions: pd.DataFrame
    histories: pd.DataFrame
    states: list[dict[str, torch.Tensor]]
    embeddings: np.ndarray
    test_fold: np.ndarray


def validation_rows(
    y: np.ndarray, groups: np.ndarray, train: np.ndarray, n_folds: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split an outer training set into fitting rows and one validation fold.

    Parameters
    ----------
    y : numpy.ndarray
        Labels of all rows.
    groups : numpy.ndarray
        Participant of every row.
    train : numpy.ndarray
        Row indices of the outer training set.
    n_folds : int
        Outer folds: the validation fold is ``1 / (n_folds - 1)`` of the training set, the size
        of a test fold (Coll 2023: 7 folds, one of the six training folds validates).
    seed : int
        Shuffling seed.

    Returns
    -------
    fit, validation : numpy.ndarray
        Row indices; the participants of the two never overlap.
    """
    splitter = StratifiedGroupKFold(max(n_folds - 1, 2), shuffle=True, random_state=seed)
    fit, validation = next(splitter.split(np.zeros(len(train)), y[train], groups[train]))
    return train[fit], train[validation]


def _dataset(
    volumes: np.ndarray,
    y: np.ndarray,
    rows: np.ndarray,
    ages: np.ndarray | None,
    weights: np.ndarray | None,
    *,
    augmentation: Augmentation | None = None,
    flips: np.ndarray | None = None,
    seed: int = 0,
) -> VolumeDataset:
    """Items of ``rows`` of the shared array (no copy)."""
    return VolumeDataset(
        volumes,
        y,
        ages=ages,
        weights=weights,
        indices=rows,
        flips=flips,
        transform=augmentation,
        seed=seed,
    )


def _train_fold(
    split: Split,
    volumes: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    n_folds: int,
    spec: NetworkSpec,
    device: torch.device,
    ages: np.ndarray | None,
    sample_values: np.ndarray | None,
    seed: int,
    classes: tuple[str, ...] = (),
    ordinal: bool = False,
) -> tuple[dict, pd.DataFrame, pd.DataFrame, np.ndarray | None, dict | None]:
    """Train and test one outer split: its metrics, predictions, history, embeddings, weights.

    The embeddings and the weights are kept for the first repeat only (None otherwise).
    """
    fold_seed = seed + 1000 * split.repeat + split.fold
    with torch.random.fork_rng(devices=[]):  # the fold's initial weights, stream restored
        torch.manual_seed(fold_seed)
        net = build_network(spec.name, volumes.shape[1], **dict(spec.options))
    if spec.validation:
        fit, validation = validation_rows(y, groups, split.train, n_folds, fold_seed)
    else:
        fit, validation = split.train, np.array([], dtype=int)
    flips = None
    if spec.flip_rates:
        index, flips = flip_expansion(y[fit], spec.flip_rates, fold_seed)
        fit = fit[index]
    training = _dataset(
        volumes,
        y,
        fit,
        ages,
        sample_values,
        augmentation=spec.augmentation,
        flips=flips,
        seed=fold_seed,
    )
    held_out = _dataset(volumes, y, validation, ages, sample_values) if len(validation) else None
    config = dataclasses.replace(spec.training, seed=fold_seed)
    result = train_with_oom_fallback(net, training, held_out, config, device)
    test = _dataset(volumes, y, split.test, ages, None)
    if classes:
        probabilities = predict_proba(result.model, test, device, config.batch_size)
        y_pred = probabilities.argmax(axis=1)
        metrics = class_metrics(y[split.test], y_pred, probabilities, classes, ordinal)
        scores = {f"score_{c}": probabilities[:, k] for k, c in enumerate(classes)}
    else:
        score = predict(result.model, test, device, config.batch_size)
        y_pred = (score >= 0.5).astype(int)
        metrics = binary_metrics(y[split.test], y_pred, score)
        scores = {"score": score}
    LOGGER.info(
        "%s, repeat %d fold %d: best epoch %d of %d",
        spec.name,
        split.repeat,
        split.fold,
        result.best_epoch,
        len(result.history),
    )
    row = {
        "repeat": split.repeat,
        "fold": split.fold,
        "n_train": len(np.unique(fit)),
        "n_validation": len(validation),
        "n_test": len(split.test),
        **metrics,
        "best_epoch": result.best_epoch,
        "epochs": len(result.history),
    }
    prediction = pd.DataFrame(
        {
            "row": split.test,
            "repeat": split.repeat,
            "fold": split.fold,
            "y_true": y[split.test],
            **scores,
            "y_pred": y_pred,
        }
    )
    history = result.history.assign(repeat=split.repeat, fold=split.fold)
    if split.repeat != 0:
        return row, prediction, history, None, None
    features = embed(result.model, test, device, config.batch_size)
    state = {k: v.detach().cpu() for k, v in result.model.state_dict().items()}
    return row, prediction, history, features, state


def deep_cross_validate(
    volumes: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    splits: list[Split],
    spec: NetworkSpec,
    device: torch.device,
    *,
    ages: np.ndarray | None = None,
    sample_values: np.ndarray | None = None,
    seed: int = 42,
    classes: tuple[str, ...] = (),
    ordinal: bool = False,
    n_jobs: int = 1,
) -> DeepCVResult:
    """Train and test one network on every outer split.

    Parameters
    ----------
    volumes : numpy.ndarray
        Crops ``[n_rows, n_contrasts, X, Y, Z]`` (float16 is fine).
    y : numpy.ndarray
        Labels, 1 positive (binary), or class codes ``0 .. len(classes) - 1``.
    groups : numpy.ndarray
        Participant of every row.
    splits : list of Split
        From :func:`bids_app.models.crossval.outer_splits`.
    spec : NetworkSpec
        The network and its training.
    device : torch.device
        Where to train.
    ages : numpy.ndarray, optional
        Age of every row in years (the networks that use age need it).
    sample_values : numpy.ndarray, optional
        Per-row values of the ``edss-closeness`` loss (Lu 2023 §II.D).
    seed : int
        Seed of the weights, the batches and the validation split.
    classes : tuple of str
        The class names of a multi-class target (empty: binary); ``spec.options`` must then
        give the network ``n_classes=len(classes)``.
    ordinal : bool
        The classes are ordered: the fold metrics add the ordinal ones.
    n_jobs : int
        Folds trained at once (:func:`~bids_app.models.parallel.parallel_map`); each fold has
        its own seed, so the results do not depend on it.

    Returns
    -------
    DeepCVResult
        Fold metrics, out-of-fold predictions and embeddings, and the fold models.
    """
    n_folds = len({s.fold for s in splits})
    embeddings: np.ndarray | None = None
    test_fold = np.full(len(y), -1)
    rows, predictions, histories, states = [], [], [], []
    common = (volumes, y, groups, n_folds, spec, device, ages, sample_values, seed)
    common += (classes, ordinal)
    folds = parallel_map(_train_fold, [(split, *common) for split in splits], n_jobs)
    for split, (row, prediction, history, features, state) in zip(splits, folds, strict=True):
        rows.append(row)
        predictions.append(prediction)
        histories.append(history)
        if split.repeat == 0:
            if embeddings is None:
                embeddings = np.full((len(y), features.shape[1]), np.nan, dtype=np.float32)
            embeddings[split.test] = features
            test_fold[split.test] = split.fold
            states.append(state)
    return DeepCVResult(
        network=spec.name,
        folds=pd.DataFrame(rows),
        predictions=pd.concat(predictions, ignore_index=True),
        histories=pd.concat(histories, ignore_index=True),
        states=states,
        embeddings=embeddings if embeddings is not None else np.empty((len(y), 0)),
        test_fold=test_fold,
    )


def fold_models(
    result: DeepCVResult, spec: NetworkSpec, in_channels: int, device: torch.device
) -> list[torch.nn.Module]:
    """Rebuild the fold models of the first repeat, in evaluation mode on ``device``.

    Parameters
    ----------
    result : DeepCVResult
        The cross-validation (its fold weights).
    spec : NetworkSpec
        The network.
    in_channels : int
        Input contrasts.
    device : torch.device
        Where the models go.

    Returns
    -------
    list of torch.nn.Module
        Fold ``k`` explains the rows with ``result.test_fold == k``.
    """
    models = []
    for state in result.states:
        net = build_network(spec.name, in_channels, **dict(spec.options))
        net.load_state_dict(state)
        models.append(net.to(device).eval())
    return models

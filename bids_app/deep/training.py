"""Training and inference of the 3D classification networks (Coll 2023 §2.3.2-2.3.3, Lu 2023 §II.D).

A network here is a ``torch.nn.Module`` called as ``net(x, age=None)`` on ``[B, C, D, H, W]``
volumes (``age`` in years, used where ``net.uses_age``), returning logits of shape
``[B, net.n_outputs]``: two classes under a softmax (Coll 2023 §2.3.1) or one logit under a
sigmoid (Lu 2023 §II.C); ``net.embed(x, age=None)`` gives its penultimate features. A network of
a multi-class target (labels ``0 .. K-1``) returns ``K`` logits under a softmax and trains with
the same (class-weighted) cross-entropy.

Coll 2023 trains with Adam on a class-weighted cross-entropy, batches of two, for at most 200
epochs with early stopping on the validation loss and a learning rate lowered when the
validation performance stalls. Lu 2023 trains with AdamW (learning rate 5e-5, weight decay
1e-2) on a binary cross-entropy weighted per sample by the closeness of the EDSS to 5, batches of
70 drawn by a class-balancing weighted sampler, and selects models by validation AUC. Both are
:data:`PRESETS`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F  # noqa: N812 (torch's convention)
from sklearn.metrics import roc_auc_score
from sklearn.utils.class_weight import compute_class_weight
from torch import nn
from torch.utils.data import DataLoader, WeightedRandomSampler

from bids_app.deep.devices import with_oom_fallback
from bids_app.deep.networks import class_probabilities, positive_probability
from bids_app.deep.volumes import VolumeDataset

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingConfig:
    """Settings of :func:`train_network`; defaults are those of Coll 2023 §2.3.2.

    Parameters
    ----------
    epochs : int, default=200
        Largest number of epochs (Coll 2023 §2.3.2).
    batch_size : int, default=2
        Training batch size (Coll 2023 §2.3.2); validation uses the same.
    optimizer : {"adam", "adamw"}, default="adam"
        Adam (Coll 2023 §2.3.2) or AdamW (Lu 2023 §II.D).
    learning_rate : float, default=1e-3
        Initial learning rate; Coll 2023 gives none, so this is torch's Adam default.
    weight_decay : float, default=0.0
        Weight decay (coupled L2 for Adam, decoupled for AdamW).
    loss : {"weighted-ce", "edss-closeness", "ce"}, default="weighted-ce"
        Per-sample weights of the cross-entropy: inverse to the class frequency in the training
        set (Coll 2023 §2.3.2), the datasets' per-sample weights such as
        :func:`edss_closeness_weights` (Lu 2023 §II.D), or none. Losses are weighted means,
        ``sum(w * loss) / sum(w)``.
    weighted_sampler : bool, default=False
        Draw training batches with a class-balancing sampler (Lu 2023 §II.D).
    patience : int or None, default=20
        Early stopping after this many epochs without a better validation score (Coll 2023
        §2.3.2 gives no number); None trains for all epochs.
    lr_factor : float, default=0.1
        Factor of ReduceLROnPlateau (Coll 2023 §2.3.2 gives none; torch's default).
    lr_patience : int or None, default=10
        Patience of ReduceLROnPlateau (torch's default); None keeps the learning rate constant.
    monitor : {"loss", "auc"}, default="loss"
        Validation score for early stopping, learning-rate decay and the choice of the best
        epoch: the loss (Coll 2023 §2.3.2) or the AUC (Lu 2023 §II.D).
    bf16 : bool, default=True
        bfloat16 autocast of the forward pass, on CUDA only.
    num_workers : int, default=0
        DataLoader worker processes.
    seed : int, default=0
        Seed of the batch order, the sampler, the augmentation stream and dropout.
    """

    epochs: int = 200
    batch_size: int = 2
    optimizer: Literal["adam", "adamw"] = "adam"
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    loss: Literal["weighted-ce", "edss-closeness", "ce"] = "weighted-ce"
    weighted_sampler: bool = False
    patience: int | None = 20
    lr_factor: float = 0.1
    lr_patience: int | None = 10
    monitor: Literal["loss", "auc"] = "loss"
    bf16: bool = True
    num_workers: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        choices = {
            "optimizer": ("adam", "adamw"),
            "loss": ("weighted-ce", "edss-closeness", "ce"),
            "monitor": ("loss", "auc"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.num_workers < 0:
            raise ValueError("epochs and batch_size must be positive, num_workers non-negative")
        if self.learning_rate <= 0 or self.weight_decay < 0 or not 0 < self.lr_factor < 1:
            raise ValueError("learning_rate > 0, weight_decay >= 0 and 0 < lr_factor < 1 needed")
        for name in ("patience", "lr_patience"):
            value = getattr(self, name)
            if value is not None and value < (1 if name == "patience" else 0):
                raise ValueError(f"{name} must be None or positive, got {value}")


#: Training presets; override with ``dataclasses.replace(PRESETS[name], epochs=...)``.
PRESETS: dict[str, TrainingConfig] = {
    # Coll 2023 §2.3.2: Adam, batches of 2, <= 200 epochs, weighted cross-entropy, early stopping
    # on the validation loss, learning-rate decay on plateaus.
    "coll2023": TrainingConfig(),
    # Lu 2023 §II.D: AdamW (lr 5e-5, weight decay 1e-2), batches of 70, EDSS-closeness weights,
    # weighted sampler, AUC as the metric. It states no epochs, early stopping or decay: the
    # epochs and patience of Coll 2023 are kept, the learning rate stays constant.
    "lu2023": TrainingConfig(
        batch_size=70,
        optimizer="adamw",
        learning_rate=5e-5,
        weight_decay=1e-2,
        loss="edss-closeness",
        weighted_sampler=True,
        lr_patience=None,
        monitor="auc",
    ),
}


@dataclass
class TrainingResult:
    """What :func:`train_network` returns.

    Attributes
    ----------
    model : torch.nn.Module
        The network with the weights of the best epoch (of the last one without validation).
    history : pandas.DataFrame
        One row per epoch: ``epoch``, ``train_loss``, ``validation_loss``, ``validation_auc``
        (NaN without validation) and ``learning_rate``.
    best_epoch : int
        Epoch (from 1) whose weights ``net`` holds.
    stopped_early : bool
        Whether early stopping ended training before ``epochs``.
    """

    model: nn.Module
    history: pd.DataFrame
    best_epoch: int
    stopped_early: bool


def class_weights(labels: np.ndarray, n_classes: int = 2) -> np.ndarray:
    """Class weights inverse to the class frequencies, ``n / (K * n_c)`` (Coll 2023 §2.3.2).

    Parameters
    ----------
    labels : numpy.ndarray of int
        Labels (``0 .. n_classes - 1``) of the training items; every class must occur.
    n_classes : int, default=2
        Classes K: two for the binary stratification (Coll 2023: EDSS < 3 / >= 3), more for a
        multi-class target.

    Returns
    -------
    numpy.ndarray
        Weights of classes ``0 .. K-1``.

    Examples
    --------
    >>> np.round(class_weights(np.array([0, 0, 0, 1])), 3).tolist()
    [0.667, 2.0]
    >>> np.round(class_weights(np.array([0, 0, 1, 2]), 3), 3).tolist()
    [0.667, 1.333, 1.333]
    """
    return compute_class_weight("balanced", classes=np.arange(n_classes), y=labels)


def n_classes_of(net: nn.Module) -> int:
    """Classes of a network: its logits, or two for one logit under a sigmoid."""
    return max(int(net.n_outputs), 2)


def balanced_sampler(
    labels: np.ndarray, generator: torch.Generator, n_classes: int = 2
) -> WeightedRandomSampler:
    """Sampler drawing every class equally often, with replacement (Lu 2023 §II.D).

    Parameters
    ----------
    labels : numpy.ndarray of int
        Labels (``0 .. n_classes - 1``) of the items.
    generator : torch.Generator
        Source of the draws.
    n_classes : int, default=2
        Classes of the target.

    Returns
    -------
    torch.utils.data.WeightedRandomSampler
        Draws ``len(labels)`` items per epoch, each with probability inverse to its class size.
    """
    weights = class_weights(labels, n_classes)[labels]
    return WeightedRandomSampler(
        weights.tolist(), num_samples=len(labels), replacement=True, generator=generator
    )


def edss_closeness_weights(edss: np.ndarray, centre: float = 5.0) -> np.ndarray:
    """Loss weights ``2 - |EDSS - 5| / 5`` of Lu 2023 §II.D: 2 at EDSS 5, 1 at EDSS 0 or 10.

    Parameters
    ----------
    edss : array-like of float
        EDSS of each sample, in [0, 10].
    centre : float, default=5.0
        The EDSS of greatest weight, Lu 2023's class threshold.

    Returns
    -------
    numpy.ndarray
        One weight per sample.

    Examples
    --------
    >>> edss_closeness_weights([0.0, 3.5, 5.0, 6.5]).tolist()
    [1.0, 1.7, 2.0, 1.7]
    """
    edss = np.asarray(edss, dtype=float)
    if not (np.isfinite(edss).all() and (edss >= 0).all() and (edss <= 10).all()):
        raise ValueError("EDSS values must be finite and lie in [0, 10]")
    return 2.0 - np.abs(edss - centre) / 5.0


def train_network(
    net: nn.Module,
    train: VolumeDataset,
    validation: VolumeDataset | None,
    config: TrainingConfig,
    device: torch.device,
) -> TrainingResult:
    """Train a network, keeping the weights of its best validation epoch.

    Each epoch goes once through the training items (Coll 2023 §2.3.2), then scores the
    validation set; the learning rate drops by ``lr_factor`` when the monitored score stalls
    for ``lr_patience`` epochs, and training stops after ``patience`` epochs without a better
    score. Without a validation set the training loss drives the learning-rate decay and the
    network trains for all epochs. The random state of torch is seeded from ``config.seed``
    inside the call and restored afterwards, so a run on the CPU repeats exactly.

    Parameters
    ----------
    net : torch.nn.Module
        Network (see the module docstring); moved to ``device`` and trained in place.
    train : VolumeDataset
        Training items, with their augmentation.
    validation : VolumeDataset or None
        Validation items, without augmentation.
    config : TrainingConfig
        Settings.
    device : torch.device
        Where to train.

    Returns
    -------
    TrainingResult
        The network with its best weights, the history, the best epoch and whether training
        stopped early.
    """
    _check_inputs(net, train, validation, config)
    cuda_devices = []
    if device.type == "cuda":
        cuda_devices = [torch.cuda.current_device() if device.index is None else device.index]
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(config.seed)
        return _train(net.to(device), train, validation, config, device)


def train_with_oom_fallback(
    net: nn.Module,
    train: VolumeDataset,
    validation: VolumeDataset | None,
    config: TrainingConfig,
    device: torch.device,
    logger: logging.Logger = LOGGER,
) -> TrainingResult:
    """:func:`train_network`, restarted from the initial weights with smaller batches on GPU OOM.

    See :func:`bids_app.deep.devices.with_oom_fallback`; parameters as :func:`train_network`.

    Returns
    -------
    TrainingResult
        As :func:`train_network`.
    """
    initial = {name: value.detach().cpu().clone() for name, value in net.state_dict().items()}

    def attempt(batch_size: int, where: torch.device) -> TrainingResult:
        net.load_state_dict(initial)
        return train_network(net, train, validation, replace(config, batch_size=batch_size), where)

    return with_oom_fallback(attempt, config.batch_size, device, logger)


def predict(
    net: nn.Module,
    dataset: VolumeDataset,
    device: torch.device,
    batch_size: int,
    bf16: bool = True,
) -> np.ndarray:
    """Probability of the positive class for each item (Coll 2023 §2.3.3), in eval mode.

    Parameters
    ----------
    net : torch.nn.Module
        Trained network (moved to ``device``).
    dataset : VolumeDataset
        Items (normally without augmentation).
    device : torch.device
        Where to run.
    batch_size : int
        Items per forward pass.
    bf16 : bool, default=True
        bfloat16 autocast, on CUDA only.

    Returns
    -------
    numpy.ndarray
        Probabilities, shape ``(len(dataset),)``.
    """
    logits, _, _ = _outputs(net, net, dataset, device, batch_size, bf16)
    return positive_probability(logits).numpy()


def predict_proba(
    net: nn.Module,
    dataset: VolumeDataset,
    device: torch.device,
    batch_size: int,
    bf16: bool = True,
) -> np.ndarray:
    """Probability of every class for each item, in eval mode (multi-class targets).

    Parameters
    ----------
    net : torch.nn.Module
        Trained network (moved to ``device``).
    dataset : VolumeDataset
        Items (normally without augmentation).
    device : torch.device
        Where to run.
    batch_size : int
        Items per forward pass.
    bf16 : bool, default=True
        bfloat16 autocast, on CUDA only.

    Returns
    -------
    numpy.ndarray
        Probabilities, shape ``(len(dataset), K)``; each row sums to 1.
    """
    logits, _, _ = _outputs(net, net, dataset, device, batch_size, bf16)
    return class_probabilities(logits).numpy()


def embed(
    net: nn.Module,
    dataset: VolumeDataset,
    device: torch.device,
    batch_size: int,
    bf16: bool = True,
) -> np.ndarray:
    """Penultimate features ``net.embed(x, age)`` of each item, in eval mode.

    Parameters
    ----------
    net : torch.nn.Module
        Trained network (moved to ``device``).
    dataset : VolumeDataset
        Items (normally without augmentation).
    device : torch.device
        Where to run.
    batch_size : int
        Items per forward pass.
    bf16 : bool, default=True
        bfloat16 autocast, on CUDA only.

    Returns
    -------
    numpy.ndarray
        Features, shape ``(len(dataset), F)``, float32.
    """
    features, _, _ = _outputs(net, net.embed, dataset, device, batch_size, bf16)
    return features.numpy()


def _check_inputs(
    net: nn.Module, train: VolumeDataset, validation: VolumeDataset | None, config: TrainingConfig
) -> None:
    """Refuse inputs the training cannot use, with the fix."""
    if net.n_outputs < 1:
        raise ValueError(
            f"net.n_outputs must be 1 (sigmoid) or K >= 2 (softmax), got {net.n_outputs}"
        )
    n_classes = n_classes_of(net)
    datasets = (
        {"training": train} if validation is None else {"training": train, "validation": validation}
    )
    for name, dataset in datasets.items():
        labels = dataset.item_labels
        if len(labels) == 0 or not np.isin(labels, np.arange(n_classes)).all():
            raise ValueError(
                f"the {name} set must be non-empty with labels 0 .. {n_classes - 1} only"
            )
        if net.uses_age and dataset.ages is None:
            raise ValueError(f"the network uses age but the {name} set has no ages")
        if config.loss == "edss-closeness" and dataset.weights is None:
            raise ValueError(
                f"loss 'edss-closeness' needs per-sample weights in the {name} set "
                "(VolumeDataset(weights=edss_closeness_weights(edss)))"
            )
    if np.unique(train.item_labels).size < n_classes:
        raise ValueError(f"the training set needs samples of every class (of {n_classes})")
    if (
        validation is not None
        and config.monitor == "auc"
        and np.unique(validation.item_labels).size < n_classes
    ):
        raise ValueError("monitor 'auc' needs every class in the validation set; use 'loss'")


def _train(
    net: nn.Module,
    train: VolumeDataset,
    validation: VolumeDataset | None,
    config: TrainingConfig,
    device: torch.device,
) -> TrainingResult:
    """Run the training loop of :func:`train_network` inside its seeded random state."""
    generator = torch.Generator().manual_seed(config.seed)
    n_classes = n_classes_of(net)
    loader = DataLoader(
        train,
        batch_size=config.batch_size,
        shuffle=not config.weighted_sampler,
        sampler=balanced_sampler(train.item_labels, generator, n_classes)
        if config.weighted_sampler
        else None,
        generator=None if config.weighted_sampler else generator,
        num_workers=config.num_workers,
        pin_memory=device.type == "cuda",
    )
    optimiser_class = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    optimiser = optimiser_class(
        net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    maximise = config.monitor == "auc" and validation is not None
    scheduler = (
        None
        if config.lr_patience is None
        else torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimiser,
            mode="max" if maximise else "min",
            factor=config.lr_factor,
            patience=config.lr_patience,
        )
    )
    weigh = _weighting(config.loss, train.item_labels, n_classes, device)
    rows, best_score, best_epoch, best_state = [], None, 0, None
    for epoch in range(1, config.epochs + 1):
        learning_rate = optimiser.param_groups[0]["lr"]
        train.set_epoch(epoch, seed=config.seed)
        train_loss = _train_epoch(net, loader, optimiser, weigh, device, config.bf16)
        validation_loss, validation_auc = (
            (np.nan, np.nan)
            if validation is None
            else _evaluate(net, validation, weigh, device, config.batch_size, config.bf16)
        )
        rows.append((epoch, train_loss, validation_loss, validation_auc, learning_rate))
        LOGGER.debug(
            "Epoch %d: train loss %.4f, validation loss %.4f, AUC %.3f, lr %.2g", *rows[-1]
        )
        score = (
            train_loss if validation is None else (validation_auc if maximise else validation_loss)
        )
        if scheduler is not None:
            scheduler.step(score)
        if validation is None:
            continue
        if best_score is None or (score > best_score if maximise else score < best_score):
            best_score, best_epoch = score, epoch
            best_state = {name: value.detach().clone() for name, value in net.state_dict().items()}
        elif config.patience is not None and epoch - best_epoch >= config.patience:
            break
    history = pd.DataFrame(
        rows,
        columns=["epoch", "train_loss", "validation_loss", "validation_auc", "learning_rate"],
    )
    if best_state is None:
        best_epoch = len(rows)
    else:
        net.load_state_dict(best_state)
    stopped_early = len(rows) < config.epochs
    LOGGER.info(
        "Trained %d epochs%s; keeping epoch %d.",
        len(rows),
        " (stopped early)" if stopped_early else "",
        best_epoch,
    )
    return TrainingResult(net, history, best_epoch, stopped_early)


Weighting = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _weighting(loss: str, labels: np.ndarray, n_classes: int, device: torch.device) -> Weighting:
    """``weigh(y, sample_weight)``: per-sample loss weights of the chosen loss."""
    if loss == "weighted-ce":
        per_class = torch.as_tensor(
            class_weights(labels, n_classes), dtype=torch.float32, device=device
        )
        return lambda y, sample_weight: per_class[y]
    if loss == "edss-closeness":
        return lambda y, sample_weight: sample_weight
    return lambda y, sample_weight: torch.ones_like(sample_weight)


def _autocast(device: torch.device, bf16: bool) -> torch.autocast:
    """bfloat16 autocast on CUDA when asked; a disabled context elsewhere."""
    return torch.autocast(
        device_type=device.type, dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda"
    )


def _forward(
    method: Callable[..., torch.Tensor],
    uses_age: bool,
    batch: dict[str, torch.Tensor],
    device: torch.device,
    bf16: bool,
) -> torch.Tensor:
    """``method(x, age)`` on a batch, as float32."""
    x = batch["x"].to(device, non_blocking=True)
    age = batch["age"].to(device) if uses_age else None
    with _autocast(device, bf16):
        return method(x, age=age).float()


def _per_sample_loss(logits: torch.Tensor, y: torch.Tensor, n_outputs: int) -> torch.Tensor:
    """Cross-entropy (two logits) or binary cross-entropy with logits (one), per sample."""
    if n_outputs == 1:
        return F.binary_cross_entropy_with_logits(logits.reshape(-1), y.float(), reduction="none")
    return F.cross_entropy(logits, y, reduction="none")


def _train_epoch(
    net: nn.Module,
    loader: DataLoader,
    optimiser: torch.optim.Optimizer,
    weigh: Weighting,
    device: torch.device,
    bf16: bool,
) -> float:
    """One pass over the training loader; returns the weighted mean training loss."""
    net.train()
    total, norm = 0.0, 0.0
    for batch in loader:
        logits = _forward(net, net.uses_age, batch, device, bf16)
        y = batch["y"].to(device)
        weights = weigh(y, batch["weight"].to(device))
        weighted = (weights * _per_sample_loss(logits, y, net.n_outputs)).sum()
        optimiser.zero_grad(set_to_none=True)
        (weighted / weights.sum()).backward()
        optimiser.step()
        total += float(weighted.detach())
        norm += float(weights.sum())
    loss = total / norm
    if not np.isfinite(loss):
        raise FloatingPointError("training diverged (non-finite loss); lower the learning rate")
    return loss


def _evaluate(
    net: nn.Module,
    dataset: VolumeDataset,
    weigh: Weighting,
    device: torch.device,
    batch_size: int,
    bf16: bool,
) -> tuple[float, float]:
    """Weighted mean loss and AUC (macro one-vs-rest for K classes) of a validation set."""
    logits, y, sample_weight = _outputs(net, net, dataset, device, batch_size, bf16)
    weights = weigh(y.to(device), sample_weight.to(device)).cpu()
    loss = float((weights * _per_sample_loss(logits, y, net.n_outputs)).sum() / weights.sum())
    labels = y.numpy()
    probabilities = class_probabilities(logits).numpy()
    n_classes = probabilities.shape[1]
    if np.unique(labels).size < n_classes:
        return loss, np.nan
    if n_classes == 2:
        return loss, float(roc_auc_score(labels, probabilities[:, 1]))
    return loss, float(roc_auc_score(labels, probabilities, multi_class="ovr"))


def _outputs(
    net: nn.Module,
    method: Callable[..., torch.Tensor],
    dataset: VolumeDataset,
    device: torch.device,
    batch_size: int,
    bf16: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``method(x, age)`` over a dataset in eval mode without gradients, with labels and weights.

    Returns CPU float32 outputs, int64 labels and float32 loss weights of the items.
    """
    net.to(device).eval()
    loader = DataLoader(dataset, batch_size=batch_size, pin_memory=device.type == "cuda")
    outputs, labels, weights = [], [], []
    with torch.no_grad():
        for batch in loader:
            outputs.append(_forward(method, net.uses_age, batch, device, bf16).cpu())
            labels.append(batch["y"])
            weights.append(batch["weight"])
    return torch.cat(outputs), torch.cat(labels), torch.cat(weights)

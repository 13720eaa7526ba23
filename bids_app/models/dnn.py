"""The fully connected network of Turrisi 2024 (DNNt, DNNv) as a scikit-learn classifier.

Turrisi 2024 §2.4 describes the network as "3 layers with 50, 3, 2 neurons" with dropout p = 0.2
"after each layer", trained on the cross-entropy with Adam (learning rate 0.001) and "an
l2-penalty equal to 0.001", for at most 200 epochs with a patience of 50 epochs. Early stopping
monitors the F1 score of the training set (DNNt) or of a 20 % validation split of it (DNNv).
The wording is that of Keras, and where the paper is silent this module takes Keras's defaults:
Glorot-uniform weights and zero biases, Adam's β₁ = 0.9, β₂ = 0.999, ε = 1e-7, batches of 32,
and the penalty as ``kernel_regularizer=l2(0.001)``, i.e. ``0.001 * sum(w ** 2)`` over the
weight matrices (not the biases) added to the mean cross-entropy of each batch.

The last layer has one neuron per class (2 in the paper's binary problem) and a softmax; the
hidden layers use ReLU (the paper names no activation).

The network is tiny (about 20 000 weights for 400 features), so torch's per-operation overhead
weighs as much as the arithmetic. Its gradients are therefore written out by hand (a few matrix
products per layer), and all weights live in one flat buffer that a single Adam update treats at
once: against autograd and ``torch.optim.Adam`` at equal results, this takes about half the CPU
time per fit (``benchmarks/bench_dnn.py``, ``benchmarks/results/dnn.tsv``), and the group level
fits each DNN 5 times per fold and feature set (Turrisi 2024 §2.4's trials). ``tests/test_dnn.py``
checks the gradients against autograd.
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Any, Literal

import numpy as np
import torch
from scipy.special import softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

#: Keras's defaults for Adam, which Turrisi 2024 §2.4 does not change.
ADAM_BETAS = (0.9, 0.999)
ADAM_EPSILON = 1e-7


class _Network:
    """Weights, hand-written back-propagation and Adam of a ReLU network with dropout.

    Parameters
    ----------
    sizes : sequence of int
        Units per layer, inputs first and classes last.
    dropout : float
        Probability of dropping each hidden unit during training.
    l2 : float
        Factor of the penalty ``l2 * sum(W ** 2)`` over the weight matrices.
    learning_rate : float
        Adam's step size.
    generator : torch.Generator
        Source of the initial weights.
    """

    def __init__(
        self,
        sizes: list[int],
        dropout: float,
        l2: float,
        learning_rate: float,
        generator: torch.Generator,
    ) -> None:
        self.dropout, self.l2, self.learning_rate = dropout, l2, learning_rate
        self.n_classes = sizes[-1]
        layers = list(pairwise(sizes))
        device = generator.device
        n_params = sum((n_in + 1) * n_out for n_in, n_out in layers)
        self.params = torch.zeros(n_params, dtype=torch.float32, device=device)
        self.grad = torch.zeros_like(self.params)
        # Per-layer views into the flat buffers: weights are (inputs, outputs), as Keras's kernels.
        self.weights, self.biases, self.weight_grads, self.bias_grads = [], [], [], []
        offset = 0
        for n_in, n_out in layers:
            end = offset + n_in * n_out
            self.weights.append(self.params[offset:end].view(n_in, n_out))
            self.weight_grads.append(self.grad[offset:end].view(n_in, n_out))
            self.biases.append(self.params[end : end + n_out])
            self.bias_grads.append(self.grad[end : end + n_out])
            offset = end + n_out
            limit = math.sqrt(6.0 / (n_in + n_out))  # Glorot uniform; biases stay 0 (Keras)
            self.weights[-1].uniform_(-limit, limit, generator=generator)
        # Adam's moving averages of the gradient and of its square, over the flat buffer.
        self.moment = torch.zeros_like(self.params)
        self.square = torch.zeros_like(self.params)
        self.steps = 0

    def draw_masks(self, n_rows: int, generator: torch.Generator) -> list[torch.Tensor]:
        """Draw the inverted-dropout masks of the hidden layers for ``n_rows`` samples.

        Kept units are scaled by ``1 / (1 - dropout)`` so that inference needs no rescaling.
        """
        return [
            torch.rand(
                n_rows,
                weights.shape[1],
                generator=generator,
                dtype=weights.dtype,
                device=weights.device,
            )
            .ge_(self.dropout)
            .div_(1.0 - self.dropout)
            for weights in self.weights[:-1]
        ]

    def targets(self, classes: torch.Tensor) -> torch.Tensor:
        """Encode class codes as :meth:`train_batch` takes them: one-hot rows."""
        return torch.nn.functional.one_hot(classes, self.n_classes).to(self.params.dtype)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores before the softmax, without dropout (inference)."""
        for weights, bias in zip(self.weights[:-1], self.biases[:-1], strict=True):
            x = torch.addmm(bias, x, weights).relu_()
        return torch.addmm(self.biases[-1], x, self.weights[-1])

    def backprop(self, x: torch.Tensor, targets: torch.Tensor, masks: list[torch.Tensor]) -> None:
        """Write the gradient of the penalised loss of one batch into ``self.grad``.

        The loss is the mean cross-entropy of the batch plus ``l2 * sum(W ** 2)`` over the weight
        matrices, whose gradient ``2 * l2 * W`` is added to that of each weight matrix.

        Parameters
        ----------
        x : torch.Tensor
            Batch of inputs, (samples, features).
        targets : torch.Tensor
            One-hot classes of the batch, (samples, classes) (see :meth:`targets`).
        masks : list of torch.Tensor
            Dropout masks of the hidden layers for this batch (see :meth:`draw_masks`).
        """
        inputs = [x]  # the input of each layer: the batch, then the (dropped-out) hidden units
        for weights, bias, mask in zip(self.weights[:-1], self.biases[:-1], masks, strict=True):
            inputs.append(torch.addmm(bias, inputs[-1], weights).relu_().mul_(mask))
        # Gradient of the mean cross-entropy with respect to the logits: (softmax - one-hot) / n.
        delta = torch.addmm(self.biases[-1], inputs[-1], self.weights[-1]).softmax(dim=1)
        delta.sub_(targets).div_(len(x))
        for layer in reversed(range(len(self.weights))):
            # inputsᵀ · delta + 2 l2 W: the penalty is Keras's kernel_regularizer=l2(l2), l2 ΣW²
            # (Turrisi 2024 §2.4's "l2-penalty equal to 0.001"), not weight decay of the update.
            torch.addmm(
                self.weights[layer],
                inputs[layer].T,
                delta,
                beta=2.0 * self.l2,
                out=self.weight_grads[layer],
            )
            torch.sum(delta, dim=0, out=self.bias_grads[layer])
            if layer:
                # Through dropout (the mask) and ReLU (units whose output is positive).
                delta = delta @ self.weights[layer].T
                delta.mul_(masks[layer - 1]).mul_(inputs[layer] > 0)

    def train_batch(
        self, x: torch.Tensor, targets: torch.Tensor, masks: list[torch.Tensor]
    ) -> None:
        """Take one Adam step, in Keras's form (ε added to the raw ``√v``), on a batch.

        Parameters are those of :meth:`backprop`.
        """
        self.backprop(x, targets, masks)
        beta1, beta2 = ADAM_BETAS
        self.steps += 1
        self.moment.lerp_(self.grad, 1.0 - beta1)
        self.square.mul_(beta2).addcmul_(self.grad, self.grad, value=1.0 - beta2)
        step_size = (
            self.learning_rate * math.sqrt(1.0 - beta2**self.steps) / (1.0 - beta1**self.steps)
        )
        denominator = self.square.sqrt().add_(ADAM_EPSILON)
        self.params.addcdiv_(self.moment, denominator, value=-step_size)

    def state(self) -> torch.Tensor:
        """Return a copy of the weights and biases."""
        return self.params.clone()

    def load(self, state: torch.Tensor) -> None:
        """Set the weights and biases to a copy taken by :meth:`state`."""
        self.params.copy_(state)


def _macro_f1(y_true: torch.Tensor, y_pred: torch.Tensor, n_classes: int) -> float:
    """Unweighted mean of the per-class F1 scores, over the classes seen in either argument.

    Equal to ``sklearn.metrics.f1_score(..., average="macro")``, without its per-call overhead
    (it runs once per epoch).
    """
    counts = torch.bincount(y_true * n_classes + y_pred, minlength=n_classes**2)
    counts = counts.view(n_classes, n_classes)
    denominator = counts.sum(dim=0) + counts.sum(dim=1)  # 2 TP + FP + FN per class
    seen = denominator > 0
    return (2.0 * counts.diagonal()[seen] / denominator[seen]).mean().item()


class DNNClassifier(ClassifierMixin, BaseEstimator):
    """Fully connected network with dropout and F1-based early stopping (Turrisi 2024 §2.4).

    ``early_stopping="train"`` is the paper's DNNt: the F1 score of the whole training set is
    monitored. ``early_stopping="validation"`` is its DNNv: a stratified ``validation_fraction``
    of the training set is held out from training and its F1 score is monitored. Either way,
    training stops once the score has not improved for ``patience`` epochs, and the weights of
    the best epoch are kept (Keras's ``restore_best_weights=True``, applied also when training
    runs all ``max_epochs``). The score is the macro-averaged F1 (the mean F1 of the classes),
    which does not depend on which class the label encoding calls positive, computed after each
    epoch without dropout, so it is the score of the weights that would be kept.

    The hidden layers use ReLU and inverted dropout; the output layer has one unit per class
    and a softmax. Inputs should be scaled beforehand (the pipeline standardises the features).

    Parameters
    ----------
    hidden_units : tuple of int, default=(50, 3)
        Units of the hidden layers (none: multinomial logistic regression); an output layer
        with one unit per class follows.
    dropout : float, default=0.2
        Dropout probability of each hidden unit during training, in [0, 1).
    learning_rate : float, default=1e-3
        Adam's learning rate.
    l2 : float, default=1e-3
        Factor of the penalty ``l2 * sum(W ** 2)`` on the weight matrices (not the biases).
    max_epochs : int, default=200
        Most passes over the training data.
    patience : int, default=50
        Epochs without improvement of the monitored F1 score after which training stops.
    early_stopping : {"train", "validation"}, default="train"
        Monitor the F1 score of the training set (DNNt) or of a held-out split of it (DNNv).
    validation_fraction : float, default=0.2
        Fraction of the training samples held out with ``early_stopping="validation"``.
    batch_size : int, default=32
        Samples per gradient step.
    random_state : int, RandomState instance or None, default=None
        Seed of the weights, dropout masks, batch order and validation split. Fitting twice
        with the same integer gives identical weights on the same device and thread count.
    device : str, default="cpu"
        Torch device to train on.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels, sorted.
    coefs_ : list of ndarray
        Weight matrix of each layer, (inputs, outputs), in float64.
    intercepts_ : list of ndarray
        Bias vector of each layer, in float64.
    n_epochs_ : int
        Epochs run.
    best_epoch_ : int
        Epoch (0-based) whose weights were kept: the first with the best monitored score.
    history_ : ndarray of shape (n_epochs_,)
        Monitored F1 score after each epoch.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Feature names, when ``X`` is a DataFrame with string column names.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> X, y = make_classification(n_samples=100, random_state=0)
    >>> model = DNNClassifier(max_epochs=20, random_state=0).fit(X, y)
    >>> model.predict_proba(X[:2]).shape
    (2, 2)
    """

    #: How the network is built and trained; ``benchmarks/bench_dnn.py`` swaps in the torch
    #: autograd alternative it compares against.
    _network_type: type[_Network] = _Network

    def __init__(
        self,
        hidden_units: tuple[int, ...] = (50, 3),  # Turrisi 2024 §2.4: 50, 3 (and 2 output) neurons
        dropout: float = 0.2,  # Turrisi 2024 §2.4
        learning_rate: float = 1e-3,  # Turrisi 2024 §2.4: Adam, learning rate 0.001
        l2: float = 1e-3,  # Turrisi 2024 §2.4: "l2-penalty equal to 0.001"
        max_epochs: int = 200,  # Turrisi 2024 §2.4
        patience: int = 50,  # Turrisi 2024 §2.4
        early_stopping: Literal["train", "validation"] = "train",  # Turrisi 2024 §2.4: DNNt
        validation_fraction: float = 0.2,  # Turrisi 2024 §2.4: DNNv's 20 % of the training set
        batch_size: int = 32,  # not given in Turrisi 2024 §2.4: Keras's default
        random_state: int | np.random.RandomState | None = None,
        device: str = "cpu",
    ) -> None:
        self.hidden_units = hidden_units
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.l2 = l2
        self.max_epochs = max_epochs
        self.patience = patience
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.batch_size = batch_size
        self.random_state = random_state
        self.device = device

    def _check_params(self) -> None:
        """Raise ValueError on a parameter outside its range."""
        if any(int(units) < 1 for units in self.hidden_units):
            raise ValueError(f"hidden_units must be positive integers, got {self.hidden_units}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.learning_rate <= 0 or self.l2 < 0:
            raise ValueError("learning_rate must be > 0 and l2 >= 0")
        if self.max_epochs < 1 or self.patience < 0 or self.batch_size < 1:
            raise ValueError("max_epochs and batch_size must be >= 1 and patience >= 0")
        if self.early_stopping not in ("train", "validation"):
            raise ValueError(
                f"early_stopping must be 'train' or 'validation', got {self.early_stopping!r}"
            )
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(
                f"validation_fraction must be in (0, 1), got {self.validation_fraction}"
            )

    def fit(self, X: Any, y: Any) -> DNNClassifier:  # noqa: N803 (scikit-learn's name)
        """Train the network with early stopping.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Scaled numeric features.
        y : array-like of shape (n_samples,)
            Class labels (at least two classes).

        Returns
        -------
        DNNClassifier
            The fitted estimator.
        """
        self._check_params()
        X, y = validate_data(self, X, y, dtype=np.float32)  # noqa: N806
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        n_classes = len(self.classes_)
        if n_classes < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 classes; y has 1 class")
        rng = check_random_state(self.random_state)
        generator = torch.Generator(device=self.device)
        generator.manual_seed(int(rng.randint(np.iinfo(np.int32).max)))

        fit_rows = np.arange(len(y))
        monitor_rows = fit_rows
        if self.early_stopping == "validation":
            # Turrisi 2024 §2.4 does not say what DNNv monitors on its 20 % split (Keras's default
            # would be the validation loss); as DNNt, it is the F1 score here, on a split
            # stratified by class so that each class is in it (Keras's validation_split takes
            # the last rows, unshuffled).
            fit_rows, monitor_rows = train_test_split(
                fit_rows, test_size=self.validation_fraction, stratify=codes, random_state=rng
            )
        features = torch.tensor(X, dtype=torch.float32, device=self.device)
        classes = torch.tensor(codes, device=self.device)
        fit_index = torch.as_tensor(fit_rows, device=self.device)
        monitor_features = features[torch.as_tensor(monitor_rows, device=self.device)]
        monitor_classes = classes[torch.as_tensor(monitor_rows, device=self.device)]

        # Turrisi 2024 §2.4's dropout "after each layer" is read as after each hidden layer:
        # dropping output units would only perturb the softmax.
        network = self._network_type(
            [X.shape[1], *map(int, self.hidden_units), n_classes],
            self.dropout,
            self.l2,
            self.learning_rate,
            generator,
        )
        targets = network.targets(classes)
        best_state = network.state()
        history: list[float] = []
        best_score, best_epoch, epochs_without_gain = -math.inf, 0, 0
        for epoch in range(self.max_epochs):
            order = fit_index[
                torch.randperm(len(fit_index), generator=generator, device=self.device)
            ]
            epoch_features, epoch_targets = features[order], targets[order]
            masks = network.draw_masks(len(order), generator)
            for start in range(0, len(order), self.batch_size):
                batch = slice(start, start + self.batch_size)
                network.train_batch(
                    epoch_features[batch], epoch_targets[batch], [mask[batch] for mask in masks]
                )
            predicted = network.logits(monitor_features).argmax(dim=1)
            history.append(_macro_f1(monitor_classes, predicted, n_classes))
            # Keras's EarlyStopping: only a strict gain resets the patience counter.
            if history[-1] > best_score:
                best_score, best_epoch, epochs_without_gain = history[-1], epoch, 0
                best_state = network.state()
            else:
                epochs_without_gain += 1
                if epochs_without_gain >= self.patience:
                    break
        network.load(best_state)

        self.coefs_ = [weights.detach().double().cpu().numpy() for weights in network.weights]
        self.intercepts_ = [bias.detach().double().cpu().numpy() for bias in network.biases]
        self.n_epochs_ = len(history)
        self.best_epoch_ = best_epoch
        self.history_ = np.asarray(history)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:  # noqa: N803
        """Class probabilities: the softmax of the network's output, without dropout.

        Computed in float64 with NumPy, so that a sample's probabilities do not depend on the
        other samples passed with it.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Scaled numeric features.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Probability of each class of ``classes_``.
        """
        check_is_fitted(self)
        hidden = validate_data(self, X, reset=False, dtype=np.float64)
        for weights, bias in zip(self.coefs_[:-1], self.intercepts_[:-1], strict=True):
            hidden = np.maximum(hidden @ weights + bias, 0.0)
        return softmax(hidden @ self.coefs_[-1] + self.intercepts_[-1], axis=1)

    def predict(self, X: Any) -> np.ndarray:  # noqa: N803
        """Most probable class of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Scaled numeric features.

        Returns
        -------
        ndarray of shape (n_samples,)
            Predicted labels, from ``classes_``.
        """
        probabilities = self.predict_proba(X)
        return self.classes_[np.argmax(probabilities, axis=1)]

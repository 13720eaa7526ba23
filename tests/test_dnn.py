"""Tests of the Turrisi 2024 deep neural network classifier (bids_app.models.dnn)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.utils.estimator_checks import parametrize_with_checks

from bids_app.models import dnn
from bids_app.models.dnn import DNNClassifier


def _planted(n_samples: int = 600, n_features: int = 30, seed: int = 0):
    """Standard-normal features; the class is the sign of a noisy sum of the first 5."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_samples, n_features))
    y = (x[:, :5].sum(axis=1) + rng.normal(0.0, 0.5, n_samples) > 0).astype(int)
    return x, y


@parametrize_with_checks(
    [DNNClassifier(random_state=0), DNNClassifier(early_stopping="validation", random_state=0)],
    expected_failed_checks=lambda estimator: {
        "check_array_api_input": "not supported: inputs are converted to NumPy and torch arrays"
    },
)
def test_sklearn_conventions(estimator, check):
    check(estimator)


def _reference_loss(weights, biases, x, classes, masks, l2):
    """The penalised loss of Turrisi 2024 §2.4 with torch's autograd: cross-entropy + l2 ΣW²."""
    hidden = x
    for w, b, mask in zip(weights[:-1], biases[:-1], masks, strict=True):
        hidden = torch.relu(hidden @ w + b) * mask
    loss = torch.nn.functional.cross_entropy(hidden @ weights[-1] + biases[-1], classes)
    return loss + l2 * sum((w**2).sum() for w in weights)


def test_gradients_match_autograd():
    generator = torch.Generator().manual_seed(0)
    network = dnn._Network(
        [7, 5, 3, 4], dropout=0.3, l2=0.01, learning_rate=1e-3, generator=generator
    )
    x = torch.randn(9, 7, generator=generator)
    classes = torch.arange(9) % 4
    masks = network.draw_masks(9, generator)
    network.backprop(x, network.targets(classes), masks)

    weights = [w.clone().requires_grad_() for w in network.weights]
    biases = [b.clone().requires_grad_() for b in network.biases]
    _reference_loss(weights, biases, x, classes, masks, l2=0.01).backward()

    assert any(bool((mask == 0).any()) for mask in masks)  # dropout was exercised
    for mine, reference in zip(
        network.weight_grads + network.bias_grads,
        [w.grad for w in weights] + [b.grad for b in biases],
        strict=True,
    ):
        torch.testing.assert_close(mine, reference, rtol=1e-5, atol=1e-6)


def test_training_steps_match_torch_adam():
    """Ten steps of the hand-written Adam land where torch.optim.Adam takes the same weights."""
    generator = torch.Generator().manual_seed(0)
    network = dnn._Network(
        [7, 5, 3, 4], dropout=0.3, l2=0.01, learning_rate=0.01, generator=generator
    )
    weights = [w.clone().requires_grad_() for w in network.weights]
    biases = [b.clone().requires_grad_() for b in network.biases]
    optimizer = torch.optim.Adam(
        weights + biases, lr=0.01, betas=dnn.ADAM_BETAS, eps=dnn.ADAM_EPSILON
    )
    initial = network.state()
    for _ in range(10):
        x = torch.randn(9, 7, generator=generator)
        classes = torch.randint(0, 4, (9,), generator=generator)
        masks = network.draw_masks(9, generator)
        network.train_batch(x, network.targets(classes), masks)
        optimizer.zero_grad()
        _reference_loss(weights, biases, x, classes, masks, l2=0.01).backward()
        optimizer.step()

    for mine, reference in zip(network.weights + network.biases, weights + biases, strict=True):
        # Keras adds ε to √v, torch to the bias-corrected √v̂: equal but where √v is as small as
        # ε (a weight whose gradient was 0 in the first steps): 1e-5 on moves of up to 0.1.
        torch.testing.assert_close(mine, reference.detach(), rtol=1e-4, atol=1e-4)
    assert not torch.allclose(network.state(), initial, atol=1e-3)  # the weights did move


def test_macro_f1_matches_sklearn():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 3, 50)  # class 3 is in neither array, class 2 never predicted
    y_pred = rng.integers(0, 2, 50)
    mine = dnn._macro_f1(torch.as_tensor(y_true), torch.as_tensor(y_pred), n_classes=4)
    assert mine == pytest.approx(f1_score(y_true, y_pred, average="macro"))


@pytest.mark.parametrize("early_stopping", ["train", "validation"])
def test_learns_planted_signal_and_not_noise(early_stopping):
    x, y = _planted()
    permuted = np.random.default_rng(1).permutation(y)  # labels unrelated to x, test set included
    x_train, x_test, y_train, y_test, permuted_train, permuted_test = train_test_split(
        x, y, permuted, test_size=200, random_state=0
    )
    model = DNNClassifier(early_stopping=early_stopping, random_state=0)

    signal = clone(model).fit(x_train, y_train).predict_proba(x_test)[:, 1]
    assert roc_auc_score(y_test, signal) >= 0.9

    noise = clone(model).fit(x_train, permuted_train).predict_proba(x_test)[:, 1]
    assert 0.35 <= roc_auc_score(permuted_test, noise) <= 0.65


def test_same_seed_same_model_and_global_rng_untouched():
    x, y = _planted(200, 20)
    torch_state = torch.get_rng_state()
    numpy_state = np.random.get_state()[1].copy()  # noqa: NPY002 (the global state is tested)

    first = DNNClassifier(random_state=3, max_epochs=30).fit(x, y).predict_proba(x)
    second = DNNClassifier(random_state=3, max_epochs=30).fit(x, y).predict_proba(x)
    other = DNNClassifier(random_state=4, max_epochs=30).fit(x, y).predict_proba(x)

    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], numpy_state)  # noqa: NPY002


@pytest.mark.parametrize("early_stopping", ["train", "validation"])
def test_early_stopping_stops_and_keeps_the_best_epoch(early_stopping):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((150, 10)), rng.integers(0, 2, 150)
    model = DNNClassifier(early_stopping=early_stopping, patience=5, random_state=0).fit(x, y)

    assert model.n_epochs_ < model.max_epochs
    assert model.n_epochs_ == model.best_epoch_ + model.patience + 1
    assert len(model.history_) == model.n_epochs_
    assert np.argmax(model.history_) == model.best_epoch_
    # The same run cut at the best epoch ends with the weights that were kept.
    cut = clone(model).set_params(max_epochs=model.best_epoch_ + 1).fit(x, y)
    np.testing.assert_array_equal(cut.predict_proba(x), model.predict_proba(x))


def test_validation_split_is_stratified(monkeypatch):
    splits = []

    def spy(*arrays, **options):
        split = train_test_split(*arrays, **options)
        splits.append(split)
        return split

    monkeypatch.setattr(dnn, "train_test_split", spy)
    y = np.array([1] * 5 + [0] * 20)  # 20 % minority: 1 of the 5 validation samples
    x = np.random.default_rng(0).standard_normal((25, 4))
    DNNClassifier(early_stopping="validation", max_epochs=2, random_state=0).fit(x, y)

    (fit_rows, validation_rows), *_ = splits
    assert len(validation_rows) == 5
    assert sorted(y[validation_rows]) == [0, 0, 0, 0, 1]
    assert len(np.intersect1d(fit_rows, validation_rows)) == 0


def test_string_labels_dataframe_and_three_classes():
    x, y = _planted(300, 12)
    labels = np.where(y == 1, "ALS", "mimic").astype(object)
    labels[::3] = "control"
    frame = pd.DataFrame(x, columns=[f"roi_{i}" for i in range(12)])
    model = DNNClassifier(max_epochs=20, random_state=0).fit(frame, labels)

    assert list(model.classes_) == ["ALS", "control", "mimic"]
    assert list(model.feature_names_in_) == list(frame.columns)
    probabilities = model.predict_proba(frame)
    assert probabilities.shape == (300, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    assert set(model.predict(frame)) <= {"ALS", "control", "mimic"}
    assert [w.shape for w in model.coefs_] == [(12, 50), (50, 3), (3, 3)]


def test_grid_search_clones_and_sets_parameters():
    x, y = _planted(150, 10)
    search = GridSearchCV(
        DNNClassifier(max_epochs=10, random_state=0),
        {"dropout": [0.0, 0.2], "hidden_units": [(50, 3), (8,)]},
        cv=3,
        scoring="roc_auc",
    ).fit(x, y)

    assert search.best_params_["dropout"] in (0.0, 0.2)
    assert search.best_estimator_.get_params()["max_epochs"] == 10
    assert search.best_estimator_.hidden_units == search.best_params_["hidden_units"]


@pytest.mark.parametrize(
    "params",
    [{"early_stopping": "loss"}, {"dropout": 1.0}, {"validation_fraction": 0.0}, {"patience": -1}],
)
def test_invalid_parameters_are_refused(params):
    x, y = _planted(40, 3)
    with pytest.raises(ValueError):
        DNNClassifier(**params).fit(x, y)

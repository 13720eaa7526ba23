"""Multi-class and ordinal targets for the 3D networks (issue 16).

A three-class crop cohort with class-specific atrophy is learnt by a narrow ResNet3D trained out
of fold (macro-F1 well above chance), the same crops with permuted classes are not; the fold
metrics are the classifiers' multi-class (and ordinal) ones; the attention maps explain the
predicted class or a named one; invalid LRP targets are refused.
"""

from __future__ import annotations

import dataclasses
import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from bids_app.cli.main import main, parse_config
from bids_app.deep.crossval import NetworkSpec, deep_cross_validate
from bids_app.deep.lrp import explained_classes
from bids_app.deep.networks import build_network, class_probabilities
from bids_app.deep.training import PRESETS
from bids_app.errors import UsageError
from bids_app.group.deep_learning import network_options, network_spec
from bids_app.models.crossval import outer_splits
from bids_app.models.metrics import metric_names, ordinal_metrics
from bids_app.synthetic.crops import make_crop_cohort, write_crop_dataset
from tests.conftest import three_class_crops

FAST = ["--dl-base-width", "4", "--dl-epochs", "3", "--dl-batch-size", "2", "--no-dl-validation"]

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CLASSES = ("1", "2", "3")


def _cross_validate(volumes, y, groups, epochs: int = 8):
    spec = NetworkSpec(
        "resnet3d",
        {**network_options("resnet3d", 4), "n_classes": 3},
        dataclasses.replace(PRESETS["coll2023"], epochs=epochs, batch_size=4),
        validation=False,
    )
    splits = outer_splits(y, groups, 3)
    return deep_cross_validate(
        volumes,
        y,
        groups,
        splits,
        spec,
        torch.device("cpu"),
        seed=2,
        classes=CLASSES,
        ordinal=True,
    )


@pytest.fixture(scope="module")
def crops():
    return three_class_crops(16, atrophy=0.8, seed=11)


@pytest.mark.slow
def test_three_planted_classes_are_learnt(crops):
    volumes, y, groups = crops
    result = _cross_validate(volumes, y, groups)
    assert list(result.folds.columns[5 : 5 + len(metric_names(CLASSES, True))]) == list(
        metric_names(CLASSES, True)
    )
    # chance macro-F1 of three balanced classes is about 1/3 (measured 0.96, kappa 0.88)
    assert result.folds["f1"].mean() >= 0.6, result.folds
    assert result.folds["qwk"].mean() > 0.3 and result.folds["mae"].mean() < 0.6
    first = result.predictions.query("repeat == 0")
    scores = first[[f"score_{c}" for c in CLASSES]].to_numpy()
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(first["y_pred"], scores.argmax(axis=1))
    assert len(first) == len(y) and set(result.test_fold) == {0, 1, 2}


@pytest.mark.slow
def test_permuted_classes_stay_near_chance(crops):
    # measured 0.16, 0.28 and 0.19 for the permutations of seeds 0, 1 and 2
    volumes, y, groups = crops
    permuted = np.random.default_rng(0).permutation(y)
    result = _cross_validate(volumes, permuted, groups)
    assert result.folds["f1"].mean() <= 0.5, result.folds


def test_ordinal_metrics_on_known_values():
    # one class off on two of four rows: MAE 0.5; quadratic kappa by hand:
    # observed = [[1,1,0],[0,0,1],[0,0,1]] / 4, expected from the margins
    y_true, y_pred = np.array([0, 0, 1, 2]), np.array([0, 1, 2, 2])
    metrics = ordinal_metrics(y_true, y_pred, 3)
    weights = np.array([[0, 1, 4], [1, 0, 1], [4, 1, 0]]) / 4
    observed = np.array([[1, 1, 0], [0, 0, 1], [0, 0, 1]]) / 4
    expected = np.outer([2, 1, 1], [1, 1, 2]) / 16
    kappa = 1 - (weights * observed).sum() / (weights * expected).sum()
    assert metrics["mae"] == 0.5
    assert metrics["qwk"] == pytest.approx(kappa)
    # perfect agreement, and predictions two classes off count more than one class off
    assert ordinal_metrics(y_true, y_true, 3) == {"mae": 0.0, "qwk": 1.0}
    near = ordinal_metrics(np.array([0, 1, 2, 2]), np.array([1, 1, 1, 2]), 3)
    far = ordinal_metrics(np.array([0, 1, 2, 2]), np.array([2, 1, 0, 2]), 3)
    assert near["qwk"] > far["qwk"] and near["mae"] < far["mae"]
    assert np.isnan(ordinal_metrics(np.zeros(3, int), np.zeros(3, int), 3)["qwk"])


def test_networks_with_three_classes():
    for name in ("resnet3d", "cnn8"):
        net = build_network(name, 1, **{**network_options(name, 2), "n_classes": 3})
        assert net(torch.rand(2, 1, 16, 16, 16)).shape == (2, 3)
    gamer = build_network("gamer", 1, init_features=4, n_classes=3)
    assert gamer(torch.rand(2, 1, 16, 16, 16), torch.tensor([50.0, 60.0])).shape == (2, 3)
    one_logit = class_probabilities(torch.zeros(2, 1))
    np.testing.assert_allclose(one_logit.numpy(), 0.5)


def test_lrp_targets_of_a_multiclass_target():
    predicted = np.array([0, 2, 1])
    np.testing.assert_array_equal(explained_classes(predicted, n_classes=3), predicted)
    np.testing.assert_array_equal(explained_classes(predicted, n_classes=3, named=1), [1, 1, 1])
    with pytest.raises(ValueError, match="binary target"):
        explained_classes(predicted, "positive", n_classes=3)
    with pytest.raises(ValueError, match="named LRP class"):
        explained_classes(predicted, n_classes=3, named=3)


def _config(*extra: str):
    return parse_config(["in", "out", "group", "--target", "stage", *extra])


def test_configuration_of_multiclass_networks():
    config = _config("--target-classes", "1", "2", "3", "--ordinal", "--dl-models", "resnet3d")
    assert config.group.ordinal and config.deep.lrp_target == "predicted"
    spec = network_spec("resnet3d", config, 3)
    assert spec.options["n_classes"] == 3 and spec.flip_rates is None
    assert "n_classes" not in network_spec("resnet3d", config).options
    assert _config("--target-classes", "1", "2", "3", "--lrp-class", "2").deep.lrp_class == "2"
    refused = {
        "--ordinal needs --target-classes": ["--ordinal"],
        "a multi-class target has no positive class": [
            "--dl-models",
            "resnet3d",
            "--lrp-target",
            "positive",
        ],
        "is not one of --target-classes": ["--target-classes", "1", "2", "3", "--lrp-class", "5"],
        "--lrp-class names a class of a multi-class target": [
            "--positive-label",
            "3",
            "--lrp-class",
            "3",
        ],
    }
    for message, extra in refused.items():
        with pytest.raises(UsageError, match=message):
            _config(*extra)


@pytest.mark.slow
def test_group_level_trains_a_multiclass_network(tmp_path):
    cohort = make_crop_cohort(12, atrophy=0.0, seed=5)
    stages = {"participants": cohort.participants.assign(stage=[1, 2, 3] * 4)}
    bids, out = write_crop_dataset(dataclasses.replace(cohort, **stages), tmp_path)
    args = [str(bids), str(out), "group", "--skip-bids-validation", "-w", str(tmp_path / "w")]
    args += ["--target", "stage", "--target-classes", "1", "2", "3", "--ordinal", "--seed", "1"]
    args += ["--classifiers", "logistic_regression", "--smote-k", "0", "--omp-nthreads", "1"]
    args += ["--harmonization", "none", "--dl-models", "resnet3d", "--lrp-class", "3"]
    assert main([*args, *FAST]) == 0
    group = out / "group"
    predictions = pd.read_csv(group / "deep_resnet3d_predictions.tsv", sep="\t")
    scores = predictions[["score_1", "score_2", "score_3"]].to_numpy()
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-4)
    np.testing.assert_array_equal(predictions.y_pred, scores.argmax(axis=1))
    assert (predictions.explained_class == 2).all()  # --lrp-class 3: the third class
    described = json.loads((group / "deep_resnet3d_predictions.json").read_text())
    assert described["y_true"]["Levels"] == {"0": "1", "1": "2", "2": "3"}
    confusion = pd.read_csv(group / "deep_resnet3d_confusion.tsv", sep="\t")
    assert confusion[["1", "2", "3"]].to_numpy().sum() == 12
    folds = pd.read_csv(group / "deep_folds.tsv", sep="\t")
    assert {"f1", "auc_3", "mae", "qwk"} <= set(folds.columns) and "tp" not in folds
    summary = pd.read_csv(group / "classification_summary.tsv", sep="\t")
    assert "resnet3d" in set(summary.classifier) and "qwk_mean" in summary
    card = json.loads((group / "deep_models" / "model_card.json").read_text())
    assert card["classes"] == ["1", "2", "3"] and card["ordinal"]
    assert "qwk" in card["networks"]["resnet3d"]["metrics_mean"]
    relevance = nib.load(group / "deep_resnet3d_relevance.nii.gz")
    assert relevance.shape[-1] == 12
    report = (group / "report.html").read_text()
    assert "confusion matrix of resnet3d" in report and "quadratic-weighted" in report

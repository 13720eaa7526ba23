"""Multi-class targets at the group level: the disease stage (brainstem/ALS PhD proposal, c).

A planted 4-stage effect is found (macro-F1 and one-vs-rest AUC well above chance), permuted
stages are not, the confusion matrix counts every session once, SMOTE and the folds work with
several classes, and the group level run through the CLI writes the confusion-matrix table.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from imblearn.over_sampling import SMOTE

from bids_app.cli.errors import ExitCode
from bids_app.cli.main import main, parse_config
from bids_app.errors import UsageError
from bids_app.group.classification import check_target
from bids_app.group.workflow import clinical_by_session
from bids_app.models.classifiers import CLASSIFIERS, build_pipeline
from bids_app.models.crossval import CrossValidationError, nested_cross_validate, outer_splits
from bids_app.models.design import (
    SITE,
    DesignError,
    Target,
    build_design,
    join_families,
    multiclass_target,
)
from bids_app.models.dnn import DNNClassifier
from bids_app.models.tables import confusion_table
from bids_app.synthetic.features import FeatureCohort, make_feature_cohort
from tests.conftest import write_feature_dataset


def _staged_cohort(counts: list[int], step: float, seed: int, **kwargs) -> FeatureCohort:
    """Draw a cohort without a diagnosis effect, ``counts[s - 1]`` subjects at stage ``s``.

    Stage ``s`` shifts the informative features by ``(s - 1) * step`` SDs (an ordinal effect:
    later stages, more atrophy).
    """
    n_subjects = sum(counts)
    cohort = make_feature_cohort(
        n_subjects=n_subjects, n_features=12, effect_size=0.0, seed=seed, **kwargs
    )
    rng = np.random.default_rng(seed)
    stages = rng.permutation(np.repeat(np.arange(len(counts)) + 1, counts))
    participants = cohort.participants.assign(stage=stages)
    by_subject = dict(zip(participants.participant_id, stages, strict=True))
    shift = (cohort.features.participant_id.map(by_subject).to_numpy() - 1) * step
    features = cohort.features.copy()
    features[cohort.informative] = features[cohort.informative] + shift[:, None]
    return FeatureCohort(participants, features, cohort.informative)


def _design(cohort, target=None, **kwargs):
    features, families = join_families({"volumes": cohort.features})
    participants = cohort.participants.set_index(
        cohort.participants.participant_id.str.removeprefix("sub-")
    )
    clinical = clinical_by_session(features, participants, pd.DataFrame())
    return build_design(
        features, families, clinical, target or Target("stage"), ["volumes"], **kwargs
    )


def _evaluate(design, name="logistic_regression", repeats=1, smote_k=None, harmonize=False):
    spec = CLASSIFIERS[name]
    pipeline = build_pipeline(
        spec,
        design.feature_sets["volumes"],
        0,
        site_column=SITE if harmonize else None,
        covariates=design.covariates if harmonize else (),
        smote_k=smote_k,
    )
    splits = outer_splits(design.y, design.groups, 3, repeats, 42)
    return nested_cross_validate(
        design.X("volumes"),
        design.y,
        design.groups,
        spec,
        pipeline,
        splits,
        "volumes",
        classes=design.target.classes,
    )


def test_planted_stages_are_found():
    cohort = _staged_cohort([30] * 4, step=1.5, seed=1, n_sites=1)
    design = _design(cohort)
    assert design.target.classes == ("1", "2", "3", "4")
    folds = _evaluate(design).folds
    per_class = folds[[f"auc_{stage}" for stage in "1234"]].mean()
    assert per_class.mean() >= 0.8, per_class
    assert per_class.min() >= 0.7, per_class
    assert folds["f1"].mean() >= 0.5  # macro-F1; chance is about 0.25
    assert folds["balanced_accuracy"].mean() >= 0.5


def test_label_permuted_stages_stay_at_chance():
    cohort = _staged_cohort([40] * 4, step=1.5, seed=2, n_sites=1)
    rng = np.random.default_rng(0)
    shuffled = cohort.participants.assign(
        stage=rng.permutation(cohort.participants["stage"].to_numpy())
    )
    design = _design(FeatureCohort(shuffled, cohort.features, cohort.informative))
    folds = _evaluate(design, repeats=2).folds
    per_class = folds[[f"auc_{stage}" for stage in "1234"]].mean()
    assert abs(per_class.mean() - 0.5) <= 0.15, per_class
    assert abs(folds["auc"].mean() - 0.5) <= 0.15
    assert folds["f1"].mean() <= 0.4


def test_confusion_matrix_counts_every_session_once():
    cohort = _staged_cohort([15] * 3, step=1.5, seed=3, n_sites=1, longitudinal_fraction=0.3)
    design = _design(cohort)
    result = _evaluate(design, name="knn", repeats=2)
    predictions = result.predictions.assign(feature_set="volumes", classifier="knn")
    table = confusion_table(predictions, design.target.classes)
    counts = table[list(design.target.classes)].to_numpy()
    assert counts.shape == (3, 3)
    assert counts.sum() == len(design.y)  # the first repeat only
    assert (counts.sum(axis=1) == np.bincount(design.y)).all()  # rows are the true classes
    first = result.predictions.query("repeat == 0")
    assert np.trace(counts) == (first.y_true == first.y_pred).sum()
    assert {f"score_{c}" for c in design.target.classes} <= set(result.predictions)


def test_smote_and_stratified_grouped_folds_with_three_classes():
    # unbalanced stages (30/15/15) and repeated sessions: every test fold holds every class,
    # no participant is on both sides, and SMOTE balances the training rows
    cohort = _staged_cohort([30, 15, 15], step=1.5, seed=4, n_sites=1, longitudinal_fraction=0.3)
    design = _design(cohort)
    assert len(design.target.classes) == 3
    for split in outer_splits(design.y, design.groups, 3, 2, 0):
        assert set(design.y[split.test]) == {0, 1, 2}
        assert not set(design.groups[split.test]) & set(design.groups[split.train])
        X = design.X("volumes").iloc[split.train]  # noqa: N806
        _, y_resampled = SMOTE(k_neighbors=3, random_state=0).fit_resample(X, design.y[split.train])
        assert len(set(np.bincount(y_resampled))) == 1
    folds = _evaluate(design, smote_k=3).folds
    assert folds["auc"].notna().all() and len(folds) == 3


def test_multiclass_dnn_has_one_output_per_class():
    cohort = _staged_cohort([20] * 3, step=2.0, seed=5, n_sites=1)
    design = _design(cohort)
    X = design.X("volumes").to_numpy(dtype=np.float32)  # noqa: N806
    model = DNNClassifier(max_epochs=30, random_state=0).fit(X, design.y)
    assert model.predict_proba(X).shape == (len(design.y), 3)
    assert (model.predict(X) == design.y).mean() > 0.5


def test_target_classes_order_and_bad_targets():
    values = pd.Series(["3", "1", "4", None, "2", "2.0", "0"])
    codes, classes = multiclass_target(values, Target("stage"))
    assert classes == ("0", "1", "2", "3", "4")
    assert codes.tolist()[:3] == [3.0, 1.0, 4.0] and codes[4] == codes[5] == 2.0
    # --target-classes fixes the order and leaves the other values out
    codes, classes = multiclass_target(values, Target("stage", classes=("4", "3", "2", "1")))
    assert classes == ("4", "3", "2", "1") and np.isnan(codes[6]) and codes[0] == 1.0
    with pytest.raises(DesignError, match=r"never takes the value\(s\) \['5'\]"):
        multiclass_target(values, Target("stage", classes=("1", "2", "5")))
    with pytest.raises(DesignError, match="--positive-label"):
        multiclass_target(pd.Series(["ALS", "CN", "ALS"]), Target("diagnosis"))
    with pytest.raises(UsageError, match="--target-classes is for a multi-class"):
        parse_config([*_group_args("s"), "--target-classes", "1", "2", "3", "--threshold", "2"])
    # the sessions whose value is not among the classes are listed as left out
    cohort = _staged_cohort([12] * 4, step=1.0, seed=6, n_sites=1)
    design = _design(cohort, Target("stage", classes=("1", "2", "3")))
    assert set(design.y) == {0, 1, 2}
    assert design.exclusions["reason"].str.contains("not among --target-classes").sum() > 0
    # the check before the run: classes and folds
    clinical = cohort.participants.set_index("participant_id")
    subjects = pd.Series(clinical.index, index=clinical.index)
    check_target(clinical, subjects, parse_config(_group_args("stage")), "p.tsv")
    few = clinical.assign(stage=[1, 2] * 20 + [3] * 8)
    smote = parse_config([*_group_args("stage"), "--smote-k", "5"])
    with pytest.raises(CrossValidationError, match="--smote-k 0"):  # 8 of stage 3: too few
        check_target(few, subjects, smote, "p.tsv")
    with pytest.raises(CrossValidationError, match="every fold needs every class"):
        check_target(few, subjects, parse_config([*_group_args("stage"), "--cv-folds", "9"]), "")
    with pytest.raises(DesignError, match=r"p\.tsv: .*2 class"):
        check_target(
            clinical.assign(stage=[1, 2] * 24),
            subjects,
            parse_config(_group_args("stage")),
            "p.tsv",
        )


def _group_args(target: str) -> list[str]:
    return ["in", "out", "group", "--target", target, "--smote-k", "0"]


def test_group_level_with_a_three_class_target(tmp_path, capsys):
    cohort = _staged_cohort([15] * 3, step=2.0, seed=7)
    bids, out = write_feature_dataset(tmp_path, cohort)
    base = [str(bids), str(out), "group", "--skip-bids-validation", "-w", str(tmp_path / "w")]
    base += ["--classifiers", "logistic_regression", "--seed", "3", "--smote-k", "3"]
    assert main([*base, "--target", "stage"]) == 0
    group = out / "group"
    confusion = pd.read_csv(group / "classification_confusion.tsv", sep="\t")
    assert list(confusion.columns) == ["feature_set", "classifier", "true", "1", "2", "3"]
    assert confusion[["1", "2", "3"]].to_numpy().sum() == 45
    assert (group / "figures" / "classification_confusion.png").stat().st_size > 1000
    dictionary = json.loads((group / "classification_confusion.json").read_text())
    assert "predicted as 2" in dictionary["2"]["Description"]
    best = pd.read_csv(group / "classification_best.tsv", sep="\t")
    assert {"auc_1", "auc_2", "auc_3"} <= set(best.columns) and best.loc[0, "auc"] > 0.7
    sidecar = json.loads((group / "classification_best.json").read_text())
    assert "macro-F1" in sidecar["f1"]["Description"]
    report = (group / "report.html").read_text()
    assert "confusion matrices of every model" in report and "multi-class target" in report
    manifest = json.loads((group / "models" / "manifest.json").read_text())
    assert manifest["target"]["classes"] == ["1", "2", "3"]
    # saved multi-class models are refused by --apply-models, with the reason
    assert main([*base, "--apply-models", str(group / "models")]) == ExitCode.DATA
    assert "applies binary models only" in capsys.readouterr().err
    # the networks take a multi-class target too (tests/test_deep_multiclass.py); they need crops
    assert main([*base, "--target", "stage", "--dl-models", "cnn8"]) == ExitCode.DATA
    assert "no session has CNN-ready crops" in capsys.readouterr().err

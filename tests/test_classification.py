"""Group-level classification: planted effects found, null data not, no leakage, bad input.

The cohorts are feature tables drawn by :func:`bids_app.synthetic.features.make_feature_cohort`
(ComBat's generative model with planted group, age and site effects); the end-to-end tests write
them as participant-level derivatives and run the group level through the CLI.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from imblearn.over_sampling import SMOTE
from sklearn.base import BaseEstimator, TransformerMixin, clone

from bids_app.cli.errors import ExitCode
from bids_app.cli.main import main, parse_config
from bids_app.group.classification import check_target
from bids_app.group.workflow import clinical_by_session
from bids_app.models.classifiers import CLASSIFIERS, build_pipeline
from bids_app.models.crossval import (
    CrossValidationError,
    check_folds,
    nested_cross_validate,
    outer_splits,
)
from bids_app.models.design import SITE, DesignError, Target, build_design, join_families
from bids_app.synthetic.features import make_feature_cohort
from tests.conftest import write_feature_dataset


def _design(cohort, target=None, **kwargs):
    target = target or Target("diagnosis", "ALS")
    features, families = join_families({"volumes": cohort.features})
    participants = cohort.participants.set_index(
        cohort.participants.participant_id.str.removeprefix("sub-")
    )
    clinical = clinical_by_session(features, participants, pd.DataFrame())
    kwargs.setdefault("covariates", ("age", "sex"))
    kwargs.setdefault("site_column", "site")
    return build_design(features, families, clinical, target, ["volumes"], **kwargs)


def _evaluate(design, name, repeats=1, seed=42, harmonize=True):
    spec = CLASSIFIERS[name]
    pipeline = build_pipeline(
        spec,
        design.feature_sets["volumes"],
        seed,
        site_column=SITE if harmonize else None,
        covariates=design.covariates if harmonize else (),
    )
    splits = outer_splits(design.y, design.groups, 3, repeats, seed)
    X = design.X("volumes")  # noqa: N806
    return nested_cross_validate(X, design.y, design.groups, spec, pipeline, splits, "volumes")


def test_planted_effect_is_found():
    cohort = make_feature_cohort(
        n_subjects=120, n_features=30, effect_size=1.5, site_shift=0.5, site_scale=0.2, seed=1
    )
    design = _design(cohort)
    aucs = {name: _evaluate(design, name).folds["auc"].mean() for name in ("logistic_regression",)}
    assert max(aucs.values()) >= 0.9, aucs


@pytest.mark.slow
def test_label_permuted_data_gives_chance_auc():
    cohort = make_feature_cohort(n_subjects=120, n_features=30, effect_size=1.5, seed=2)
    rng = np.random.default_rng(0)
    shuffled = cohort.participants.assign(
        diagnosis=rng.permutation(cohort.participants["diagnosis"].to_numpy())
    )
    design = _design(type(cohort)(shuffled, cohort.features, cohort.informative))
    result = _evaluate(design, "logistic_regression", repeats=5)
    mean_auc = result.folds["auc"].mean()
    assert abs(mean_auc - 0.5) <= 0.1, mean_auc


#: Row labels each fitted step saw (reset per outer split); a module-level list survives the
#: clones that GridSearchCV makes.
SEEN: list[tuple[str, set]] = []


class _Recorder(TransformerMixin, BaseEstimator):
    """Run a real step and record the rows (DataFrame index) it is fitted on."""

    def __init__(self, step=None, name=""):
        self.step = step
        self.name = name

    def fit(self, X, y=None):  # noqa: N803
        SEEN.append((self.name, set(X.index)))
        self.step_ = clone(self.step).fit(X, y)
        return self

    def transform(self, X):  # noqa: N803
        return self.step_.transform(X)


class _RecordingSMOTE(SMOTE):
    def fit_resample(self, X, y, **params):  # noqa: N803
        SEEN.append(("smote", set(X.index)))
        return super().fit_resample(X, y, **params)


def test_no_fitted_step_sees_a_test_row():
    cohort = make_feature_cohort(
        n_subjects=60, n_features=10, site_shift=0.5, longitudinal_fraction=0.3, seed=3
    )
    design = _design(cohort)
    spec = CLASSIFIERS["logistic_regression"]
    pipeline = build_pipeline(
        spec, design.feature_sets["volumes"], 0, site_column=SITE, covariates=design.covariates
    )
    pipeline.steps[0] = ("scale", _Recorder(pipeline.steps[0][1].set_output(transform="pandas")))
    pipeline.steps[0][1].name = "scaler"
    pipeline.steps[1] = ("combat", _Recorder(pipeline.steps[1][1], "combat"))
    pipeline.steps[2] = ("smote", _RecordingSMOTE(k_neighbors=5, random_state=0))
    X = design.X("volumes")  # noqa: N806
    for split in outer_splits(design.y, design.groups, 3, 2, 0):
        SEEN.clear()
        nested_cross_validate(X, design.y, design.groups, spec, pipeline, [split])
        test_rows = set(X.index[split.test])
        assert {name for name, _ in SEEN} == {"scaler", "combat", "smote"}
        for name, rows in SEEN:
            assert not rows & test_rows, f"{name} was fitted on test rows"
        # the sessions of one participant are all on one side
        test_subjects = set(design.groups[split.test])
        assert not test_subjects & set(design.groups[split.train])


def test_sessions_of_a_subject_share_a_fold():
    cohort = make_feature_cohort(n_subjects=45, longitudinal_fraction=0.5, seed=4)
    design = _design(cohort)
    assert len(design.y) > 45  # there are repeated sessions
    for split in outer_splits(design.y, design.groups, 3, 3, 7):
        assert not set(design.groups[split.test]) & set(design.groups[split.train])


def test_combat_in_folds_keeps_the_group_effect_and_lowers_site_information():
    cohort = make_feature_cohort(
        n_subjects=150,
        n_features=20,
        effect_size=1.5,
        site_shift=1.0,
        site_scale=0.3,
        site_confounding=0.5,
        seed=5,
    )
    design = _design(cohort)
    harmonised = _evaluate(design, "logistic_regression").folds["auc"].mean()
    assert harmonised >= 0.85
    # the site is predictable from raw features, much less from ComBat-harmonised ones
    spec = CLASSIFIERS["logistic_regression"]
    pipeline = build_pipeline(
        spec, design.feature_sets["volumes"], 0, site_column=SITE, covariates=design.covariates
    )
    combat = pipeline[:2]
    sites = design.meta[SITE].to_numpy()
    site_a = (sites == sites[0]).astype(int)
    raw_scores, harmonised_scores = [], []
    for split in outer_splits(site_a, design.groups, 3, 1, 0):
        X = design.X("volumes")  # noqa: N806
        fitted = clone(combat).fit(X.iloc[split.train])
        for store, train, test in (
            (raw_scores, X.iloc[split.train][design.feature_sets["volumes"]], None),
            (harmonised_scores, fitted.transform(X.iloc[split.train]), fitted),
        ):
            from sklearn.linear_model import LogisticRegression

            model = LogisticRegression(max_iter=2000).fit(train, site_a[split.train])
            held_out = X.iloc[split.test]
            held_out = (
                test.transform(held_out) if test else held_out[design.feature_sets["volumes"]]
            )
            store.append(model.score(held_out, site_a[split.test]))
    assert np.mean(raw_scores) > 0.9
    assert np.mean(harmonised_scores) < np.mean(raw_scores) - 0.2


def test_design_bad_input():
    cohort = make_feature_cohort(n_subjects=30, n_features=5, seed=6)
    with pytest.raises(DesignError, match="no column 'edss'"):
        _design(cohort, Target("edss", threshold=3.0))
    one_class = cohort.participants.assign(diagnosis="ALS")
    with pytest.raises(DesignError, match="one class"):
        _design(type(cohort)(one_class, cohort.features, cohort.informative))
    with pytest.raises(DesignError, match="--positive-label"):
        _design(cohort, Target("diagnosis"))
    with pytest.raises(DesignError, match="never equals"):
        _design(cohort, Target("diagnosis", "MND"))
    # labels with NaN and a subject without features are left out with the reason
    participants = cohort.participants.copy()
    participants.loc[0, "diagnosis"] = np.nan
    features = cohort.features.copy()
    features.loc[features.participant_id == "sub-002", ["f000", "f001"]] = np.nan
    design = _design(type(cohort)(participants, features, cohort.informative))
    reasons = design.exclusions.set_index("participant_id")["reason"]
    assert "no value of the target" in reasons["sub-001"]
    assert "missing features: f000, f001" in reasons["sub-002"]
    assert not {"sub-001", "sub-002"} & set(design.groups)
    # a categorical covariate is encoded as indicator columns, numeric ones kept
    assert set(design.covariates) == {"age", "sex_M"}


def test_target_is_checked_before_the_run():
    dx = ["CN", "ALS"] * 4
    clinical = pd.DataFrame(
        {"diagnosis": dx, "edss": [1.0, 2.5, 3.0, 6.5] * 2},
        index=[f"sub-{i}" for i in range(8)],
    )
    subjects = pd.Series(clinical.index, index=clinical.index)

    def check(*args, table=clinical):
        config = parse_config(["in", "out", "group", "--cv-folds", "2", "--smote-k", "0", *args])
        check_target(table, subjects, config, "p.tsv")

    check("--target", "diagnosis", "--positive-label", "ALS")
    check("--target", "edss", "--threshold", "3")
    with pytest.raises(DesignError, match=r"p.tsv: no column 'dx' for --target .*'diagnosis'"):
        check("--target", "dx", "--positive-label", "ALS")
    with pytest.raises(DesignError, match=r"p.tsv: --target 'edss' is numeric.*--threshold X"):
        check("--target", "edss", "--positive-label", "3")
    with pytest.raises(DesignError, match=r"p.tsv: the target diagnosis == CN has one class only"):
        check(
            "--target", "diagnosis", "--positive-label", "CN", table=clinical.assign(diagnosis="CN")
        )
    with pytest.raises(CrossValidationError, match="lower --cv-folds"):
        check("--target", "diagnosis", "--positive-label", "ALS", "--cv-folds", "5")
    with pytest.raises(CrossValidationError, match="--smote-k 0"):
        check("--target", "diagnosis", "--positive-label", "ALS", "--smote-k", "3")


def test_knn_on_a_cohort_smaller_than_its_neighbour_grid():
    # 12 participants: the inner training folds hold about 5 rows, fewer than the grid's
    # largest n_neighbors (7), which sklearn refuses to fit
    cohort = make_feature_cohort(n_subjects=12, n_features=8, effect_size=2.0, seed=2)
    design = _design(cohort)
    spec = CLASSIFIERS["knn"]
    pipeline = build_pipeline(spec, design.feature_sets["volumes"], 0, smote_k=None)
    splits = outer_splits(design.y, design.groups, 3, 1, 0)
    result = nested_cross_validate(
        design.X("volumes"), design.y, design.groups, spec, pipeline, splits, "volumes"
    )
    chosen = [json.loads(params)["n_neighbors"] for params in result.folds["params"]]
    assert len(chosen) == 3 and max(chosen) <= 5


def test_fewer_subjects_than_folds():
    y = np.array([0, 0, 0, 1, 1])
    with pytest.raises(CrossValidationError, match="2 participant"):
        check_folds(y, np.arange(5), 3)


# --- end to end, through the CLI ------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("group")
    cohort = make_feature_cohort(n_subjects=45, n_features=8, effect_size=2.0, seed=7)
    bids, out = write_feature_dataset(root, cohort)
    base = [str(bids), str(out), "group", "--skip-bids-validation", "-w", str(root / "work")]
    base += ["--classifiers", "logistic_regression", "knn", "--seed", "3"]
    args = [*base, "--target", "diagnosis", "--positive-label", "ALS"]
    assert main(args) == 0
    return root, bids, out, base


def test_group_level_writes_tables_figures_and_models(trained):
    _, _, out, base = trained
    args = [*base, "--target", "diagnosis", "--positive-label", "ALS"]
    group = out / "group"
    best = pd.read_csv(group / "classification_best.tsv", sep="\t")
    assert best.loc[0, "auc"] > 0.8
    folds = pd.read_csv(group / "classification_folds.tsv", sep="\t")
    assert set(folds.classifier) == {"logistic_regression", "knn"} and len(folds) == 6
    assert (group / "figures" / "classification_roc_pr.png").stat().st_size > 1000
    manifest = json.loads((group / "models" / "manifest.json").read_text())
    (entry,) = manifest["models"].values()
    assert set(entry["files"]) == {"fold-0", "fold-1", "fold-2", "full"}
    assert len(entry["training_participants"]) == 45
    report = (group / "report.html").read_text()
    assert "Turrisi 2024 Table 3" in report and "ANCOVA of the volumes" in report
    # the same seed gives the same numbers
    assert main(args) == 0
    pd.testing.assert_frame_equal(folds, pd.read_csv(group / "classification_folds.tsv", sep="\t"))


def test_saved_models_apply_to_an_external_dataset(trained, tmp_path):
    _, _, out, _ = trained
    external = make_feature_cohort(n_subjects=30, n_features=8, effect_size=2.0, seed=8)
    # the same features (same seed of the informative choice) are needed: reuse the columns
    bids, ext_out = write_feature_dataset(tmp_path, external)
    args = [str(bids), str(ext_out), "group", "--skip-bids-validation", "-w", str(tmp_path)]
    assert main([*args, "--apply-models", str(out / "group" / "models")]) == 0
    predictions = pd.read_csv(ext_out / "group" / "external_predictions.tsv", sep="\t")
    assert len(predictions) == 30 and set(predictions["majority_vote"]) <= {0, 1}
    metrics = pd.read_csv(ext_out / "group" / "external_metrics.tsv", sep="\t")
    assert set(metrics["rule"]) == {
        "majority vote of the fold models",
        "model refitted on all training data",
    }
    # an altered model file is refused
    model = next((out / "group" / "models").rglob("full.joblib"))
    model.write_bytes(model.read_bytes() + b"\0")
    assert main([*args, "--apply-models", str(out / "group" / "models")]) == ExitCode.DATA


def test_group_level_bad_input_exits_cleanly(trained, capsys):
    _, bids, _, base = trained
    target = ["--target", "diagnosis", "--positive-label", "ALS"]
    assert main([*base, "--target", "nosuch", "--positive-label", "x"]) == ExitCode.DATA
    assert "no column 'nosuch'" in capsys.readouterr().err
    assert main([*base, *target, "--cv-folds", "30"]) == ExitCode.DATA
    assert "lower --cv-folds" in capsys.readouterr().err
    # a site with a single subject cannot be harmonised in folds
    participants = pd.read_csv(bids / "participants.tsv", sep="\t")
    participants.loc[0, "site"] = "siteZ"
    participants.to_csv(bids / "participants.tsv", sep="\t", index=False)
    try:
        assert main([*base, *target]) == ExitCode.DATA
        assert "siteZ" in capsys.readouterr().err
    finally:
        participants.loc[0, "site"] = "siteA"
        participants.to_csv(bids / "participants.tsv", sep="\t", index=False)

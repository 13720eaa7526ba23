"""ComBat harmonisation (neuroHarmonize) as a transformer, and the synthetic feature cohorts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from neuroHarmonize import harmonizationLearn
from scipy import stats
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from bids_app.models.harmonization import ComBatHarmonizer, check_sites
from bids_app.synthetic.features import FeatureCohort, make_feature_cohort


def _table(cohort: FeatureCohort) -> pd.DataFrame:
    """One row per session: the features, then site, age and diagnosis."""
    table = cohort.features.merge(
        cohort.participants[["participant_id", "site", "age", "diagnosis"]], on="participant_id"
    )
    return table.set_index(["participant_id", "session_id"])


def _features(table: pd.DataFrame) -> list[str]:
    return [name for name in table.columns if name.startswith("f")]


def _out_of_fold(model: Pipeline, inputs: pd.DataFrame, y: pd.Series, method: str) -> np.ndarray:
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    return cross_val_predict(model, inputs, y, cv=folds, method=method)


def _classifier() -> Pipeline:
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))


# --- ComBatHarmonizer --------------------------------------------------------------------------


def test_combat_in_folds_removes_site_and_keeps_diagnosis():
    cohort = make_feature_cohort(
        n_subjects=300,
        effect_size=1.5,
        site_shift=1.0,
        site_scale=0.3,
        site_confounding=0.5,
        seed=3,
    )
    table = _table(cohort)
    columns = _features(table)
    inputs = table[[*columns, "site", "age"]]
    harmonised = make_pipeline(ComBatHarmonizer(covariates=("age",)), _classifier())

    raw_site = _out_of_fold(_classifier(), table[columns], table["site"], "predict")
    combat_site = _out_of_fold(harmonised, inputs, table["site"], "predict")
    assert balanced_accuracy_score(table["site"], raw_site) > 0.95
    assert balanced_accuracy_score(table["site"], combat_site) < 1 / 3 + 0.12

    probability = _out_of_fold(harmonised, inputs, table["diagnosis"], "predict_proba")
    # Columns follow the sorted classes: ALS first.
    assert roc_auc_score(table["diagnosis"] == "ALS", probability[:, 0]) >= 0.85


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_fit_uses_training_rows_only_and_matches_neuroharmonize():
    table = _table(make_feature_cohort(n_subjects=150, site_shift=1.0, site_scale=0.3, seed=4))
    columns = _features(table)
    inputs = table[[*columns, "site", "age"]]
    train, test = inputs.iloc[:100], inputs.iloc[100:]

    combat = ComBatHarmonizer(covariates=("age",)).fit(train)
    pd.testing.assert_series_equal(
        combat.site_counts_, train["site"].value_counts().sort_index(), check_names=False
    )
    assert combat.model_["info_dict"]["n_sample"] == len(train)
    assert list(combat.get_feature_names_out()) == columns

    first, second = combat.transform(test), combat.transform(test)
    pd.testing.assert_frame_equal(first, second)
    # Rows are adjusted one by one, whichever sites the other rows come from.
    pd.testing.assert_frame_equal(combat.transform(test.iloc[[7]]), first.iloc[[7]])
    assert first.index.equals(test.index) and list(first.columns) == columns
    assert not first.equals(test[columns])

    covars = pd.DataFrame({"SITE": train["site"].to_numpy(), "age": train["age"].to_numpy()})
    _, expected = harmonizationLearn(train[columns].to_numpy(), covars, return_s_data=False)
    np.testing.assert_allclose(combat.transform(train).to_numpy(), expected, rtol=0, atol=1e-8)


def test_unseen_site_error_and_reference():
    table = _table(make_feature_cohort(n_subjects=120, site_shift=1.0, site_scale=0.3, seed=5))
    inputs = table[[*_features(table), "site", "age"]]
    seen = inputs[inputs["site"] != "siteC"]
    # siteB becomes the largest training site.
    train = seen.drop(seen.index[seen["site"] == "siteA"][:5])
    new = inputs[inputs["site"] == "siteC"]

    with pytest.raises(ValueError, match=r"siteC.*unseen_site='reference'"):
        ComBatHarmonizer(covariates=("age",)).fit(train).transform(inputs)

    combat = ComBatHarmonizer(covariates=("age",), unseen_site="reference").fit(train)
    assert combat.reference_site_ == "siteB"
    result = combat.transform(inputs)
    assert np.isfinite(result.to_numpy()).all()
    relabelled = combat.transform(new.assign(site="siteB"))
    pd.testing.assert_frame_equal(result.loc[new.index], relabelled)
    pd.testing.assert_frame_equal(result.loc[seen.index], combat.transform(seen))


def test_reference_site_tie_takes_first_sorted():
    table = _table(make_feature_cohort(n_subjects=60, n_sites=3, seed=6))
    inputs = table[[*_features(table), "site"]]
    assert inputs["site"].value_counts().nunique() == 1
    assert ComBatHarmonizer().fit(inputs).reference_site_ == "siteA"


def test_age_effect_is_kept_when_there_is_no_site_effect():
    cohort = make_feature_cohort(n_subjects=1000, n_features=20, age_effect=0.5, seed=7)
    table = _table(cohort)
    columns = _features(table)
    # Sites that differ in age (but have no effect on the features): ComBat without the age
    # covariate would take the age differences for site effects and remove them.
    rng = np.random.default_rng(0)
    noisy_age = table["age"] + rng.normal(0, 10, len(table))
    table["site"] = pd.qcut(noisy_age, 3, labels=["siteA", "siteB", "siteC"]).astype(str)
    inputs = table[[*columns, "site", "age"]]

    def age_correlation(frame: pd.DataFrame) -> np.ndarray:
        return frame[columns].corrwith(table["age"]).to_numpy()

    before = age_correlation(table)
    assert before.min() > 0.2
    kept = ComBatHarmonizer(covariates=("age",)).fit(inputs).transform(inputs)
    assert np.abs(age_correlation(kept) - before).max() < 0.05
    ignored = ComBatHarmonizer().fit(inputs.drop(columns="age"))
    lost = ignored.transform(inputs.drop(columns="age"))
    assert np.abs(age_correlation(lost) - before).max() > 0.05


def test_constant_feature_is_returned_unchanged():
    table = _table(make_feature_cohort(n_subjects=90, site_shift=1.0, seed=8))
    inputs = table[[*_features(table), "site", "age"]]
    with_constant = inputs.assign(f000=0.0)
    combat = ComBatHarmonizer(covariates=("age",)).fit(with_constant)
    assert combat.constant_features_ == ["f000"]
    result = combat.transform(with_constant)
    assert (result["f000"] == 0.0).all() and np.isfinite(result.to_numpy()).all()
    without = ComBatHarmonizer(covariates=("age",)).fit(inputs.drop(columns="f000"))
    expected = without.transform(inputs.drop(columns="f000"))
    pd.testing.assert_frame_equal(result.drop(columns="f000"), expected, atol=1e-10)


def test_fit_guard_rails():
    table = _table(make_feature_cohort(n_subjects=60, seed=9))
    inputs = table[[*_features(table), "site", "age"]]
    lonely = inputs.drop(inputs.index[inputs["site"] == "siteC"][1:])
    with pytest.raises(ValueError, match=r"'siteC' has 1 row.*without harmonisation"):
        ComBatHarmonizer().fit(lonely)
    with pytest.raises(ValueError, match=r"'sex'.*not numeric.*encode"):
        ComBatHarmonizer(covariates=("sex",)).fit(inputs.assign(sex="F"))
    with pytest.raises(ValueError, match="unseen_site"):
        ComBatHarmonizer(unseen_site="nearest").fit(inputs)
    with pytest.raises(ValueError, match="two sites"):
        ComBatHarmonizer().fit(inputs[inputs["site"] == "siteA"])
    combat = ComBatHarmonizer(covariates=("age",), unseen_site="reference")
    assert clone(combat).get_params() == combat.get_params()


def test_fit_leaves_global_state_alone(capsys):
    table = _table(make_feature_cohort(n_subjects=60, site_shift=1.0, seed=16))
    before = np.random.get_state()[1].copy()  # noqa: NPY002 (numpy's global state is tested)
    # A single feature: neuroHarmonize would print that it skips empirical Bayes.
    single = table[["f000", "site"]]
    result = ComBatHarmonizer().fit(single).transform(single)
    assert np.array_equal(np.random.get_state()[1], before)  # noqa: NPY002
    assert capsys.readouterr().out == ""
    assert np.isfinite(result.to_numpy()).all()


# --- check_sites -------------------------------------------------------------------------------


def test_check_sites():
    cohort = make_feature_cohort(n_subjects=90, seed=10)
    subjects = cohort.participants.set_index("participant_id")
    check_sites(subjects["site"], subjects["diagnosis"], n_splits=5)

    lonely = subjects["site"].copy()
    lonely.iloc[0] = "siteZ"
    with pytest.raises(ValueError, match="'siteZ' has 1"):
        check_sites(lonely, None, n_splits=5)
    # 5 folds, 2 per training fold: ceil(2 * 5 / 4) = 3 subjects needed.
    small = pd.Series(["A"] * 3 + ["B"] * 2, index=[f"s{i}" for i in range(5)])
    with pytest.raises(ValueError, match="'B' has 2"):
        check_sites(small, None, n_splits=5)
    check_sites(small.replace("B", "A"), None, n_splits=5)

    labels = subjects["diagnosis"].copy()
    labels[subjects["site"] == "siteB"] = "CN"
    with pytest.raises(ValueError, match="'siteB' has only 'CN'"):
        check_sites(subjects["site"], labels, n_splits=5)


# --- make_feature_cohort -----------------------------------------------------------------------


def test_cohort_is_deterministic_per_seed():
    first, again = make_feature_cohort(seed=11), make_feature_cohort(seed=11)
    other = make_feature_cohort(seed=12)
    pd.testing.assert_frame_equal(first.features, again.features)
    pd.testing.assert_frame_equal(first.participants, again.participants)
    assert first.informative == again.informative
    assert not first.features.equals(other.features)


def test_cohort_plants_the_diagnosis_effect_in_informative_features_only():
    cohort = make_feature_cohort(n_subjects=400, n_features=60, effect_size=1.0, seed=13)
    table = _table(cohort)
    positive = table["diagnosis"] == "ALS"
    p_values = pd.Series(
        {
            name: stats.ttest_ind(table.loc[positive, name], table.loc[~positive, name]).pvalue
            for name in _features(table)
        }
    )
    assert (p_values[cohort.informative] < 1e-6).all()
    null = p_values.drop(cohort.informative)
    assert (null < 0.05).mean() < 0.15
    assert 0.35 < null.mean() < 0.65


def test_cohort_site_confounding():
    independent = make_feature_cohort(n_subjects=3000, n_features=5, seed=14).participants
    table = pd.crosstab(independent["site"], independent["diagnosis"])
    assert stats.chi2_contingency(table).pvalue > 0.01

    confounded = make_feature_cohort(
        n_subjects=3000, n_features=5, site_confounding=1.0, seed=14
    ).participants
    table = pd.crosstab(confounded["site"], confounded["diagnosis"])
    assert stats.chi2_contingency(table).pvalue < 1e-10
    assert (confounded.groupby("site")["diagnosis"].nunique() == 1).all()


def test_cohort_longitudinal_sessions():
    cohort = make_feature_cohort(n_subjects=200, longitudinal_fraction=0.25, seed=15)
    sessions = cohort.features.groupby("participant_id")["session_id"].agg(list)
    assert sessions.map(len).value_counts().to_dict() == {1: 150, 2: 50}
    assert all(labels in (["ses-01"], ["ses-01", "ses-02"]) for labels in sessions)
    paired = cohort.features.pivot(index="participant_id", columns="session_id", values="f000")
    paired = paired.dropna()
    assert np.corrcoef(paired["ses-01"], paired["ses-02"])[0, 1] > 0.8

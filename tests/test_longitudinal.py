"""The longitudinal feature family: annualised rates, and prediction from the first session.

The brain-stem PhD proposal's "prediction from short longitudinal series": the cohorts are drawn
by :func:`bids_app.synthetic.features.make_progression_cohort` (patients lose a few regions
faster per year, under a between-subject variability much larger than that loss) and classified
with the real pipelines and nested cross-validation of :mod:`bids_app.models`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bids_app.cli.errors import ExitCode
from bids_app.cli.main import main
from bids_app.features.longitudinal import annualised_rates, session_years
from bids_app.group.longitudinal import check_times, subject_rows, with_exclusions
from bids_app.group.workflow import clinical_by_session
from bids_app.models.classifiers import CLASSIFIERS, build_pipeline
from bids_app.models.crossval import nested_cross_validate, outer_splits
from bids_app.models.design import DesignError, Target, build_design, join_families
from bids_app.synthetic.features import make_progression_cohort
from tests.conftest import write_feature_dataset

SEED = 3


def _rows(cohort, with_rates=True, units="per-year", sessions=None):
    features, families = join_families({"volumes": cohort.features})
    participants = cohort.participants.set_index(
        cohort.participants.participant_id.str.removeprefix("sub-")
    )
    sessions = cohort.sessions if sessions is None else sessions
    clinical = clinical_by_session(features, participants, sessions)
    return subject_rows(
        features, families, clinical, sessions, "diagnosis", with_rates, rate_units=units
    )


def _design(rows, feature_sets):
    design = build_design(
        rows.features, rows.families, rows.clinical, Target("diagnosis", "ALS"), feature_sets
    )
    return with_exclusions(design, rows.exclusions)


def _auc(design, feature_set, repeats=1):
    spec = CLASSIFIERS["logistic_regression"]
    pipeline = build_pipeline(spec, design.feature_sets[feature_set], SEED)
    splits = outer_splits(design.y, design.groups, 3, repeats, SEED)
    X = design.X(feature_set)  # noqa: N806
    result = nested_cross_validate(X, design.y, design.groups, spec, pipeline, splits, feature_set)
    return result.folds["auc"].mean()


def test_rate_is_exact_on_a_hand_made_example():
    # a: three sessions at 0, 1 and 3 years; b: two sessions 2 years apart, one value missing
    dates = ["2020-01-01", "2021-01-01", "2023-01-01", "2019-06-01", "2021-06-01", "2018-01-01"]
    keys = ["a1", "a2", "a3", "b1", "b2", "c1"]
    years = session_years(pd.Series(dates, index=keys))
    values = pd.DataFrame(
        {"v": [10.0, 8.0, 7.5, 4.0, 3.0, 1.0], "w": [2.0, np.nan, 2.6, 5.0, 6.0, 1.0]},
        index=keys,
    )
    subjects = pd.Series(["a", "a", "a", "b", "b", "c"], index=keys)
    rates, excluded = annualised_rates(values, subjects, years)
    # by hand, a: t - mean t = -4/3, -1/3, 5/3 and v - mean v = 1.5, -0.5, -1, so the slope is
    # (-2 + 1/6 - 5/3) / (42/9) = -0.75 per year (dates: Julian years, so t is 1.0007...)
    t = years[["a1", "a2", "a3"]].to_numpy() - years["a1"]
    assert rates.loc["a", "v_per_year"] == pytest.approx(np.polyfit(t, [10, 8, 7.5], 1)[0])
    assert rates.loc["a", "v_per_year"] == pytest.approx(-0.75, abs=2e-3)
    # two known values: the difference over the years between them
    assert rates.loc["a", "w_per_year"] == pytest.approx(0.6 / t[2])
    span_b = (pd.Timestamp("2021-06-01") - pd.Timestamp("2019-06-01")).days / 365.25
    assert rates.loc["b", "v_per_year"] == pytest.approx(-1.0 / span_b)
    assert rates.loc["b", "w_per_year"] == pytest.approx(1.0 / span_b)
    assert list(rates.index) == ["a", "b"]
    assert excluded.to_dict("records") == [
        {"participant_id": "c", "reason": "one session: a rate needs at least two"}
    ]
    # relative to the first session's value, % per year
    percent, _ = annualised_rates(values, subjects, years, "percent-per-year")
    assert percent.loc["a", "v_pct_per_year"] == pytest.approx(
        100 * rates.loc["a", "v_per_year"] / 10
    )
    assert percent.loc["b", "w_pct_per_year"] == pytest.approx(100 / span_b / 5)
    # ages (numbers) are years as they are
    by_age, _ = annualised_rates(values, subjects, pd.Series([60, 61, 63, 50, 52, 70.0], keys))
    assert by_age.loc["a", "v_per_year"] == pytest.approx(-0.75)
    assert by_age.loc["b", "v_per_year"] == pytest.approx(-0.5)


def test_sessions_that_cannot_be_timed_are_excluded_with_a_reason():
    values = pd.DataFrame({"v": [1.0, 2.0, 3.0, 4.0]}, index=["a1", "a2", "b1", "b2"])
    subjects = pd.Series(["a", "a", "b", "b"], index=values.index)
    years = pd.Series([1.0, 1.0, 2.0, np.nan], index=values.index)
    rates, excluded = annualised_rates(values, subjects, years)
    assert rates.empty
    assert excluded.set_index("participant_id").reason.to_dict() == {
        "a": "its 2 sessions have the same time",
        "b": "no time for session(s) b2",
    }


def test_planted_faster_atrophy_is_found_from_the_rates():
    cohort = make_progression_cohort(n_subjects=60, seed=11)
    rows = _rows(cohort)
    design = _design(rows, ["volumes", "rates", "volumes+rates"])
    assert len(design.y) == 60 and design.exclusions.empty
    assert design.feature_sets["rates"] == [f"{c}_per_year" for c in cohort.features.columns[2:]]
    # the planted yearly losses are recovered, on average over the subjects
    percent = _rows(cohort, units="percent-per-year").rates.set_index("participant_id")
    percent = percent.filter(like="_pct_per_year").rename(columns=lambda c: c[:8])
    als = cohort.participants.set_index("participant_id").diagnosis.eq("ALS")
    other = percent.columns.difference(cohort.informative)
    assert percent.loc[als, cohort.informative].mean().mean() == pytest.approx(-3.0, abs=0.3)
    assert percent.loc[~als, cohort.informative].mean().mean() == pytest.approx(-0.5, abs=0.3)
    assert percent[other].mean().mean() == pytest.approx(-0.5, abs=0.2)
    rates_auc = _auc(design, "rates")
    volumes_auc = _auc(design, "volumes")
    assert rates_auc >= 0.85, rates_auc
    # one session's volumes alone are weak: the between-subject variability hides the loss
    assert volumes_auc <= 0.75 < rates_auc, (volumes_auc, rates_auc)


def test_null_cohort_gives_chance_auc():
    cohort = make_progression_cohort(n_subjects=90, rate_difference=0.0, seed=12)
    design = _design(_rows(cohort, units="percent-per-year"), ["rates"])
    auc = _auc(design, "rates", repeats=3)
    assert abs(auc - 0.5) <= 0.15, auc


def test_one_session_subjects_are_excluded_from_rates_with_a_reason():
    cohort = make_progression_cohort(n_subjects=20, single_session_fraction=0.2, seed=13)
    single = cohort.features.groupby("participant_id").size().loc[lambda n: n == 1].index
    assert len(single) == 4
    design = _design(_rows(cohort), ["volumes", "rates"])
    reasons = design.exclusions.set_index("participant_id").reason
    assert sorted(reasons.index) == sorted(single)
    assert set(reasons) == {"one session: a rate needs at least two"}
    assert not set(single) & set(design.groups) and len(design.y) == 16
    # every feature set is compared on the same subjects: volumes too lose them
    assert len(design.X("volumes")) == len(design.X("rates"))


def test_first_session_features_predict_the_last_session_label():
    cohort = make_progression_cohort(
        n_subjects=6, n_regions=2, n_informative=1, single_session_fraction=0.5
    )
    sessions = cohort.sessions.copy()
    # a session label that changes: stage 1 at the first session, 2 at the last
    last = sessions.groupby("participant_id").session_id.transform("max") == sessions.session_id
    sessions["diagnosis"] = np.where(last, "late", "early")
    rows = _rows(cohort, with_rates=False, sessions=sessions.iloc[::-1])  # any order
    first = cohort.features.groupby("participant_id").first()
    assert list(rows.features.index) == sorted(cohort.participants.participant_id)
    assert (rows.features["session_id"] == "ses-01").all()
    pd.testing.assert_frame_equal(
        rows.features[["region00", "region01"]], first[["region00", "region01"]], check_names=False
    )
    assert set(rows.clinical["diagnosis"]) == {"late"}  # one-session subjects: it is also the last
    # the other clinical values are the first session's (the age at the first scan)
    assert rows.clinical["age"].to_numpy() == pytest.approx(
        sessions.groupby("participant_id").age.min().to_numpy()
    )
    assert rows.exclusions.empty and rows.rates is None and "rates" not in rows.families


def test_rates_need_morphometry_and_a_present_time_column():
    cohort = make_progression_cohort(n_subjects=4, n_regions=2, n_informative=1)
    features, _ = join_families({"radiomics": cohort.features})
    clinical = cohort.participants.set_index("participant_id").reindex(features.participant_id)
    clinical = clinical.set_axis(features.index)
    with pytest.raises(DesignError, match="no volumes or thickness or meshnet features"):
        subject_rows(features, {"radiomics": ["region00"]}, clinical, cohort.sessions, "sex", True)
    with pytest.raises(DesignError, match="--session-time: no column 'scan_date'"):
        subject_rows(
            features, {"volumes": ["region00"]}, clinical, cohort.sessions, "sex", True,
            session_time="scan_date",
        )  # fmt: skip
    untimed = cohort.sessions.drop(columns=["acq_time", "age"])
    with pytest.raises(DesignError, match="needs the time of every session"):
        check_times(untimed, ["volumes+rates"], None)
    check_times(untimed, ["volumes"], None)  # no rates: no times needed


# --- end to end, through the CLI ------------------------------------------------------------


def test_group_level_classifies_on_rates(tmp_path, capsys):
    cohort = make_progression_cohort(
        n_subjects=40, n_regions=6, single_session_fraction=0.05, seed=14
    )
    bids, out = write_feature_dataset(tmp_path, cohort, sessions=cohort.sessions)
    args = [str(bids), str(out), "group", "--skip-bids-validation", "-w", str(tmp_path / "w")]
    args += ["--target", "diagnosis", "--positive-label", "ALS", "--seed", str(SEED)]
    args += ["--classifiers", "logistic_regression", "--feature-sets", "volumes", "rates"]
    assert main([*args, "--rate-units", "percent-per-year"]) == 0
    group = out / "group"
    rates = pd.read_csv(group / "longitudinal_rates.tsv", sep="\t")
    assert len(rates) == 38 and {"first_session", "span_years"} <= set(rates.columns)
    assert "region00_pct_per_year" in rates and (rates["n_sessions"] >= 2).all()
    excluded = pd.read_csv(group / "classification_exclusions.tsv", sep="\t")
    single = cohort.features.groupby("participant_id").size().loc[lambda n: n == 1].index
    assert sorted(excluded["participant_id"]) == sorted(single)
    assert excluded["reason"].str.startswith("one session").all()
    best = pd.read_csv(group / "classification_best.tsv", sep="\t").set_index("feature_set")
    assert best.loc["rates", "auc"] >= 0.85 > best.loc["volumes", "auc"]
    predictions = pd.read_csv(group / "classification_predictions.tsv", sep="\t")
    assert predictions["session"].str.fullmatch(r"sub-\d+").all()  # one row per subject
    # an absent --session-time is refused before anything is written
    (group / "longitudinal_rates.tsv").unlink()
    assert main([*args, "--session-time", "scan_date"]) == ExitCode.DATA
    assert "--session-time: no column 'scan_date'" in capsys.readouterr().err
    assert not (group / "longitudinal_rates.tsv").exists()

"""Clustering and survival of Milella 2023: planted subtypes found, null finds none, bad input."""

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from lifelines import KaplanMeierFitter
from lifelines.statistics import logrank_test, multivariate_logrank_test
from sklearn.metrics import adjusted_rand_score

from bids_app.statistics.clustering import (
    bootstrap_stability,
    choose_k_by_bic,
    cluster,
    minmax_scale,
    prepare_features,
    residual_tiv_correction,
    silhouette,
)
from bids_app.statistics.survival import (
    cox_model,
    kaplan_meier_by_group,
    logrank_tests,
    long_short_survivors,
    median_survival,
    odds_ratios,
    prepare_survival,
)
from bids_app.synthetic.subtypes import make_subtype_cohort

METRICS = ["precentral", "paracentral", "medulla"]


def _metrics(table):
    """Milella 2023's three metrics: thicknesses averaged pair-wise, TIV-corrected medulla."""
    metrics = pd.DataFrame(
        {
            region: table[[f"{region}_left", f"{region}_right"]].mean(axis=1, skipna=False)
            for region in ("precentral", "paracentral")
        }
    )
    corrected = residual_tiv_correction(
        table[["medulla"]], table["tiv"], table["diagnosis"] == "CN"
    )
    return metrics.assign(medulla=corrected["medulla"])


def _patient_matrix(table):
    """The patients' min-max scaled metrics, and the exclusions."""
    features, exclusions = prepare_features(_metrics(table)[table["diagnosis"] == "ALS"], METRICS)
    return minmax_scale(features), exclusions


@pytest.fixture(scope="module")
def planted():
    table, truth = make_subtype_cohort(seed=0)
    scaled, exclusions = _patient_matrix(table)
    return table, truth, scaled, exclusions


def test_bic_finds_the_three_planted_subtypes(planted):
    table, truth, scaled, exclusions = planted
    assert exclusions.empty and len(scaled) == 90
    bic, k = choose_k_by_bic(scaled)
    assert k == 3 and bic["k"].tolist() == list(range(1, 7))
    assert bic.loc[bic["k"] == 3, "bic"].item() < bic.loc[bic["k"] != 3, "bic"].min()
    labels = cluster(scaled)  # k from the BIC
    assert sorted(labels.unique()) == [1, 2, 3]
    assert adjusted_rand_score(truth[scaled.index], labels) >= 0.8
    overall, per_cluster, samples = silhouette(scaled, labels)
    assert overall > 0.45  # 002 had 0.6; ~0.54 here
    assert per_cluster["n"].sum() == 90 and (per_cluster["silhouette"] > 0.3).all()
    assert samples.mean() == pytest.approx(overall)
    # the cluster holding the 'both' subtype survives less than the others (002's cluster 1)
    both = pd.crosstab(labels, truth[scaled.index])["both"].idxmax()
    patients = table.loc[scaled.index]
    out = logrank_tests(patients["survival_months"], patients["event"], labels == both)
    assert out.loc[0, "p_value"] < 0.05
    medians = median_survival(patients["survival_months"], patients["event"], labels == both)
    assert (
        medians.set_index("group").loc[True, "median"]
        < medians.set_index("group").loc[False, "median"]
    )


@pytest.mark.parametrize(("method", "min_ari"), [("kmeans", 0.8), ("agglomerative", 0.75)])
def test_other_methods_recover_the_subtypes(planted, method, min_ari):
    _, truth, scaled, _ = planted
    labels = cluster(scaled, method)  # k from the Gaussian mixture's BIC
    assert labels.nunique() == 3
    assert adjusted_rand_score(truth[scaled.index], labels) >= min_ari


def test_null_cohort_gives_one_cluster_in_most_seeds():
    chosen = [
        choose_k_by_bic(_patient_matrix(make_subtype_cohort(subtypes=False, seed=seed)[0])[0])[1]
        for seed in range(20)
    ]
    assert sum(k == 1 for k in chosen) >= 11, chosen


def test_labels_are_numbered_by_size_and_deterministic(planted):
    _, _, scaled, _ = planted
    labels = cluster(scaled, "kmeans", k=3)
    sizes = labels.value_counts().sort_index().to_numpy()
    assert (np.diff(sizes) <= 0).all()
    assert labels.equals(cluster(scaled, "kmeans", k=3))
    # the same data in another row order: each subject keeps its label
    shuffled = scaled.sample(frac=1.0, random_state=1)
    assert (
        cluster(shuffled, "agglomerative", k=3)
        .reindex(scaled.index)
        .equals(cluster(scaled, "agglomerative", k=3))
    )


def test_bootstrap_stability_high_for_planted_and_deterministic(planted):
    _, _, scaled, _ = planted
    mean, sd = bootstrap_stability(scaled, "gmm", k=3, n_boot=30, random_state=0)
    assert mean > 0.7 and 0 <= sd < 0.3
    assert bootstrap_stability(scaled, "gmm", k=3, n_boot=30, random_state=0) == (mean, sd)
    null = _patient_matrix(make_subtype_cohort(subtypes=False, seed=0)[0])[0]
    assert bootstrap_stability(null, "gmm", k=3, n_boot=30, random_state=0)[0] < mean


def test_residual_correction_is_fitted_on_the_reference():
    rng = np.random.default_rng(0)
    tiv = pd.Series(rng.normal(1450, 120, 60))
    controls = pd.Series(np.arange(60) < 30)
    # purely a TIV effect in controls; patients smaller by 1 mL at any TIV
    volume = 0.003 * tiv + rng.normal(0, 0.05, 60) - 1.0 * ~controls
    values = pd.DataFrame({"medulla": volume})
    assert np.corrcoef(tiv[controls], volume[controls])[0, 1] > 0.8
    corrected = residual_tiv_correction(values, tiv, controls)["medulla"]
    assert np.corrcoef(tiv[controls], corrected[controls])[0, 1] == pytest.approx(0, abs=1e-9)
    gap = corrected[~controls].mean() - corrected[controls].mean()
    assert gap == pytest.approx(-1.0, abs=0.1)
    # a patient's value does not move the slope; with everyone as reference, it does
    changed = values.copy()
    changed.loc[45, "medulla"] += 5.0
    again = residual_tiv_correction(changed, tiv, controls)["medulla"]
    assert again.drop(45).equals(corrected.drop(45))
    assert again[45] - corrected[45] == pytest.approx(5.0)
    pooled = residual_tiv_correction(values, tiv)["medulla"]
    pooled_changed = residual_tiv_correction(changed, tiv)["medulla"]
    assert not np.allclose(pooled.drop(45), pooled_changed.drop(45))
    assert np.corrcoef(tiv, pooled)[0, 1] == pytest.approx(0, abs=1e-9)


def test_kaplan_meier_and_logrank_are_lifelines():
    rng = np.random.default_rng(3)
    time = pd.Series(rng.exponential(30, 45).round(1))
    event = pd.Series((rng.random(45) < 0.7).astype(int))
    groups = pd.Series(np.repeat(["a", "b", "c"], 15))
    curves = kaplan_meier_by_group(time, event, groups)
    for name in "abc":
        rows = groups == name
        direct = KaplanMeierFitter().fit(time[rows], event[rows])
        mine = curves[curves["group"] == name]
        assert mine["time"].to_numpy() == pytest.approx(direct.survival_function_.index)
        assert mine["survival"].to_numpy() == pytest.approx(direct.survival_function_.iloc[:, 0])
        band = direct.confidence_interval_survival_function_
        assert mine["ci_lower"].to_numpy() == pytest.approx(band.iloc[:, 0])
        assert mine["n_at_risk"].iloc[0] == 15
        median = median_survival(time, event, groups).set_index("group").loc[name, "median"]
        assert median == direct.median_survival_time_
    tests = logrank_tests(time, event, groups).set_index("groups")
    a, b = groups == "a", groups == "b"
    direct = logrank_test(time[a], time[b], event[a], event[b])
    assert tests.loc["a vs b", "test_statistic"] == pytest.approx(direct.test_statistic)
    assert tests.loc["a vs b", "p_value"] == pytest.approx(direct.p_value)
    assert tests.loc["a vs b", "p_bonferroni"] == pytest.approx(min(1, 3 * direct.p_value))
    overall = multivariate_logrank_test(time, groups, event)
    assert tests.loc["a vs b vs c", "p_value"] == pytest.approx(overall.p_value)
    assert tests.loc["a vs b vs c", "df"] == 2 and tests.loc["a vs b vs c", "n"] == 45


def _two_groups(rng, medians, n=40):
    death = rng.exponential(np.repeat(medians, n) / np.log(2))
    follow_up = rng.uniform(30, 90, 2 * n)
    return np.minimum(death, follow_up), (death <= follow_up).astype(int), np.repeat([0, 1], n)


def test_logrank_finds_a_planted_difference_and_is_calibrated_under_the_null():
    rng = np.random.default_rng(0)
    time, event, groups = _two_groups(rng, [20.0, 50.0])
    assert logrank_tests(time, event, groups).loc[0, "p_value"] < 0.05
    null = [logrank_tests(*_two_groups(rng, [40.0, 40.0])).loc[0, "p_value"] for _ in range(50)]
    assert np.mean(np.array(null) < 0.05) < 0.2
    assert 0.3 < np.median(null) < 0.7


def test_long_short_survivors_threshold_and_002_split():
    time = pd.Series([10.0, 50.0, 20.0, 60.0, np.nan], index=list("abcde"))
    event = pd.Series([1, 0, 0, 1, 1], index=list("abcde"))
    survivors, exclusions = long_short_survivors(time, event, threshold=30)
    assert survivors.fillna("-").tolist() == ["short", "long", "-", "long", "-"]
    assert exclusions.loc["c", "reason"] == "censored at 20, not beyond the threshold 30"
    assert exclusions.loc["e", "reason"] == "missing survival time"
    # 002's split (two clusters of the event status and the time): follows the event status
    table, _ = make_subtype_cohort(seed=0)
    patients = table[table["diagnosis"] == "ALS"]
    survivors, exclusions = long_short_survivors(patients["survival_months"], patients["event"])
    assert exclusions.empty and set(survivors) == {"long", "short"}
    by_split = patients.groupby(survivors)["event"].mean()
    assert by_split["short"] > 0.9 and by_split["long"] < 0.1


def test_odds_ratios_match_the_two_by_two_table():
    rng = np.random.default_rng(0)
    exposed = np.repeat([1, 0], 60)
    short = (rng.random(120) < np.where(exposed == 1, 0.8, 0.5)).astype(int)
    table = pd.DataFrame({"short": short, "cluster": np.where(exposed == 1, "c1", "c2")})
    table["age"] = rng.normal(60, 8, 120)
    out = odds_ratios(table, "short", ["cluster", "age"])
    row = out[(out["model"] == "univariable") & (out["predictor"] == "cluster")].iloc[0]
    a, b = np.sum(short[exposed == 1]), np.sum(1 - short[exposed == 1])
    c, d = np.sum(short[exposed == 0]), np.sum(1 - short[exposed == 0])
    assert row["term"] == "c1 vs c2"
    assert row["odds_ratio"] == pytest.approx(a * d / (b * c))
    woolf = 1.959964 * np.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
    assert np.log(row["ci_lower"]) == pytest.approx(np.log(a * d / (b * c)) - woolf, abs=1e-4)
    assert row["p_value"] < 0.05 and row["note"] == ""
    adjusted = out[out["model"] == "multivariable"].set_index("predictor")
    direct = sm.Logit(short, sm.add_constant(np.column_stack([1 - exposed, table["age"]])))
    params = direct.fit(disp=0).params
    assert adjusted.loc["cluster", "odds_ratio"] == pytest.approx(np.exp(-params[1]))
    assert adjusted.loc["age", "odds_ratio"] == pytest.approx(np.exp(params[2]))
    # complete separation is reported, not fitted
    table["separated"] = table["short"]
    noted = odds_ratios(table, "short", ["separated"])
    assert "separation" in noted.loc[0, "note"] and np.isnan(noted.loc[0, "odds_ratio"])


def test_cox_model_finds_the_short_survival_subtype():
    table, truth = make_subtype_cohort(seed=0)
    patients = table["diagnosis"] == "ALS"
    covariates = pd.DataFrame({"both": (truth == "both").astype(int), "age": table["age"]})
    out = cox_model(table["survival_months"], table["event"], covariates)
    row = out.set_index("covariate").loc["both"]
    assert row["hazard_ratio"] > 1.5 and row["ci_lower"] > 1 and row["p_value"] < 0.05
    assert row["n"] == patients.sum()  # the controls have no survival time: left out


def test_too_few_patients_for_k():
    scaled = np.random.default_rng(0).random((5, 3))
    with pytest.raises(ValueError, match="3 clusters need at least 6 subjects"):
        cluster(scaled, "gmm", k=3)
    with pytest.raises(ValueError, match="up to 6 clusters needs at least 12 subjects"):
        choose_k_by_bic(scaled)
    with pytest.raises(ValueError, match="unknown clustering method"):
        cluster(scaled, "dbscan", k=2)


def test_missing_clustering_feature_is_listed_and_excluded():
    table, _ = make_subtype_cohort(seed=0)
    table.loc[[3, 7], "precentral_left"] = np.nan
    table.loc[7, "medulla"] = np.nan
    scaled, exclusions = _patient_matrix(table)
    assert len(scaled) == 88 and 3 not in scaled.index and 7 not in scaled.index
    assert exclusions.loc[3, "reason"] == "missing clustering feature: precentral"
    assert exclusions.loc[7, "reason"] == "missing clustering feature: precentral, medulla"
    with pytest.raises(ValueError, match="prepare_features"):
        cluster(minmax_scale(_metrics(table)), k=2)
    with pytest.raises(ValueError, match="not in the table: thalamus"):
        prepare_features(table, ["medulla", "thalamus"])


def test_bad_survival_input():
    time = pd.Series([12.0, -1.0, 30.0, np.nan], index=["s1", "s2", "s3", "s4"])
    event = pd.Series([1, 1, 0, 1], index=time.index)
    with pytest.raises(ValueError, match=r">= 0; rows: s2$"):
        logrank_tests(time, event, [0, 0, 1, 1])
    time["s2"] = 20.0
    groups = pd.Series(["a", "a", None, None], time.index)
    data, exclusions = prepare_survival(time, event, groups)
    assert data.index.tolist() == ["s1", "s2"]
    assert exclusions["reason"].to_dict() == {
        "s3": "missing group",
        "s4": "missing survival time; missing group",
    }
    curves = kaplan_meier_by_group(time, event)
    assert curves.loc[0, "n_at_risk"] == 3  # s4 has no time
    assert prepare_survival(time, event)[1].loc["s4", "reason"] == "missing survival time"
    with pytest.raises(ValueError, match="needs at least one event"):
        logrank_tests(time, event * 0, ["a", "a", "b", "b"])
    with pytest.raises(ValueError, match="0/1 or True/False; rows: s3"):
        prepare_survival(time, event.replace({0: 2}))
    with pytest.raises(ValueError, match="at least two groups"):
        logrank_tests(time, event, ["a"] * 4)

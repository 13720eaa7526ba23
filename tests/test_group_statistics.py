"""Group statistics: ANCOVA (002), profile table and Fisher's test (002), group histograms (000)."""

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.stats.anova import anova_lm

from bids_app.statistics.ancova import ancova
from bids_app.statistics.demographics import compare_groups, demographic_tests
from bids_app.statistics.histograms import group_histograms


def _subjects(rng, sizes, age_means=None):
    labels = [f"G{i}" for i in range(len(sizes))]
    age_means = age_means or [60.0] * len(sizes)
    return pd.DataFrame(
        {
            "dx": np.repeat(labels, sizes),
            "age": np.concatenate(
                [rng.normal(m, 8, n) for m, n in zip(age_means, sizes, strict=True)]
            ),
            "sex": rng.choice(["M", "F"], sum(sizes)),
        }
    )


def _noise_features(rng, table, count):
    names = [f"roi {i}" for i in range(count)]  # spaces: the formula must quote them
    noise = pd.DataFrame(rng.normal(size=(len(table), count)), columns=names, index=table.index)
    return pd.concat([table, noise], axis=1), names


def test_ancova_finds_the_one_planted_effect():
    rng = np.random.default_rng(0)
    table, names = _noise_features(rng, _subjects(rng, [60, 60]), 50)
    table[names[7]] += 0.9 * (table["dx"] == "G1")
    out = ancova(table, names, "dx", ["age", "sex"])
    assert out.loc[7, "q_value"] < 0.05 and out.loc[7, "significant"]
    assert out["significant"].sum() <= 2
    assert out.loc[7, "partial_eta2"] > 0.1
    # Benjamini-Hochberg by hand: q of the i-th smallest p is min over j >= i of p_(j) m / j
    order = np.argsort(out["p_value"].to_numpy())
    scaled = out["p_value"].to_numpy()[order] * 50 / np.arange(1, 51)
    q_value = np.empty(50)
    q_value[order] = np.minimum.accumulate(scaled[::-1])[::-1]
    assert out["q_value"].to_numpy() == pytest.approx(np.minimum(q_value, 1.0))


def test_ancova_null_data_flags_almost_nothing():
    rng = np.random.default_rng(1)
    flagged, p_values = [], []
    for _ in range(20):
        table, names = _noise_features(rng, _subjects(rng, [40, 40, 40]), 50)
        out = ancova(table, names, "dx", ["age", "sex"])
        flagged.append(int(out["significant"].sum()))
        p_values.append(out["p_value"].to_numpy())
    # BH at 0.05 under the global null: P(any discovery) <= 0.05
    assert sum(count > 0 for count in flagged) <= 3, flagged
    assert max(flagged) <= 2, flagged
    assert 0.03 < np.mean(np.concatenate(p_values) < 0.05) < 0.08


def test_covariate_adjustment_removes_an_age_effect():
    rng = np.random.default_rng(2)
    table = _subjects(rng, [80, 80], age_means=[55.0, 68.0])
    table["age_driven"] = 0.05 * table["age"] + rng.normal(0, 0.2, len(table))
    crude = ancova(table, ["age_driven"], "dx")
    adjusted = ancova(table, ["age_driven"], "dx", ["age"])
    assert crude.loc[0, "p_value"] < 1e-6
    assert adjusted.loc[0, "p_value"] > 0.05
    assert adjusted.loc[0, "df_resid"] == len(table) - 3


def test_emms_recover_planted_group_means():
    rng = np.random.default_rng(3)
    table = _subjects(rng, [70, 60, 50], age_means=[50.0, 60.0, 70.0])
    table.loc[table["dx"] == "G2", "sex"] = rng.choice(["M", "F"], 50, p=[0.9, 0.1])
    male = (table["sex"] == "M").astype(float)
    planted = {"G0": 2.5, "G1": 2.3, "G2": 2.0}
    table["thickness"] = (
        table["dx"].map(planted)
        - 0.02 * (table["age"] - table["age"].mean())
        + 0.3 * (male - male.mean())
        + rng.normal(0, 0.02, len(table))
    )
    out = ancova(table, ["thickness"], "dx", ["age", "sex"]).iloc[0]
    raw = table.groupby("dx")["thickness"].mean()
    for group, mean in planted.items():
        assert out[f"emm_{group}"] == pytest.approx(mean, abs=0.01)
        assert 0 < out[f"emm_se_{group}"] < 0.01
        assert out[f"sd_{group}"] == pytest.approx(table.loc[table.dx == group, "thickness"].std())
    assert abs(raw["G2"] - planted["G2"]) > 0.1  # confounded: the raw mean is off
    assert out["p_G0_vs_G1"] < 1e-6 and out["p_G1_vs_G2"] < 1e-6


def test_ancova_equals_statsmodels_feature_by_feature():
    rng = np.random.default_rng(4)
    table, names = _noise_features(rng, _subjects(rng, [25, 30, 20]), 3)
    table[names[1]] += 0.8 * (table["dx"] == "G2")
    table.loc[[3, 40], names[1]] = np.nan
    table.loc[5, "age"] = np.nan
    out = ancova(table, names, "dx", ["age", "sex"])
    for index, name in enumerate(names):
        fit = smf.ols(f'Q("{name}") ~ C(dx) + age + C(sex)', data=table).fit()
        anova = anova_lm(fit, typ=2).loc["C(dx)"]
        row = out.loc[index]
        assert row["F"] == pytest.approx(anova["F"], rel=1e-9)
        assert row["p_value"] == pytest.approx(anova["PR(>F)"], rel=1e-9)
        assert row["n"] == fit.nobs and row["df_resid"] == fit.df_resid
        ss_residual = anova_lm(fit, typ=2).loc["Residual", "sum_sq"]
        assert row["partial_eta2"] == pytest.approx(
            anova["sum_sq"] / (anova["sum_sq"] + ss_residual)
        )
        raw_p = fit.t_test("C(dx)[T.G1] = 0").pvalue
        assert row["p_G0_vs_G1"] == pytest.approx(min(1.0, 3 * raw_p), rel=1e-9)
    assert out.loc[1, "n"] == table[names[1]].notna().sum() - 1  # the missing age too


def test_degenerate_features_give_a_note_not_a_crash():
    rng = np.random.default_rng(5)
    table = _subjects(rng, [20, 20])
    table["signal"] = rng.normal(size=40)
    table["constant"] = 3.0
    table["empty"] = np.nan
    table["one_group"] = np.where(table["dx"] == "G0", 1.0, np.nan) * rng.normal(size=40)
    out = ancova(table, ["signal", "constant", "empty", "one_group"], "dx", ["age", "sex"])
    assert out["note"].tolist() == [
        "",
        "constant feature",
        "no values",
        "fewer than two groups with values",
    ]
    assert out.loc[1:, ["F", "p_value", "q_value", "emm_G0"]].isna().all().all()
    assert not out.loc[1:, "significant"].any()
    assert np.isfinite(out.loc[0, "p_value"]) and out.loc[0, "q_value"] == out.loc[0, "p_value"]


def test_fisher_is_used_for_a_small_sex_table():
    table = pd.DataFrame({"dx": list("AAAAABBBBB"), "sex": list("MMMMFFFFFM")})
    tests = demographic_tests(table, "dx").set_index("variable")
    assert tests.loc["sex", "test"] == "Fisher's exact"
    expected = stats.fisher_exact([[1, 4], [4, 1]])
    assert tests.loc["sex", "p_value"] == pytest.approx(expected.pvalue)
    assert tests.loc["sex", "statistic"] == pytest.approx(expected.statistic)
    # three small groups: a 3x2 table, Fisher's p-value estimated by Monte Carlo
    three = pd.DataFrame({"dx": list("AAAABBBBCCCC"), "sex": list("MMMMFFFFMFMF")})
    sex = demographic_tests(three, "dx").set_index("variable").loc["sex"]
    assert sex["test"].startswith("Fisher's exact (Monte Carlo")
    # the exact p-value: probability of the tables with these margins no likelier than it
    margins = stats.random_table([4, 4, 4], [6, 6])
    observed = margins.pmf([[4, 0], [0, 4], [2, 2]])
    tables = [
        [[a, 4 - a], [b, 4 - b], [6 - a - b, a + b - 2]]
        for a in range(5)
        for b in range(5)
        if 0 <= 6 - a - b <= 4
    ]
    exact = sum(p for p in map(margins.pmf, tables) if p <= observed * (1 + 1e-9))
    assert sex["p_value"] == pytest.approx(exact, abs=0.01)


def test_large_tables_keep_pearsons_chi2():
    rng = np.random.default_rng(6)
    tests = demographic_tests(_subjects(rng, [50, 50]), "dx").set_index("variable")
    assert tests.loc["sex", "test"] == "Pearson's chi2"


def test_compare_groups_profile_table():
    table = pd.DataFrame(
        {
            "dx": ["A"] * 5 + ["B"] * 4 + ["C"] * 6,
            "score": [1, 2, 3, 4, 10, 5, 6, 7, 8, 2, 4, 6, 8, 10, 12],
            "onset": ["bulbar", "spinal", "spinal", "spinal", None]
            + ["bulbar", "bulbar", "bulbar", "spinal"]
            + ["spinal"] * 6,
        }
    )
    out = compare_groups(table, "dx", ["score"], ["onset"])
    summary = out[(out.variable == "score") & (out.row_type == "summary")].set_index("groups")
    assert summary.loc["A", ["median", "q1", "q3"]].tolist() == [3.0, 2.0, 4.0]
    assert summary.loc["B", ["median", "q1", "q3"]].tolist() == [6.5, 5.75, 7.25]
    assert summary.loc["C", "n"] == 6
    tests = out[out.row_type == "test"].set_index(["variable", "groups"])
    expected = stats.mannwhitneyu([1, 2, 3, 4, 10], [5, 6, 7, 8], alternative="two-sided")
    assert tests.loc[("score", "A vs B"), "test"] == "Mann-Whitney U"
    assert tests.loc[("score", "A vs B"), "p_value"] == pytest.approx(expected.pvalue)
    assert tests.loc[("score", "A vs B"), "statistic"] == expected.statistic
    kruskal = stats.kruskal([1, 2, 3, 4, 10], [5, 6, 7, 8], [2, 4, 6, 8, 10, 12])
    assert tests.loc[("score", "A vs B vs C"), "test"] == "Kruskal-Wallis"
    assert tests.loc[("score", "A vs B vs C"), "p_value"] == pytest.approx(kruskal.pvalue)
    levels = out[(out.variable == "onset") & (out.row_type == "summary")]
    bulbar_a = levels[(levels.groups == "A") & (levels.level == "bulbar")].iloc[0]
    assert (bulbar_a["n"], bulbar_a["count"], bulbar_a["percent"]) == (4, 1, 25.0)
    fisher = stats.fisher_exact([[1, 3], [3, 1]])  # A vs B: bulbar, spinal
    assert tests.loc[("onset", "A vs B"), "test"] == "Fisher's exact"
    assert tests.loc[("onset", "A vs B"), "p_value"] == pytest.approx(fisher.pvalue)
    assert ("onset", "A vs C") in tests.index and len(tests) == 4 + 4


def _histogram(participant, session, counts):
    lower = 2.0 * np.arange(len(counts))
    return pd.DataFrame(
        {
            "participant_id": participant,
            "session_id": session,
            "bin_lower": lower,
            "bin_upper": np.append(lower[1:], np.inf),
            "count": counts,
        }
    )


def test_group_histograms_average_normalised_histograms():
    histograms = pd.concat(
        [
            _histogram("sub-1", "1", [2, 2, 4, 0]),
            _histogram("sub-1", "2", [0, 5, 5, 0]),  # two sessions: averaged first
            _histogram("sub-2", "1", [1, 1, 1, 1]),
            _histogram("sub-3", "1", [30, 10, 0, 0]),
            _histogram("sub-4", "1", [9, 9, 9, 9]),  # no group: left out
        ]
    )
    groups = pd.Series({"sub-1": "ALS", "sub-2": "ALS", "sub-3": "CN"})
    out = group_histograms(histograms, groups)
    assert out.groupby("group")["mean"].sum().to_numpy() == pytest.approx([1.0, 1.0])
    als = out[out.group == "ALS"]
    sub_1 = (np.array([0.25, 0.25, 0.5, 0]) + np.array([0, 0.5, 0.5, 0])) / 2
    expected = np.array([sub_1, [0.25] * 4])
    assert als["mean"].to_numpy() == pytest.approx(expected.mean(axis=0))
    assert als["sd"].to_numpy() == pytest.approx(expected.std(axis=0, ddof=1))
    assert (als["n_subjects"] == 2).all()
    cn = out[out.group == "CN"]
    assert cn["mean"].tolist() == pytest.approx([0.75, 0.25, 0, 0]) and cn["sd"].isna().all()
    assert np.isinf(out["bin_upper"].iloc[-1])


def test_group_histograms_merge_overflow_bins():
    histograms = pd.concat(
        [_histogram("sub-1", "1", [1, 1, 2]), _histogram("sub-2", "1", [1, 1, 1, 1])]
    )
    out = group_histograms(histograms, pd.Series({"sub-1": "A", "sub-2": "A"}))
    assert out["bin_lower"].tolist() == [0.0, 2.0, 4.0]
    assert out["mean"].tolist() == pytest.approx([0.25, 0.25, 0.5])
    shifted = _histogram("sub-2", "1", [1, 1, 1]).assign(bin_lower=lambda t: t.bin_lower + 1)
    with pytest.raises(ValueError, match="share their bins"):
        group_histograms(
            pd.concat([_histogram("sub-1", "1", [1, 1, 2]), shifted]), pd.Series({"sub-1": "A"})
        )

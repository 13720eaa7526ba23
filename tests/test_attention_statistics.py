"""Group statistics of relevance maps: Coll 2023 §2.6 and Lu 2023 §II.G."""

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from bids_app.statistics.attention import (
    binarise_percentile,
    class_average_maps,
    individual_region_counts,
    inversion_test,
    invert_voxels,
    prediction_groups,
    quantile_masks,
    region_relevance,
    spearman_permutation,
    voxelwise_regression,
)

SHAPE = (16, 16, 16)


def _cube(corner, size, shape=SHAPE):
    mask = np.zeros(shape, dtype=bool)
    mask[tuple(slice(c, c + size) for c in corner)] = True
    return mask


# --- prediction groups and class averages ---------------------------------------------------


def test_prediction_groups_and_class_averages_on_a_hand_example():
    y_true = [1, 1, 0, 0, 1, 0]
    y_pred = [True, False, False, True, True, False]
    groups = prediction_groups(y_true, y_pred)
    assert groups.tolist() == ["TP", "FN", "TN", "FP", "TP", "TN"]
    maps = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0], [3.0, 0.0], [1.0, 1.0]])
    averages = class_average_maps(maps, groups)
    assert list(averages) == ["TP", "FP", "TN", "FN"]
    np.testing.assert_allclose(averages["TP"], [2.0, 1.0])
    np.testing.assert_allclose(averages["TN"], [3.0, 3.5])
    np.testing.assert_allclose(averages["FP"], [7.0, 8.0])
    np.testing.assert_allclose(averages["FN"], [3.0, 4.0])
    # a group without subjects is absent
    assert list(class_average_maps(maps[:2], groups[:2])) == ["TP", "FN"]


def test_prediction_groups_rejects_non_binary_and_mismatched_input():
    with pytest.raises(ValueError, match="binary"):
        prediction_groups([0, 1, 2], [0, 1, 1])
    with pytest.raises(ValueError, match="values"):
        prediction_groups([0, 1, 1], [0, 1])


# --- percentile binarisation, quantile masks and regions ------------------------------------


def test_binarise_percentile_keeps_five_percent_of_positive_voxels():
    rng = np.random.default_rng(0)
    relevance = rng.normal(size=SHAPE)  # about half the voxels positive
    kept = binarise_percentile(relevance)
    positive = (relevance > 0).sum()
    assert abs(kept.sum() - 0.05 * positive) <= 1
    assert relevance[kept].min() > np.percentile(relevance[relevance > 0], 94)
    # inside a mask only, and nothing without positive relevance
    brain = _cube((0, 0, 0), 8)
    inside = binarise_percentile(relevance, 95, brain)
    assert not inside[~brain].any()
    assert abs(inside.sum() - 0.05 * (relevance[brain] > 0).sum()) <= 1
    assert not binarise_percentile(-np.abs(relevance)).any()


def test_quantile_masks_are_nested_and_sized_within_the_brain():
    rng = np.random.default_rng(1)
    relevance = rng.normal(size=SHAPE)
    brain = _cube((2, 2, 2), 12)
    quantiles = (0.99, 0.9, 0.6, 0.1)
    masks = quantile_masks(relevance, quantiles, brain)
    positive = ((relevance > 0) & brain).sum()
    assert masks.shape == (4, *SHAPE)
    assert not masks[:, ~brain].any()
    assert (relevance[masks.any(axis=0)] > 0).all()
    for mask, q in zip(masks, quantiles, strict=True):
        assert abs(mask.sum() - (1 - q) * positive) <= 1
    assert (masks[:-1] <= masks[1:]).all()  # nested from high to low quantiles


def test_region_relevance_ranks_the_planted_region_first():
    rng = np.random.default_rng(2)
    atlas = np.zeros(SHAPE, dtype=np.int16)
    atlas[:8, :8] = 1
    atlas[8:, :8] = 2
    atlas[:8, 8:] = 3
    atlas[8:, 8:, :8] = 4  # label 0 (background) stays in the last corner
    relevance = rng.random(SHAPE)
    relevance[atlas == 3] += 0.3
    relevance[atlas == 0] += 5.0  # the background is not a region and must not be reported
    names = {1: "frontal", 2: "parietal", 3: "thalamus", 4: "cerebellum", 9: "absent"}
    table = region_relevance(relevance, atlas, names)
    assert table["region"].tolist()[0] == "thalamus"
    assert table["region"].tolist()[-1] == "absent"
    assert np.isnan(table["mean_relevance"].iloc[-1]) and table["n_voxels"].iloc[-1] == 0
    assert table["rank"].tolist() == [1, 2, 3, 4, 5]
    expected = relevance[atlas == 1].mean()
    got = table.set_index("region").loc["frontal", "mean_relevance"]
    assert got == pytest.approx(expected, rel=1e-12)
    assert table.set_index("label").loc[3, "n_voxels"] == (atlas == 3).sum()


def test_individual_region_counts_find_each_subjects_planted_region():
    rng = np.random.default_rng(3)
    atlas = np.zeros(SHAPE, dtype=np.int32)
    atlas[:8] = 1
    atlas[8:] = 2
    planted = [1, 2, 2]
    maps = rng.random((3, *SHAPE)) * 0.1
    hot = _cube((2, 2, 2), 4), _cube((10, 2, 2), 4)  # 64 voxels each, inside regions 1 and 2
    for subject, region in enumerate(planted):
        maps[subject][hot[region - 1]] += 1.0
    maps[2] -= 0.05  # subject 2: only about half its voxels positive
    table = individual_region_counts(
        maps, atlas, {1: "left", 2: "right"}, subjects=["s1", "s2", "s3"]
    )
    assert table.shape == (6, 6)
    assert table["subject"].tolist() == ["s1", "s1", "s2", "s2", "s3", "s3"]
    counts = table.pivot(index="subject", columns="label", values="n_relevant")
    n_positive = (maps > 0).reshape(3, -1).sum(axis=1)
    np.testing.assert_allclose(counts.sum(axis=1), 0.05 * n_positive, atol=1)
    for subject, region in zip(["s1", "s2", "s3"], planted, strict=True):
        assert counts.loc[subject, region] == counts.loc[subject].max()
    # the top 5% (204 voxels of subject 1) hold the 64 planted voxels
    assert counts.loc["s1", 1] >= 64
    fractions = table.groupby("subject")["fraction_relevant"].sum()
    np.testing.assert_allclose(fractions, 1.0)
    assert table["fraction_of_region"].iloc[0] == pytest.approx(counts.loc["s1", 1] / 2048)


# --- voxel-wise regression ------------------------------------------------------------------


def _regression_data(seed=4, n_subjects=60):
    rng = np.random.default_rng(seed)
    lesion = (rng.random((n_subjects, *SHAPE)) < 0.3).astype(np.float32)
    log_jacobian = rng.normal(0, 0.2, (n_subjects, *SHAPE))
    noise_regressor = rng.normal(size=(n_subjects, *SHAPE))
    region = _cube((4, 4, 4), 5)
    relevance = rng.normal(0, 0.5, (n_subjects, *SHAPE))
    relevance[:, region] += 2.0 * lesion[:, region] + 5.0 * log_jacobian[:, region]
    regressors = {"lesion": lesion, "log_jacobian": log_jacobian, "noise": noise_regressor}
    return relevance, regressors, region


def _statsmodels_fit(y, columns):
    design = sm.add_constant(np.column_stack(columns), has_constant="add")
    return sm.OLS(y, design).fit()


def test_voxelwise_regression_recovers_a_planted_relation_and_matches_statsmodels():
    relevance, regressors, region = _regression_data()
    result = voxelwise_regression(relevance, regressors)
    assert result.r2.shape == SHAPE and set(result.beta) == set(regressors)
    assert (result.n == 60).all()
    peak = np.unravel_index(np.nanargmax(result.r2), SHAPE)
    assert region[peak]
    assert np.nanmean(result.r2[region]) > 0.7
    assert np.nanmean(result.r2[~region]) < 0.08  # p / (n - 1) = 0.05 expected under the null
    assert np.nanmean(result.partial_r2["lesion"][region]) > 0.5
    # a pure-noise regressor explains nothing, beyond the null's 1 / (df + 1) ~ 0.018
    assert np.nanmean(result.partial_r2["noise"]) < 0.03
    assert np.nanmean(result.partial_r2["noise"][region]) < 0.05

    rng = np.random.default_rng(5)
    voxels = [(5, 5, 5), (6, 7, 8)] + [tuple(v) for v in rng.integers(0, 16, (6, 3))]
    names = list(regressors)
    for voxel in voxels:
        index = (slice(None), *voxel)
        y = relevance[index]
        columns = [regressors[name][index].astype(float) for name in names]
        full = _statsmodels_fit(y, columns)
        assert result.r2[voxel] == pytest.approx(full.rsquared, abs=1e-10)
        z = [(c - c.mean()) / c.std() for c in columns]
        standardised = _statsmodels_fit((y - y.mean()) / y.std(), z)
        for position, name in enumerate(names):
            assert result.beta[name][voxel] == pytest.approx(full.params[position + 1], abs=1e-8)
            assert result.std_beta[name][voxel] == pytest.approx(
                standardised.params[position + 1], abs=1e-8
            )
            reduced = _statsmodels_fit(y, columns[:position] + columns[position + 1 :])
            partial = (reduced.ssr - full.ssr) / reduced.ssr
            assert result.partial_r2[name][voxel] == pytest.approx(partial, abs=1e-10)
            t = full.tvalues[position + 1]
            assert partial == pytest.approx(t**2 / (t**2 + full.df_resid), abs=1e-10)


def test_voxelwise_regression_undefined_voxels_are_nan_and_chunks_do_not_matter():
    relevance, regressors, _ = _regression_data(seed=6, n_subjects=20)
    regressors = {"lesion": regressors["lesion"], "log_jacobian": regressors["log_jacobian"]}
    flat_y = relevance.reshape(20, -1).copy()
    flat = {name: values.reshape(20, -1).copy() for name, values in regressors.items()}
    flat["lesion"][:, 0] = 0.0  # no lesion in any subject
    flat_y[:, 1] = 0.3  # constant relevance
    flat_y[2:, 2] = np.nan  # two subjects only: no residual degree of freedom
    flat_y[:5, 3] = np.nan  # fifteen subjects
    flat["log_jacobian"][:, 4] = 2 * flat["lesion"][:, 4] + 1  # collinear regressors
    mask = np.ones(flat_y.shape[1], dtype=bool)
    mask[5] = False
    result = voxelwise_regression(flat_y, flat, mask=mask, chunk_size=7)
    whole = voxelwise_regression(flat_y, flat, mask=mask)
    for a, b in [(result.r2, whole.r2), (result.beta["lesion"], whole.beta["lesion"])]:
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)

    # voxel 0: the lesion's effect is undefined, the rest is the model without it
    assert np.isnan(result.beta["lesion"][0]) and np.isnan(result.partial_r2["lesion"][0])
    alone = _statsmodels_fit(flat_y[:, 0], [flat["log_jacobian"][:, 0]])
    assert result.r2[0] == pytest.approx(alone.rsquared, abs=1e-10)
    assert result.beta["log_jacobian"][0] == pytest.approx(alone.params[1], abs=1e-8)
    # voxel 1: constant relevance, nothing to explain
    assert np.isnan(result.r2[1]) and np.isnan(result.std_beta["lesion"][1])
    assert result.beta["lesion"][1] == pytest.approx(0.0, abs=1e-12)
    # voxel 2: too few subjects
    assert result.n[2] == 2 and np.isnan(result.r2[2]) and np.isnan(result.beta["lesion"][2])
    # voxel 3: fitted on the subjects with values
    assert result.n[3] == 15
    subset = _statsmodels_fit(flat_y[5:, 3], [flat[name][5:, 3] for name in flat])
    assert result.r2[3] == pytest.approx(subset.rsquared, abs=1e-10)
    assert result.beta["log_jacobian"][3] == pytest.approx(subset.params[2], abs=1e-8)
    # voxel 4: collinear regressors; voxel 5: outside the mask
    assert np.isnan(result.r2[4]) and np.isnan(result.beta["log_jacobian"][4])
    assert result.n[5] == 0 and np.isnan(result.r2[5])
    assert np.isfinite(result.r2[6:]).all()


def test_voxelwise_regression_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shape"):
        voxelwise_regression(np.zeros((5, 10)), {"x": np.zeros((5, 9))})
    with pytest.raises(ValueError, match="regressor"):
        voxelwise_regression(np.zeros((5, 10)), {})


# --- Spearman permutation test --------------------------------------------------------------


def test_spearman_permutation_p_values_are_uniform_under_the_null():
    rng = np.random.default_rng(7)
    p_values = [
        spearman_permutation(rng.normal(size=25), rng.normal(size=25), 500, rng)[1]
        for _ in range(200)
    ]
    assert stats.kstest(p_values, "uniform").pvalue > 0.01
    assert min(p_values) >= 1 / 501


def test_spearman_permutation_finds_a_planted_correlation():
    rng = np.random.default_rng(8)
    edss = rng.integers(0, 8, 40).astype(float)  # ties, as the EDSS has
    values = -0.05 * edss + rng.normal(0, 0.1, 40)
    rho, p = spearman_permutation(values, edss, rng=rng)
    assert rho == pytest.approx(stats.spearmanr(values, edss).statistic, abs=1e-12)
    assert rho < 0 and p < 0.01
    assert p == pytest.approx(1 / 20001)
    values[[0, 3]] = np.nan  # missing values are left out
    keep = np.isfinite(values)
    rho, _ = spearman_permutation(values, edss, 1000, rng)
    assert rho == pytest.approx(stats.spearmanr(values[keep], edss[keep]).statistic, abs=1e-12)
    assert np.isnan(spearman_permutation(np.ones(10), edss[:10], 100, rng)[0])


# --- voxel inversion (Lu 2023) -------------------------------------------------------------


def test_invert_voxels_inverts_only_the_mask_in_every_channel():
    rng = np.random.default_rng(9)
    images = rng.random((2, *SHAPE)).astype(np.float32)
    mask = _cube((0, 0, 0), 4)
    inverted = invert_voxels(images, mask)
    assert inverted.dtype == np.float32
    np.testing.assert_allclose(inverted[:, mask], 1 - images[:, mask])
    np.testing.assert_array_equal(inverted[:, ~mask], images[:, ~mask])


def test_inverting_relevant_voxels_drops_the_auc_more_than_random_voxels():
    rng = np.random.default_rng(10)
    n_subjects = 40
    labels = np.repeat([0, 1], n_subjects // 2)
    region = _cube((5, 5, 5), 4)  # 64 voxels, 1.6% of the grid
    images = rng.random((n_subjects, 1, *SHAPE))
    images[:, 0, region] = np.where(
        labels[:, None] == 1,
        rng.uniform(0.6, 1.0, (n_subjects, region.sum())),
        rng.uniform(0.0, 0.4, (n_subjects, region.sum())),
    )

    def predict(batch):
        return 1 / (1 + np.exp(-10 * (batch[:, 0, region].mean(axis=1) - 0.5)))

    relevance = rng.random((n_subjects, *SHAPE)) * 0.1
    relevance[:, region] += 1.0
    brain = np.ones(SHAPE, dtype=bool)
    brain[0] = False
    table = inversion_test(
        predict, images, labels, relevance, (0.99, 0.95, 0.5), brain, n_random=3, rng=rng
    )
    assert isinstance(table, pd.DataFrame) and len(table) == 3
    assert (table["auc_original"] == 1.0).all()
    positive = brain.sum()
    expected = np.array([0.01, 0.05, 0.5]) * positive
    np.testing.assert_allclose(table["mean_inverted"], expected, atol=1)
    assert (table["drop_relevance"] > 0.9).all()
    assert (table["drop_random"].iloc[:2] < 0.1).all()
    # per-channel relevance maps give the same answer when the channel is the only one
    per_channel = inversion_test(
        predict, images, labels, relevance[:, None], (0.95,), brain, n_random=2, rng=0
    )
    assert per_channel["drop_relevance"].iloc[0] > 0.9
    with pytest.raises(ValueError, match="relevance"):
        inversion_test(predict, images, labels, relevance[:, :8], (0.95,), n_random=1)

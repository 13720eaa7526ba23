"""GAMER-MRIL (Lu et al. 2023) on a two-contrast crop cohort with the effect in one contrast.

The first channel is a null cohort's crops, the second a cohort whose positive subjects lose
80 % of the grey-matter intensity of the left cortex (``bids_app.synthetic.crops``; a large region
so that a small GAMER learns it in a few CPU epochs). GAMER must weight the planted contrast
more (Lu 2023 Table II), LRP started from the attention weights must put more relevance into the
planted region of the planted contrast than of the other one (§II.F), the combined map (eq. (8))
must have the crop's shape, and ``--lrp-start`` / ``--lrp-gated-rule`` must reach the written
tables and maps. Spearman's test of the mean value inside a relevant mask must find a planted
correlation and nothing in a null cohort (§II.G).
"""

from __future__ import annotations

import dataclasses

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from bids_app.cli.main import parse_config
from bids_app.deep.crossval import NetworkSpec, deep_cross_validate
from bids_app.deep.lrp import combined_map
from bids_app.deep.training import PRESETS as TRAININGS
from bids_app.derivatives.writer import DerivativesWriter
from bids_app.group.attention import out_of_fold_predictor
from bids_app.group.deep_learning import DeepOutcome, network_options
from bids_app.group.gamer import (
    SCENARIOS,
    out_of_fold_attention,
    out_of_fold_contrast_relevance,
    run_gamer_analysis,
)
from bids_app.models.crossval import outer_splits
from bids_app.models.design import Target
from bids_app.reports.attention import gamer_html
from bids_app.statistics.attention import contrast_spearman, mean_attention_weights
from bids_app.synthetic.crops import make_crop_cohort
from tests.conftest import pooled

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CPU = torch.device("cpu")
#: Desikan-Killiany labels of the left cortex: the planted region.
LEFT_CORTEX = tuple(range(1001, 1036))
CONTRASTS = ("T1w", "FLAIR")


@pytest.fixture(scope="module")
def trained():
    planted = make_crop_cohort(24, atrophy=0.8, regions=LEFT_CORTEX, seed=6)
    null = make_crop_cohort(24, atrophy=0.0, seed=7)
    volumes = np.concatenate([pooled(null.images), pooled(planted.images)], axis=1)
    region = pooled(np.isin(planted.atlas, planted.planted)[None, None].astype(np.float32))
    participants = planted.participants
    y = (participants.diagnosis == "ALS").astype(int).to_numpy()
    groups = participants.participant_id.to_numpy()
    ages = participants.age.to_numpy(dtype=np.float32)
    training = dataclasses.replace(
        TRAININGS["lu2023"],
        epochs=12,
        batch_size=4,
        learning_rate=3e-3,
        loss="weighted-ce",
        bf16=False,
    )
    spec = NetworkSpec("gamer", network_options("gamer", 4), training, validation=False)
    splits = outer_splits(y, groups, 3)
    result = deep_cross_validate(volumes, y, groups, splits, spec, CPU, ages=ages, seed=0)
    return volumes, region[0, 0] > 0.5, participants, y, ages, result, spec


@pytest.mark.slow
def test_planted_contrast_gets_the_larger_attention_weight(trained):
    volumes, _, _, y, ages, result, spec = trained
    weights = out_of_fold_attention(result, spec, volumes, ages, CPU)
    assert weights.shape == (24, 2)
    np.testing.assert_allclose(weights.sum(axis=1), 1, rtol=1e-5)
    prediction = result.predictions.query("repeat == 0").set_index("row").sort_index()
    table = mean_attention_weights(weights, y, prediction["y_pred"], CONTRASTS)
    # Table II: the planted contrast (FLAIR here) first, with most of the weight (measured 0.91)
    assert table.contrast.tolist() == ["FLAIR", "T1w"], table
    assert table.mean_weight.iloc[0] > 0.7 and table.n_correct.iloc[0] >= 12, table


@pytest.mark.slow
def test_attention_started_relevance_sits_in_the_planted_contrast(trained):
    volumes, region, _, _, ages, result, spec = trained
    maps = out_of_fold_contrast_relevance(
        result,
        spec,
        volumes,
        ages,
        CPU,
        rule="composite",
        start="attention",
        gated_rule="proportional",
    )
    assert maps.shape == volumes.shape and np.isfinite(maps).all()
    positive = np.clip(maps, 0, None)
    in_region = positive[:, :, region].sum(axis=(0, 2))
    # the planted region of the planted contrast holds several times the relevance of the same
    # region of the null contrast (measured 8x)
    assert in_region[1] > 3 * in_region[0], in_region
    combined = combined_map(torch.from_numpy(maps), torch.from_numpy(volumes)).numpy()
    assert combined.shape == (24, *volumes.shape[2:]) and np.isfinite(combined).all()


@pytest.mark.slow
def test_options_reach_the_written_analyses(trained, tmp_path):
    volumes, _, participants, y, ages, result, spec = trained
    args = [str(tmp_path / "bids"), str(tmp_path / "out"), "group", "--dl-models", "gamer"]
    args += ["--dl-contrasts", *CONTRASTS, "--seed", "3"]
    config = parse_config([*args, "--lrp-start", "attention", "--lrp-gated-rule", "lrp-all"])
    assert (config.deep.lrp_start, config.deep.lrp_gated_rule) == ("attention", "lrp-all")
    prediction = result.predictions.query("repeat == 0").set_index("row").sort_index()
    rows = participants.assign(edss=np.where(y == 1, 6.0, 2.0) + np.arange(24) % 3 * 0.5)
    outcome = DeepOutcome(
        rows=rows,
        volumes=volumes,
        ages=ages,
        affine=np.diag([4.0, 4.0, 4.0, 1.0]),
        results={"gamer": (result, spec)},
        predictions={
            "gamer": participants[["participant_id"]].assign(
                y_true=y, score=prediction["score"].to_numpy(), y_pred=prediction["y_pred"]
            )
        },
    )
    (tmp_path / "bids").mkdir()
    writer = DerivativesWriter(tmp_path / "out", tmp_path / "bids", "test")
    writer.initialise()
    gamer = run_gamer_analysis(
        "gamer",
        outcome,
        Target("edss", threshold=5.0),
        config,
        writer,
        CPU,
        np.ones(volumes.shape[2:], bool),
        out_of_fold_predictor(outcome, "gamer", CPU),
        quantiles=(0.95, 0.6),
    )
    group = tmp_path / "out" / "group"
    combined = nib.load(group / "deep_gamer_combined_map.nii.gz")
    assert combined.shape == (*volumes.shape[2:], 24)
    for contrast in CONTRASTS:
        assert nib.load(group / f"deep_gamer_contrast_relevance_{contrast}.nii.gz").shape == (
            *volumes.shape[2:],
            24,
        )
    weights = pd.read_csv(group / "deep_gamer_attention_weights.tsv", sep="\t")
    assert {"attention_T1w", "attention_FLAIR"} <= set(weights.columns) and len(weights) == 24
    summary = pd.read_csv(group / "deep_gamer_attention_summary.tsv", sep="\t")
    assert summary.contrast.iloc[0] == "FLAIR"
    # the attention start compares scenarios 1-4 of Table I, the LRP-all baseline included
    scenarios = pd.read_csv(group / "deep_gamer_lrp_scenarios.tsv", sep="\t")
    assert sorted(scenarios.scenario.unique()) == [1, 2, 3, 4]
    assert set(scenarios.gated_rule) == {"proportional", "lrp-all"}
    assert SCENARIOS["attention", "lrp-all", "combined"] == 4
    assert len(scenarios) == 8 and scenarios.auc_relevance.between(0, 1).all()
    spearman = pd.read_csv(group / "deep_gamer_contrast_spearman.tsv", sep="\t")
    assert len(spearman) == 8 and set(spearman.contrast) == set(CONTRASTS)
    assert spearman.groupby("scenario").largest_auc_drop.all().sum() == 1
    assert (spearman["quantile"] == 0.6).all()
    assert gamer.start == "attention" and gamer.gated_rule == "lrp-all"
    html = gamer_html(gamer)
    assert "Table II" in html and "scenario 4" in html and "largest_auc_drop" in html


def _mask_cohort(correlated: bool, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two-contrast 8^3 images with a relevant cube; contrast 0's cube tracks the score."""
    rng = np.random.default_rng(seed)
    n = 30
    scores = rng.uniform(0, 8, n)
    images = rng.uniform(0.3, 0.7, (n, 2, 8, 8, 8))
    relevance = rng.uniform(0, 0.1, (n, 8, 8, 8))
    relevance[:, 2:5, 2:5, 2:5] = 1.0
    if correlated:
        images[:, 0, 2:5, 2:5, 2:5] += (scores / 40 + rng.normal(0, 0.02, n))[:, None, None, None]
    return images, relevance, scores


def test_spearman_finds_a_planted_correlation_and_nothing_in_a_null_cohort():
    images, relevance, scores = _mask_cohort(correlated=True, seed=1)
    planted = contrast_spearman(
        images, relevance, scores, CONTRASTS, quantile=0.9, n_permutations=2000, rng=0
    )
    assert planted.rho.iloc[0] > 0.7 and planted.p_permutation.iloc[0] < 0.01, planted
    assert planted.p_permutation.iloc[1] > 0.05, planted  # the other contrast has no effect
    images, relevance, scores = _mask_cohort(correlated=False, seed=2)
    null = contrast_spearman(
        images, relevance, scores, CONTRASTS, quantile=0.9, n_permutations=2000, rng=0
    )
    assert (null.p_permutation > 0.05).all(), null
    # one mask per contrast gives the same answer when both masks are the cube
    per_contrast = contrast_spearman(
        images, np.stack([relevance] * 2, axis=1), scores, CONTRASTS, 0.9, n_permutations=2000
    )
    np.testing.assert_allclose(per_contrast.rho, null.rho)

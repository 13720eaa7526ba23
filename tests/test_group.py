"""Group level: the assembled table and the demographic tests (Turrisi 2024 Table 2)."""

from pathlib import Path

import numpy as np
import pandas as pd

from bids_app.group.workflow import assemble_group_table
from bids_app.inputs.inventory import SessionInputs
from bids_app.statistics.demographics import (
    characteristics_by_group,
    demographic_tests,
    demographics_by_group,
)


def _cohort(rng, n, age_shift=0.0, male_share=(0.5, 0.5)):
    groups = np.repeat(["CN", "ALS"], n)
    age = np.r_[rng.normal(60, 8, n), rng.normal(60 + age_shift, 8, n)]
    sex = np.r_[rng.random(n) < male_share[0], rng.random(n) < male_share[1]]
    return pd.DataFrame({"dx": groups, "age": age, "sex": np.where(sex, "M", "F")})


def test_planted_differences_are_found():
    rng = np.random.default_rng(0)
    tests = demographic_tests(_cohort(rng, 80, age_shift=8, male_share=(0.3, 0.7)), "dx")
    assert (tests["p_value"] < 1e-3).all() and len(tests) == 2


def test_null_cohorts_give_uniform_p_values():
    rng = np.random.default_rng(1)
    p_values = np.array(
        [demographic_tests(_cohort(rng, 40), "dx")["p_value"].to_numpy() for _ in range(200)]
    )
    false_positive_rate = (p_values < 0.05).mean(axis=0)
    assert np.all(false_positive_rate < 0.1), false_positive_rate


def test_three_groups_pairwise_age():
    table = pd.DataFrame(
        {"dx": list("AABBCC"), "age": [50, 52, 60, 62, 70, 72], "sex": list("MFMFMF")}
    )
    tests = demographic_tests(table, "dx")
    assert tests.loc[tests.variable == "age", "groups"].tolist() == ["A vs B", "A vs C", "B vs C"]
    summary = demographics_by_group(table, "dx")
    assert summary["age_mean"].tolist() == [51.0, 61.0, 71.0]


def test_assemble_group_table_lists_exclusions():
    participants = pd.DataFrame(
        {
            "participant_id": ["sub-01", "sub-02", "sub-03"],
            "dx": ["CN", "ALS", "ALS"],
            "age": [50.0, 60.0, 70.0],
        },
        index=pd.Index(["01", "02", "03"], name="subject"),
    )
    t1w = (Path("x_T1w.nii.gz"),)
    inventory = [
        SessionInputs("01", "1", t1w=t1w),
        SessionInputs("01", "2", t1w=t1w, flair=t1w),
        SessionInputs("02", "1", t1w=t1w),
        SessionInputs("04", "1", t1w=t1w),
    ]
    table, exclusions = assemble_group_table(
        participants, inventory, processed={"sub-01_ses-1", "sub-01_ses-2", "sub-04_ses-1"}
    )
    assert table["participant_id"].tolist() == ["sub-01", "sub-04"]
    first = table.iloc[0]
    assert (first.n_sessions, first.n_processed, first.has_flair, first.dx) == (2, 2, True, "CN")
    assert np.isnan(table.iloc[1]["age"])
    assert dict(zip(exclusions.subject, exclusions.reason, strict=True)) == {
        "sub-03": "in participants.tsv but no images selected",
        "sub-02": "no participant-level outputs (run participant first)",
    }


def test_characteristics_count_sex_and_age_bands_per_group():
    # Turrisi 2024 Table 1: <60, 60-75 (both ends included), >75, with percentages
    table = pd.DataFrame(
        {
            "dx": ["ALS"] * 5 + ["mimic"] * 3,
            "age": [59.9, 60.0, 75.0, 75.1, np.nan, 30.0, 80.0, 90.0],
            "sex": ["F", "M", "M", "M", "F", "F", None, "M"],
        }
    )
    out = characteristics_by_group(table, "dx").set_index(["group", "variable", "level"])
    assert out.loc[("ALS", "age", "<60"), "n"] == 1
    assert out.loc[("ALS", "age", "60-75"), "n"] == 2
    assert out.loc[("ALS", "age", ">75"), "n"] == 1
    assert out.loc[("ALS", "age", ">75"), "percent"] == 25.0  # of the 4 with an age
    assert out.loc[("mimic", "sex", "F"), "percent"] == 50.0  # of the 2 with a sex
    sums = out.groupby(["group", "variable"])["percent"].sum()
    assert np.allclose(sums, 100.0)

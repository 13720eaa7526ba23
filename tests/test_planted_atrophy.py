"""Planted atrophy is measured and a null cohort shows no group difference (issue 4).

Two synthetic cohorts from one seed, with and without a planted 15 % medulla shrinkage in the
ALS group, run through the CLI; the ratio of the two measurements of a subject is the measured
atrophy (kept apart from the FreeSurfer check so that the two long tests run side by side).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from bids_app.synthetic import CohortSpec, make_cohort
from tests.conftest import read_volumes

pytestmark = [pytest.mark.slow, pytest.mark.long]

#: The issue's target: a planted 15 % medulla shrinkage reads as a ratio of 0.85 ± 0.05, and
#: within 0.05 of the ratio realised on the subject's true labels. Measured at 2 mm with
#: --sloppy: 0.870 and 0.868 for realised 0.877 and 0.853 (0.93-0.94 before the local SyN of
#: the brain stem, whose 4 mm global SyN missed the cerebellar cortex that the shrinkage pulls
#: into the medulla's place).
PLANTED, TOLERANCE = 0.85, 0.05
#: Two cohorts from the same seed: with a planted 15 % medulla shrinkage in the ALS group, and
#: without any planted effect. Control subjects are byte-identical in both, ALS subjects differ
#: only by the planted atrophy, so the ratio of our two measurements is the measured atrophy.
COHORT = {
    "n_subjects": 4,
    "n_sites": 1,
    "seed": 5,
    "voxel_size": 2.0,
    "groups": {"CN": {}, "ALS": {"medulla": 1.0}},
    "longitudinal_fraction": 0.0,
    "flair_fraction": 0.0,
    "severity_sd": 0.0,
}


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    root = tmp_path_factory.mktemp("planted")
    results = {}
    for name, effect in (("atrophy", 0.15), ("null", 0.0)):
        bids = make_cohort(root / name, CohortSpec(effect_size=effect, **COHORT), n_jobs=2)
        out = root / f"{name}_derivatives"
        args = ["-w", str(root / f"{name}_work"), "--sloppy", "--nprocs", "2"]
        args += ["--omp-nthreads", "1", "--features", "volumes", "--skip-bids-validation"]
        # the template brain extraction: these cohorts test the volumes, and HD-BET (the
        # default, tested end to end) would add about 35 CPU-seconds to each of 16 sessions
        args += ["--skull-strip", "template"]
        # a fresh process: ITK fixes its thread count at its first call in a process, and only
        # one thread makes the two runs of the identical controls identical
        command = [sys.executable, "-m", "bids_app", str(bids), str(out), "participant", *args]
        result = subprocess.run(command, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]
        truth = pd.read_csv(bids / "sourcedata" / "ground_truth" / "truth.tsv", sep="\t")
        medulla = truth[truth.region == "medulla"].set_index("participant_id")
        results[name] = (read_volumes(out), medulla)
    return results


def test_planted_medulla_shrinkage_is_measured(planted) -> None:
    atrophy, truth = planted["atrophy"]
    null, _ = planted["null"]
    ratio = atrophy["medulla"] / null["medulla"]
    patients = truth.index[truth.diagnosis == "ALS"]
    controls = truth.index[truth.diagnosis == "CN"]
    print(pd.DataFrame({"measured": ratio, "planted": truth.realised_ratio}).round(3))
    for subject in patients:
        assert abs(ratio[subject] - PLANTED) <= TOLERANCE, (subject, ratio[subject])
        assert abs(ratio[subject] - truth.realised_ratio[subject]) <= TOLERANCE, subject
    # one ITK thread: the identical controls measure identical volumes (a voxel may differ)
    assert np.allclose(ratio[controls], 1.0, atol=0.01)
    # the neighbours of the medulla are not affected
    assert np.allclose(atrophy.loc[patients, "pons"] / null.loc[patients, "pons"], 1, atol=0.05)


def test_null_cohort_shows_no_group_difference(planted) -> None:
    """Without a planted effect the groups do not differ; with one, the same groups do."""
    null, truth = planted["null"]
    relative = null["medulla"] / truth["volume_without_ml"]  # measurement error per subject
    by_group = relative.groupby(truth["diagnosis"]).mean()
    print("measured / true medulla volume:", relative.round(3).to_dict())
    assert abs(by_group["ALS"] - by_group["CN"]) < 0.05
    atrophy, _ = planted["atrophy"]
    paired = (atrophy["medulla"] / null["medulla"]).groupby(truth["diagnosis"]).mean()
    assert paired["ALS"] - paired["CN"] < -0.03

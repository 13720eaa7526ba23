"""Clustering on the user's own metrics (--cluster-table) and the clinical cluster profiles.

Milella 2023: patients clustered on imaging metrics, then described per cluster (median and IQR,
counts) and compared with the Mann-Whitney U and χ² or Fisher tests ("Statistical Analysis"),
with the progression rate ΔFRS = (48 - ALSFRS-R) / months from onset ("Population").
"""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from bids_app.cli.errors import ExitCode
from bids_app.cli.main import main
from bids_app.derivatives.writer import DerivativesWriter
from bids_app.group.clustering import clustering_metrics, profile_variables, run_clustering
from bids_app.inputs.cluster_table import read_cluster_table
from bids_app.statistics.demographics import compare_groups

N_PER_CLUSTER = 30
N_CONTROLS = 6


def _clinical(seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """Patients in two planted clusters (fast and slow ΔFRS) and a few controls."""
    rng = np.random.default_rng(seed)
    n = 2 * N_PER_CLUSTER
    truth = pd.Series(np.repeat([1, 2], N_PER_CLUSTER))
    duration = rng.uniform(8, 24, n)
    rate = np.where(truth == 1, 1.2, 0.4) * rng.lognormal(0, 0.2, n)  # ΔFRS, points / month
    patients = pd.DataFrame(
        {
            "participant_id": [f"sub-{i:03d}" for i in range(n)],
            "diagnosis": "ALS",
            "age": rng.normal(60, 8, n).round(1),
            "sex": rng.choice(["M", "F"], n),
            "alsfrs_r": (48 - rate * duration).round(3),
            "disease_duration_months": duration.round(3),
            "onset": rng.choice(["spinal", "bulbar"], n),
            "el_escorial": rng.choice(["definite", "probable", "possible"], n),
        }
    )
    controls = pd.DataFrame(
        {
            "participant_id": [f"sub-{i:03d}" for i in range(n, n + N_CONTROLS)],
            "diagnosis": "CN",
            "age": rng.normal(60, 8, N_CONTROLS).round(1),
            "sex": rng.choice(["M", "F"], N_CONTROLS),
        }
    )
    return pd.concat([patients, controls], ignore_index=True), truth


def _write_dataset(root, participants: pd.DataFrame):
    """A BIDS dataset of tiny T1w images whose participant level is complete (no features)."""
    bids, out = root / "bids", root / "out"
    bids.mkdir(parents=True)
    (bids / "dataset_description.json").write_text(
        json.dumps({"Name": "cluster-table", "BIDSVersion": "1.9.0"})
    )
    participants.to_csv(bids / "participants.tsv", sep="\t", index=False, na_rep="n/a")
    writer = DerivativesWriter(output_dir=out, bids_dir=bids, settings_hash="x")
    writer.initialise()
    image = nib.Nifti1Image(np.zeros((2, 2, 2), np.uint8), np.eye(4))
    for sub in participants["participant_id"]:
        (bids / sub / "anat").mkdir(parents=True)
        nib.save(image, bids / sub / "anat" / f"{sub}_T1w.nii.gz")
        entities = {"sub": sub.removeprefix("sub-")}
        preproc = writer.path("t1w_preproc", entities)
        preproc.parent.mkdir(parents=True, exist_ok=True)
        nib.save(image, preproc)
        writer.write_json({}, "qc_metrics", entities, sources=[], params={})  # complete
    return bids, out


def _metrics(n: int, planted: pd.Series | None, seed: int) -> pd.DataFrame:
    """Two correlated metrics: one Gaussian, or the planted clusters 5 SDs apart."""
    rng = np.random.default_rng(seed)
    values = rng.multivariate_normal([2.5, 4.0], [[0.01, 0.005], [0.005, 0.04]], n)
    if planted is not None:
        values[planted.to_numpy() == 1] -= [0.5, 1.0]
    return pd.DataFrame(values, columns=["precentral_fs", "medulla_fs"])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster_table")
    participants, truth = _clinical()
    bids, out = _write_dataset(root, participants)
    args = [str(bids), str(out), "group", "--skip-bids-validation", "-w", str(root / "w")]
    return root, participants, truth, args


def _user_table(path, participants, truth, planted: bool, seed: int = 0):
    """Write the patients' metrics, half the identifiers without 'sub-', plus a text column."""
    patients = participants[participants["diagnosis"] == "ALS"].reset_index(drop=True)
    table = _metrics(len(patients), truth if planted else None, seed)
    ids = patients["participant_id"].str.removeprefix("sub-")
    table.insert(0, "participant_id", np.where(np.arange(len(ids)) % 2, "sub-" + ids, ids))
    table["scanner"] = "1.5T"
    table.to_csv(path, sep="\t", index=False)
    return path


def _read(out, name):
    return pd.read_csv(out / "group" / f"{name}.tsv", sep="\t")


def test_user_table_finds_planted_clusters_and_their_progression_rate(dataset):
    root, participants, truth, args = dataset
    # k = 2 for 9 of the seeds 0-9 of this table (seed 0 adds a cluster for an outlier)
    table = _user_table(root / "planted.tsv", participants, truth, planted=True, seed=1)
    out = root / "out"
    assert main([*args, "--cluster-table", str(table)]) == 0
    clusters = _read(out, "clusters").set_index("participant_id")
    # every numeric column, not the text one
    assert {"precentral_fs", "medulla_fs"} <= set(clusters) and "scanner" not in clusters
    assert len(clusters) == 2 * N_PER_CLUSTER  # the controls are not in the table
    planted = truth.set_axis(participants["participant_id"][: len(truth)])
    assert clusters["cluster"].nunique() == 2
    assert adjusted_rand_score(planted.reindex(clusters.index), clusters["cluster"]) >= 0.8
    profiles = _read(out, "cluster_profiles")
    tests = profiles[profiles["row_type"] == "test"].set_index(["variable", "groups"])
    assert tests.loc[("progression_rate", "1 vs 2"), "test"] == "Mann-Whitney U"
    assert tests.loc[("progression_rate", "1 vs 2"), "p_value"] < 0.01
    assert {"onset", "el_escorial", "sex", "age", "alsfrs_r"} <= set(profiles["variable"])
    report = (out / "group" / "report.html").read_text()
    assert "progression_rate" in report and "(48 − ALSFRS-R) / months from onset" in report


def test_null_user_table_gives_one_cluster(dataset):
    root, participants, truth, args = dataset
    table = _user_table(root / "null.tsv", participants, truth, planted=False, seed=3)
    features = ["--cluster-features", "precentral_fs", "medulla_fs"]
    assert main([*args, "--cluster-table", str(table), *features]) == 0
    assert _read(root / "out", "clusters")["cluster"].nunique() == 1
    bic = _read(root / "out", "clustering_bic")
    assert bic.loc[bic["bic"].idxmin(), "k"] == 1


def test_profile_finds_planted_progression_rate_and_nothing_in_shuffled_clusters():
    participants, truth = _clinical(seed=1)
    patients = participants[participants["diagnosis"] == "ALS"]
    variables, continuous, categorical = profile_variables(patients)
    # ΔFRS computed from the ALSFRS-R and the disease duration (Milella 2023, "Population")
    expected = (48 - patients["alsfrs_r"]) / patients["disease_duration_months"]
    assert np.allclose(variables["progression_rate"], expected)
    assert "progression_rate" in continuous and "el_escorial" in categorical

    def p_value(labels):
        table = variables.assign(cluster=np.asarray(labels))
        out = compare_groups(table, "cluster", ["progression_rate"], [])
        return out.loc[out["row_type"] == "test", "p_value"].item()

    assert p_value(truth) < 0.01
    rng = np.random.default_rng(0)
    shuffled = [p_value(rng.permutation(truth)) for _ in range(200)]
    # under the null the p-values are uniform: about 5 % below 0.05, none far below
    assert np.mean(np.array(shuffled) < 0.05) <= 0.1
    assert np.median(shuffled) > 0.3


def test_no_clinical_column_gives_no_profile_table(tmp_path):
    rng = np.random.default_rng(2)
    ids = pd.Index([f"sub-{i:02d}" for i in range(40)], name="participant_id")
    user = pd.DataFrame(rng.normal(size=(40, 2)), index=ids, columns=["a", "b"])
    participants = pd.DataFrame({"participant_id": ids, "diagnosis": "ALS"})
    writer = DerivativesWriter(tmp_path / "out", tmp_path, "h")
    writer.initialise()
    result = run_clustering(
        {}, participants, "diagnosis", "CN", (), "gmm", ("t", "e"), 0, writer, user
    )
    assert result.profiles is None and len(result.labels) == 40
    assert not writer.group_file("cluster_profiles").exists()
    assert writer.group_file("clusters").exists()


BAD_TABLES = {
    "missing": (None, ExitCode.NO_INPUT, "does not exist"),
    "no_id": ("subject\tm\n000\t1\n", ExitCode.DATA, "column 'participant_id' is missing"),
    "duplicate": (
        "participant_id\tm\nsub-000\t1\n000\t2\n",
        ExitCode.DATA,
        "appear more than once",
    ),
    "not_numeric": (
        "participant_id\tm\nsub-000\t1\nsub-001\thigh\n",
        ExitCode.DATA,
        "column 'm' must be numeric",
    ),
    "no_common_id": ("participant_id\tm\nsub-900\t1\n", ExitCode.DATA, "no participant_id in"),
    "recipe_columns": ("participant_id\tm\nsub-000\t1\n", ExitCode.DATA, "needs the columns"),
}


@pytest.mark.parametrize("case", BAD_TABLES)
def test_bad_cluster_table_exits_with_a_message_naming_the_file(dataset, case, capsys):
    root, _, _, args = dataset
    text, code, message = BAD_TABLES[case]
    path = root / f"bad_{case}.tsv"
    if text is not None:
        path.write_text(text)
    features = {"not_numeric": ["m"], "recipe_columns": ["milella2023"]}.get(case, [])
    extra = ["--cluster-features", *features] if features else []
    assert main([*args, "--cluster-table", str(path), *extra]) == code
    error = capsys.readouterr().err
    assert str(path) in error and message in error


def test_sessions_are_joined_and_the_first_kept(tmp_path):
    path = tmp_path / "metrics.tsv"
    path.write_text(
        "participant_id\tsession_id\tm\tnote\n"
        "01\t2\t2.0\tx\nsub-01\tses-1\t1.0\ty\n02\t1\t5.0\tz\nsub-03\t1\t7.0\tw\n"
    )
    sessions = pd.DataFrame(
        {
            "participant_id": ["sub-01", "sub-01", "sub-02"],
            "session_id": ["ses-1", "ses-2", "ses-2"],
        }
    )
    # sub-02's ses-1 and sub-03 are not in the dataset: left out; sub-01 keeps ses-1
    table = read_cluster_table(path, sessions)
    assert table["m"].to_dict() == {"sub-01": 1.0}
    assert table["note"].tolist() == ["y"]  # text stays text


def test_recipe_reads_its_metrics_and_the_tiv_from_the_user_table():
    rng = np.random.default_rng(4)
    ids = pd.Index([f"sub-{i:02d}" for i in range(12)], name="participant_id")
    tiv = pd.Series(rng.normal(1500, 100, 12), index=ids)
    user = pd.DataFrame(
        {"precentral": 2.5, "paracentral": 2.3, "medulla": 0.003 * tiv, "tiv": tiv}, index=ids
    )
    metrics, volumes, used = clustering_metrics({}, ["milella2023"], user)
    assert list(metrics) == ["precentral", "paracentral", "medulla"] and volumes == ["medulla"]
    assert used.equals(tiv)

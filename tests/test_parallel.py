"""The group level's parallel loops: the same results whatever --nprocs, and the Dask option."""

from __future__ import annotations

import importlib.util

import pandas as pd
import pytest
import torch

from bids_app.cli.errors import ExitCode
from bids_app.cli.main import main
from bids_app.synthetic.features import make_feature_cohort
from tests.conftest import cross_validate_crops, write_feature_dataset


@pytest.mark.slow
def test_classifier_grid_is_the_same_with_more_processes(tmp_path):
    cohort = make_feature_cohort(n_subjects=30, n_features=6, effect_size=2.0, seed=4)
    bids, out = write_feature_dataset(tmp_path, cohort)
    args = [str(bids), str(out), "group", "--skip-bids-validation", "-w", str(tmp_path / "work")]
    args += ["--classifiers", "logistic_regression", "knn", "svm_rbf", "--seed", "5"]
    args += ["--target", "diagnosis", "--positive-label", "ALS", "--omp-nthreads", "1"]
    tables = {}
    for nprocs in ("1", "2"):
        assert main([*args, "--nprocs", nprocs, "--force"]) == 0
        tables[nprocs] = {
            name: pd.read_csv(out / "group" / f"{name}.tsv", sep="\t")
            for name in ("classification_folds", "classification_predictions")
        }
    for name, table in tables["1"].items():
        pd.testing.assert_frame_equal(table, tables["2"][name])
    assert set(tables["1"]["classification_folds"]["classifier"]) == {
        "logistic_regression",
        "knn",
        "svm_rbf",
    }


@pytest.mark.slow
def test_deep_folds_are_the_same_in_parallel(one_torch_thread):
    one, two = (cross_validate_crops(9, 0.5, 3, 1, n_jobs=n)[4] for n in (1, 2))
    pd.testing.assert_frame_equal(one.folds, two.folds)
    pd.testing.assert_frame_equal(one.predictions, two.predictions)
    assert (one.test_fold == two.test_fold).all() and len(two.states) == 3
    for mine, theirs in zip(one.states, two.states, strict=True):
        assert all(torch.equal(mine[key], theirs[key]) for key in mine)


@pytest.mark.skipif(
    importlib.util.find_spec("distributed") is not None, reason="dask.distributed is installed"
)
def test_dask_scheduler_without_dask_is_a_usage_error(tmp_path, capsys):
    args = [str(tmp_path / "bids"), str(tmp_path / "out"), "group", "-w", str(tmp_path / "w")]
    assert main([*args, "--dask-scheduler", "tcp://127.0.0.1:8786"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "--dask-scheduler needs dask.distributed" in err and "pip install" in err
    assert not (tmp_path / "out").exists()

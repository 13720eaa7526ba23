"""``--profile``: each session's step times, written under logs/ and summarised in its report."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from itertools import count
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from bids_app.participant.profile import PROFILE_COLUMNS, StepProfiler, slowest_steps
from tests.conftest import write_t1w

OPTIONS = ["--sloppy", "--skull-strip", "template", "--features", "volumes"]
OPTIONS += ["--skip-bids-validation", "--omp-nthreads", "1", "-q"]


def test_profiler_groups_steps_by_sub_workflow():
    ticks = count()
    profiler = StepProfiler(clock=lambda: float(next(ticks)))
    events = [
        ("s_wf.anat_wf.conform", "start"),
        ("s_wf.anat_wf.conform", "end"),
        ("s_wf.reg_wf.register", "start"),
        ("s_wf.reg_wf.register", "end"),
        ("s_wf.anat_wf.n4", "start"),
        ("s_wf.anat_wf.n4", "exception"),
    ]
    for name, event in events:
        profiler(SimpleNamespace(fullname=name), event)
    table = profiler.table()
    assert list(table.columns) == list(PROFILE_COLUMNS)
    assert table[["workflow", "step"]].values.tolist() == [
        ["anat_wf", "conform"],
        ["anat_wf", "n4"],
        ["reg_wf", "register"],
    ]
    assert table["start_s"].tolist() == [0.0, 4.0, 2.0]
    assert table["wall_s"].tolist() == [1.0, 1.0, 1.0]
    assert (table["cpu_s"] >= 0).all() and (table["peak_rss_mb"] > 0).all()
    # steps in other processes (MultiProc): only their wall time
    other = StepProfiler(in_process=False, clock=lambda: float(next(ticks)))
    other(SimpleNamespace(fullname="s_wf.reg_wf.register"), "start")
    other(SimpleNamespace(fullname="s_wf.reg_wf.register"), "end")
    assert other.table()[["cpu_s", "peak_rss_mb"]].isna().all(axis=None)
    assert slowest_steps(table, 1)["step"].tolist() == ["anat_wf.conform"]


@pytest.mark.slow
def test_profile_of_a_participant_run(tmp_path):
    bids = tmp_path / "bids"
    bids.mkdir()
    description = {"Name": "profile", "BIDSVersion": "1.9.0", "DatasetType": "raw"}
    (bids / "dataset_description.json").write_text(json.dumps(description))
    write_t1w(bids / "sub-01" / "anat" / "sub-01_T1w.nii.gz")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "bids_app", str(bids), str(out), "participant"]
    start = time.perf_counter()
    done = subprocess.run(
        [*command, "-w", str(tmp_path / "work"), *OPTIONS, "--profile"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    wall = time.perf_counter() - start
    assert done.returncode == 0, done.stderr
    (path,) = (out / "logs").glob("profile_*_sub-01.tsv")
    table = pd.read_csv(path, sep="\t")
    assert json.loads(path.with_suffix(".json").read_text())["wall_s"]["Units"] == "s"
    steps = {(row.workflow, row.step): row for row in table.itertuples()}
    for key in (("registration_wf", "register"), ("segmentation_wf", "segment")):
        assert steps[key].wall_s > 0 and steps[key].cpu_s > 0 and steps[key].peak_rss_mb > 0
    # grouped by sub-workflow: each one's rows are contiguous
    assert table["workflow"].ne(table["workflow"].shift()).sum() == table["workflow"].nunique()
    assert 0 < table["wall_s"].sum() <= wall
    assert np.isfinite(table[["wall_s", "cpu_s", "peak_rss_mb"]].to_numpy()).all()
    report = (out / "sub-01.html").read_text(encoding="utf-8")
    (slowest,) = slowest_steps(table, 1)["step"]
    assert "<h2>Processing time</h2>" in report and slowest in report

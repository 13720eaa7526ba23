"""The helpers of the ANTs side-by-side benchmark (the benchmark itself runs for many minutes)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from benchmarks import bench_vs_ants


def test_skips_with_a_reason_without_the_ants_chroot(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench_vs_ants, "ANTS_CHROOT", tmp_path / "absent")
    monkeypatch.setattr(bench_vs_ants, "SCAN", tmp_path / "ch2.nii.gz")
    bench_vs_ants.SCAN.touch()
    assert bench_vs_ants.main([]) == 0
    assert "skipped: no ANTs baseline" in capsys.readouterr().out
    assert not list(tmp_path.glob("vs_ants*"))


def test_ants_steps_read_what_the_earlier_steps_write():
    steps = dict(bench_vs_ants.ants_steps("/w"))
    names = list(steps)
    assert names[0] == "n4" and names[-1] == "kellykapowski"
    words = " ".join(word for command in steps.values() for word in command)
    for written in ("/w/n4.nii.gz", "/w/tpl_1Warp.nii.gz", "/w/wprior%d.nii.gz", "/w/post2.nii.gz"):
        assert written in words
    assert "PriorProbabilityImages[3,/w/wprior%d.nii.gz,0.25]" in steps["atropos"]


def test_regional_thickness_and_dice():
    labels = np.array([1001, 1001, 2035, 2035, 0])
    thickness = np.array([2.0, 0.0, 3.0, 5.0, 9.0])
    regional = bench_vs_ants.regional_thickness(thickness, labels)
    assert len(regional) == 68
    assert regional[0] == 2.0 and regional[-1] == 4.0 and np.isnan(regional[1:-1]).all()
    assert bench_vs_ants.dice(labels > 0, labels > 1500) == 2 * 2 / (4 + 2)


def test_results_of_each_resolution_are_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_vs_ants, "RESULTS", tmp_path)
    for resolution, value in ((2, 0.5), (1, 0.9), (2, 0.7)):
        table = pd.DataFrame({"resolution_mm": [resolution], "name": ["dice"], "value": [value]})
        bench_vs_ants.save_results(table, {"load": resolution}, resolution)
    saved = pd.read_csv(tmp_path / "vs_ants.tsv", sep="\t")
    assert saved[["resolution_mm", "value"]].values.tolist() == [[1, 0.9], [2, 0.7]]
    runs = json.loads((tmp_path / "vs_ants_machine.json").read_text())["runs"]
    assert runs == {"2mm": {"load": 2}, "1mm": {"load": 1}}

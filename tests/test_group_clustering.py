"""Group-level clustering through the CLI: Milella 2023's recipe on planted subtypes, bad input."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from matplotlib.container import ErrorbarContainer
from sklearn.metrics import adjusted_rand_score

from bids_app.cli.errors import ExitCode
from bids_app.cli.main import main
from bids_app.derivatives.writer import DerivativesWriter
from bids_app.reports.clustering import emm_figure
from bids_app.statistics.ancova import ancova
from bids_app.synthetic.subtypes import make_subtype_cohort


def _write_dataset(root, table):
    """A BIDS dataset of tiny T1w images with participant-level thickness and volume tables."""
    bids, out = root / "bids", root / "out"
    bids.mkdir(parents=True)
    (bids / "dataset_description.json").write_text(
        json.dumps({"Name": "subtypes", "BIDSVersion": "1.9.0"})
    )
    clinical = ["participant_id", "diagnosis", "age", "sex", "survival_months", "event"]
    table[clinical].to_csv(bids / "participants.tsv", sep="\t", index=False, na_rep="n/a")
    writer = DerivativesWriter(output_dir=out, bids_dir=bids, settings_hash="x")
    writer.initialise()
    image = nib.Nifti1Image(np.zeros((2, 2, 2), np.uint8), np.eye(4))
    for row in table.itertuples(index=False):
        sub = row.participant_id
        anat = bids / sub / "anat"
        anat.mkdir(parents=True)
        nib.save(image, anat / f"{sub}_T1w.nii.gz")
        entities = {"sub": sub.removeprefix("sub-")}
        preproc = writer.path("t1w_preproc", entities)
        preproc.parent.mkdir(parents=True, exist_ok=True)
        nib.save(image, preproc)
        writer.write_json({}, "qc_metrics", entities, sources=[], params={})  # complete
        thickness = {"participant_id": sub}
        for region in ("precentral", "paracentral"):
            left, right = getattr(row, f"{region}_left"), getattr(row, f"{region}_right")
            thickness |= {f"{region}_left": left, f"{region}_right": right}
            thickness[region] = (left + right) / 2
        writer.write_table(pd.DataFrame([thickness]), writer.path("thickness", entities))
        volumes = {"participant_id": sub, "tiv": row.tiv, "medulla": row.medulla}
        writer.write_table(pd.DataFrame([volumes]), writer.path("volumes", entities))
    return bids, out


@pytest.fixture(scope="module")
def subtypes(tmp_path_factory):
    root = tmp_path_factory.mktemp("clusters")
    table, truth = make_subtype_cohort(seed=0)
    bids, out = _write_dataset(root, table)
    args = [str(bids), str(out), "group", "--skip-bids-validation", "-w", str(root / "w")]
    return table, truth, args


def test_recipe_002_finds_the_planted_subtypes_and_their_survival(subtypes):
    table, truth, args = subtypes
    assert main([*args, "--cluster-features", "002"]) == 0
    group = args[1] + "/group"
    clusters = pd.read_csv(f"{group}/clusters.tsv", sep="\t").set_index("participant_id")
    bic = pd.read_csv(f"{group}/clustering_bic.tsv", sep="\t")
    assert bic.loc[bic.bic.idxmin(), "k"] == 3
    planted = truth.set_axis(table.participant_id).reindex(clusters.index)
    assert adjusted_rand_score(planted, clusters["cluster"]) >= 0.8
    # the cluster holding most of the 'both' subtype survives shortest, significantly
    both = clusters.loc[planted == "both", "cluster"].mode().iloc[0]
    medians = pd.read_csv(f"{group}/survival_median.tsv", sep="\t").set_index("group")
    assert medians["median"].idxmin() == both
    tests = pd.read_csv(f"{group}/survival_logrank.tsv", sep="\t")
    pairs = tests[tests.groups.str.contains(str(both))]
    assert (pairs["p_value"] < 0.05).any()
    report = open(f"{group}/report.html").read()
    assert "Kaplan-Meier" in report and "Clustering of the patients" in report
    # Milella 2023's Fig. 1: the EMM figure is written and embedded in the report
    emm = plt.imread(f"{group}/figures/clusters_emm.png")
    assert emm.shape[0] > 100 and emm.shape[1] > 300
    assert 'alt="estimated marginal means by cluster" src="data:image/png;base64,' in report


def test_emm_figure_draws_the_emm_with_sd_bars_per_group():
    rng = np.random.default_rng(1)
    group = np.repeat(["controls", "1", "2"], [40, 30, 20])
    table = pd.DataFrame(
        {"cluster": group, "age": rng.normal(60, 8, 90), "sex": rng.choice(["M", "F"], 90)}
    )
    # planted: cluster 1 thinner, cluster 2 spread five times wider than the others
    spread = np.where(group == "2", 0.5, 0.1)
    table["precentral"] = 2.5 - 0.4 * (group == "1") + rng.normal(0, 1, 90) * spread
    table["medulla"] = rng.normal(5, 0.5, 90)
    model = ancova(table, ["precentral", "medulla"], "cluster", ["age", "sex"])
    groups = ["controls", "1", "2"]
    figure = emm_figure(model, groups)
    axes = figure.axes
    assert [axis.get_title() for axis in axes] == ["precentral", "medulla"]
    for axis, (_, row) in zip(axes, model.iterrows(), strict=True):
        bars = [c for c in axis.containers if isinstance(c, ErrorbarContainer)]
        assert len(bars) == len(groups)
        for bar, name in zip(bars, groups, strict=True):
            _, (y,) = bar.lines[0].get_data()
            (segment,) = bar.lines[2][0].get_segments()
            assert y == pytest.approx(row[f"emm_{name}"])
            # the bar is +/- SD of the group (Milella 2023 Fig. 1), not the EMM's standard error
            assert np.ptp(segment[:, 1]) == pytest.approx(2 * row[f"sd_{name}"])
        ticks = [t.get_text() for t in axis.get_xticklabels()]
        assert ticks == [
            f"{g}\nn={row[f'n_{n}']}"
            for g, n in zip(["controls", "cluster 1", "cluster 2"], groups, strict=True)
        ]
    heights = [np.ptp(c.lines[2][0].get_segments()[0][:, 1]) for c in axes[0].containers]
    assert heights[2] > 2 * heights[0] and heights[2] > 2 * heights[1]
    plt.close(figure)


def test_clustering_bad_input_exits_cleanly(subtypes, capsys):
    _, _, args = subtypes
    assert main([*args, "--cluster-features", "nosuch"]) == ExitCode.DATA
    assert "'nosuch' is in no participant-level feature table" in capsys.readouterr().err


def test_one_cluster_still_describes_survival(tmp_path):
    # no planted subtypes: BIC picks one cluster, and the report shows the patients' survival
    # (Kaplan-Meier, median) without comparisons
    table, _ = make_subtype_cohort(n_patients=60, n_controls=20, subtypes=False, seed=1)
    bids, out = _write_dataset(tmp_path, table)
    args = [str(bids), str(out), "group", "--skip-bids-validation", "-w", str(tmp_path / "w")]
    assert main([*args, "--cluster-features", "002", "--seed", "1"]) == 0
    clusters = pd.read_csv(out / "group" / "clusters.tsv", sep="\t")
    assert clusters["cluster"].nunique() == 1
    median = pd.read_csv(out / "group" / "survival_median.tsv", sep="\t")
    assert len(median) == 1
    assert not (out / "group" / "survival_logrank.tsv").exists()
    report = (out / "group" / "report.html").read_text()
    assert "one cluster, nothing to compare" in report

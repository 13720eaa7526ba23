"""Group-level clustering through the CLI: seed 002's recipe on planted subtypes, bad input."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from bids_app.cli.main import main
from bids_app.derivatives.writer import DerivativesWriter
from bids_app.errors import ExitCode
from bids_app.synthetic_subtypes import make_subtype_cohort


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


def test_clustering_bad_input_exits_cleanly(subtypes, capsys):
    _, _, args = subtypes
    assert main([*args, "--cluster-features", "nosuch"]) == ExitCode.DATA
    assert "'nosuch' is in no participant-level feature table" in capsys.readouterr().err

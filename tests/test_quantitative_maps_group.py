"""The group level trains on [T1w, T1map] crops as two channels and reports their normalisation.

A 6 mm crop cohort (``bids_app.synthetic.crops``) gets a second channel: a T1map crop as the
participant level writes it (range-scaled, Lu et al. 2023 §II.A), with higher T1 (a longer
relaxation, as in demyelination) planted in the positive subjects' precentral gyri.
"""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from bids_app.cli.main import main
from bids_app.derivatives.naming import contrast_output
from bids_app.derivatives.writer import DerivativesWriter
from bids_app.synthetic.crops import make_crop_cohort

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

FAST = ["--dl-base-width", "4", "--dl-epochs", "3", "--dl-batch-size", "4", "--no-dl-validation"]


def _write(cohort, root):
    """Write the raw dataset and each subject's T1w and T1map crops (as the participant level)."""
    bids, out = root / "bids", root / "out"
    bids.mkdir(parents=True)
    (bids / "dataset_description.json").write_text('{"Name": "qmaps", "BIDSVersion": "1.9.0"}')
    cohort.participants.to_csv(bids / "participants.tsv", sep="\t", index=False)
    writer = DerivativesWriter(output_dir=out, bids_dir=bids, settings_hash="synthetic")
    writer.initialise()
    placeholder = nib.Nifti1Image(np.zeros((2, 2, 2), np.uint8), np.eye(4))
    brain = cohort.brain_mask > 0
    planted = np.isin(cohort.atlas, cohort.planted) & brain
    rng = np.random.default_rng(0)
    for index, row in enumerate(cohort.participants.itertuples()):
        anat = bids / row.participant_id / "anat"
        anat.mkdir(parents=True)
        nib.save(placeholder, anat / f"{row.participant_id}_T1w.nii.gz")
        nib.save(placeholder, anat / f"{row.participant_id}_T1map.nii.gz")
        entities = {"sub": row.participant_id.removeprefix("sub-")}
        preproc = writer.path("t1w_preproc", entities)
        preproc.parent.mkdir(parents=True, exist_ok=True)
        nib.save(placeholder, preproc)
        writer.write_json({}, "qc_metrics", entities, sources=[], params={})
        t1w = nib.Nifti1Image(cohort.images[index, 0], cohort.affine)
        writer.write_image(t1w, "t1w_cnn", entities, sources=[], params={}, metadata={
            "Normalisation": "minmax"
        })  # fmt: skip
        seconds = np.where(brain, 1.0 + rng.normal(0, 0.05, brain.shape), 0.0)
        if row.diagnosis == "ALS":
            seconds[planted] = 1.8
        scaled = np.clip(seconds / 2.5, 0, 1).astype(np.float32)
        metadata = {"Normalisation": "range 0-2.5 clipped and scaled to [0, 1]"}
        writer.write_image(
            nib.Nifti1Image(scaled, cohort.affine),
            contrast_output("T1map", "cnn"),
            entities,
            sources=[],
            params={},
            metadata={**metadata, "ValueRange": [0.0, 2.5]},
        )
    return bids, out


def test_cnn_takes_t1w_and_t1map_as_two_channels(tmp_path):
    cohort = make_crop_cohort(16, resolution=6, atrophy=0.0, seed=3)
    bids, out = _write(cohort, tmp_path)
    args = [str(bids), str(out), "group", "--skip-bids-validation", "-w", str(tmp_path / "work")]
    args += ["--target", "diagnosis", "--positive-label", "ALS", "--seed", "1"]
    args += ["--classifiers", "logistic_regression", "--smote-k", "0", "--omp-nthreads", "1"]
    args += ["--harmonization", "none", "--cv-folds", "3"]
    args += ["--dl-models", "cnn8", "--dl-contrasts", "T1w", "T1map", *FAST]
    assert main(args) == 0
    group = out / "group"
    card = json.loads((group / "deep_models" / "model_card.json").read_text())
    assert card["networks"]["cnn8"]["contrasts"] == ["T1w", "T1map"]
    predictions = pd.read_csv(group / "deep_cnn8_predictions.tsv", sep="\t")
    assert len(predictions) == 16
    report = (group / "report.html").read_text()
    assert "crops_T1w+T1map" in report
    assert "T1w (minmax); T1map (range 0-2.5 clipped and scaled to [0, 1])" in report

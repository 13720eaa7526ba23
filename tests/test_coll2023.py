"""The protocol of Coll et al. (2023) on synthetic data (issue 16).

- ``--cnn-space affine``: the crops go through the registration's affine stage only (the paper's
  FLIRT, §2.2), so a planted enlargement of the lateral ventricles stays in the crop, where the
  SyN warp of the default crops takes most of it away.
- ``--lrp-target predicted``: the attention maps explain each subject's predicted class (§2.6,
  "the winning class"): the true negatives' maps change, the true positives' do not.
- Accuracy beside balanced accuracy (§3.1-3.2), equal to scikit-learn's on the fold predictions.
- The logistic-regression baseline on the volumes of §2.4 runs beside the networks.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from scipy import ndimage
from sklearn.metrics import accuracy_score

from bids_app.cli.main import parse_config
from bids_app.deep.lrp import explained_classes
from bids_app.derivatives.writer import DerivativesWriter
from bids_app.group.classification import (
    BASELINE_CLASSIFIER,
    BASELINE_SET,
    COLL2023_VOLUMES,
    run_classification,
)
from bids_app.group.deep_learning import crop_space, out_of_fold_relevance
from bids_app.group.workflow import clinical_by_session
from bids_app.inputs.inventory import SessionInputs
from bids_app.models.classifiers import CLASSIFIERS, build_pipeline
from bids_app.models.crossval import nested_cross_validate, outer_splits
from bids_app.models.design import DesignError, GroupDesign, Target, build_design, join_families
from bids_app.participant.options import AnatomicalOptions
from bids_app.participant.workflow import init_participant_wf
from bids_app.synthetic.features import make_feature_cohort
from tests.conftest import cross_validate_crops
from tests.test_participant_workflow import _edges, _executed

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained():
    """A narrow ResNet3D trained out of fold on a planted crop cohort (8 mm)."""
    _, volumes, y, spec, result = cross_validate_crops(18, atrophy=0.8, seed=3, epochs=20)
    return volumes, y, spec, result


def test_accuracy_is_reported_beside_balanced_accuracy(trained):
    # the classifiers: a logistic regression on a planted feature cohort
    cohort = make_feature_cohort(n_subjects=60, n_features=8, effect_size=1.0, seed=1)
    design = _design(cohort.features, cohort)
    spec = CLASSIFIERS["logistic_regression"]
    pipeline = build_pipeline(spec, design.feature_sets["volumes"], 0)
    splits = outer_splits(design.y, design.groups, 3)
    classical = nested_cross_validate(
        design.X("volumes"), design.y, design.groups, spec, pipeline, splits, "volumes"
    )
    # the networks
    deep = trained[3]
    for result in (classical, deep):
        accuracy = result.folds.groupby(["repeat", "fold"])["accuracy"].first()
        for key, rows in result.predictions.groupby(["repeat", "fold"]):
            assert accuracy[key] == pytest.approx(accuracy_score(rows.y_true, rows.y_pred))
        assert {"accuracy", "balanced_accuracy"} <= set(result.folds.columns)
    # balanced accuracy and accuracy differ where the classes are unbalanced in a fold
    assert not np.allclose(classical.folds.accuracy, classical.folds.balanced_accuracy)


def test_lrp_of_the_predicted_class(trained):
    volumes, y, spec, result = trained
    prediction = result.predictions.query("repeat == 0").set_index("row").sort_index()
    y_pred = prediction.y_pred.to_numpy()
    tn, tp = (y == 0) & (y_pred == 0), (y == 1) & (y_pred == 1)
    assert tn.sum() >= 2 and tp.sum() >= 2, (tn.sum(), tp.sum())
    maps = {
        target: out_of_fold_relevance(
            result,
            spec,
            volumes,
            None,
            "alpha1beta0",
            torch.device("cpu"),
            explained_classes(y_pred, target),
        )
        for target in ("predicted", "positive")
    }
    # the true positives are explained by the positive class under both settings
    np.testing.assert_allclose(maps["predicted"][tp], maps["positive"][tp], rtol=1e-6, atol=0)
    # the true negatives by the negative class under "predicted": other maps
    correlations = [
        np.corrcoef(maps["predicted"][i].ravel(), maps["positive"][i].ravel())[0, 1]
        for i in np.flatnonzero(tn)
    ]
    assert np.mean(correlations) < 0.9, correlations
    assert explained_classes(y_pred, "positive").tolist() == [1] * len(y)
    with pytest.raises(ValueError, match="LRP target"):
        explained_classes(y_pred, "negative")


def _design(table: pd.DataFrame, cohort) -> GroupDesign:
    """The design of the ``volumes`` family ``table`` (diagnosis ALS vs CN)."""
    features, families = join_families({"volumes": table})
    participants = cohort.participants.set_index(
        cohort.participants.participant_id.str.removeprefix("sub-")
    )
    clinical = clinical_by_session(features, participants, pd.DataFrame())
    return build_design(features, families, clinical, Target("diagnosis", "ALS"), ["volumes"])


def _config(tmp_path: Path, *args: str):
    return parse_config([str(tmp_path / "bids"), str(tmp_path / "out"), "group", *args])


def test_logistic_regression_baseline_runs_beside_the_networks(tmp_path):
    cohort = make_feature_cohort(n_subjects=45, n_features=10, effect_size=1.0, seed=2)
    names = dict(zip(cohort.features.columns[2:], COLL2023_VOLUMES, strict=False))
    design = _design(cohort.features.rename(columns=names), cohort)
    (tmp_path / "bids").mkdir()
    writer = DerivativesWriter(tmp_path / "out", tmp_path / "bids", "test")
    writer.initialise()
    # --classifiers without the logistic regression: the baseline still runs, on its volumes
    config = _config(tmp_path, "--classifiers", "knn", "--smote-k", "0", "--harmonization", "none")
    run_classification(design, config, writer, ("CN", "ALS"), baseline=True)
    folds = pd.read_csv(writer.group_file("classification_folds"), sep="\t")
    pairs = set(zip(folds.feature_set, folds.classifier, strict=True))
    assert pairs == {("volumes", "knn"), (BASELINE_SET, BASELINE_CLASSIFIER)}
    baseline = folds[folds.feature_set == BASELINE_SET]
    assert len(baseline) == 3 and baseline.auc.mean() > 0.7
    assert baseline[["accuracy", "sensitivity", "specificity"]].notna().all().all()
    # without networks, no baseline
    run_classification(design, config, writer, ("CN", "ALS"))
    folds = pd.read_csv(writer.group_file("classification_folds"), sep="\t")
    assert set(folds.feature_set) == {"volumes"}


def test_affine_cnn_space_wires_the_affine_stage(tmp_path):
    paths = {name: tmp_path / f"{name}.nii.gz" for name in ("t1w", "flair")}
    for path in paths.values():
        path.write_bytes(b"")
    inputs = SessionInputs("01", None, t1w=(paths["t1w"],), flair=(paths["flair"],))
    options = AnatomicalOptions("template", "requested", features=(), cnn_space="affine")
    workflow = init_participant_wf(inputs, options, tmp_path / "work")
    nodes, edges = _executed(workflow), _edges(workflow)
    assert {"affine_t1w", "affine_flair", "affine_mask"} <= set(nodes)
    assert ("register", "affine", "affine_t1w", "affine") in edges
    assert ("n4_brain", "out_file", "affine_t1w", "in_file") in edges
    assert ("flair_coregister", "out_t1w", "affine_flair", "in_file") in edges
    assert ("affine_mask", "out_file", "cnn_flair", "mask_mni") in edges
    assert not any(edge[0] == "to_template" and edge[2].startswith("cnn_") for edge in edges)
    # the default goes through the whole registration, as before
    nonlinear = _edges(
        init_participant_wf(inputs, dataclasses.replace(options, cnn_space="nonlinear"), tmp_path)
    )
    assert ("to_template", "t1w_mni", "cnn_t1w", "in_file") in nonlinear
    assert not any(edge[2].startswith("affine_") for edge in nonlinear)
    # the participant level's settings hash tells the spaces apart; the default's is unchanged
    default = _config(tmp_path)
    assert default.processing_hash() == "bdcffc1f0237"
    assert default.replace(cnn_space="affine").processing_hash() != default.processing_hash()
    # the group level refuses crops of both spaces
    crops = pd.DataFrame({"cnn_space": ["affine", "nonlinear", "affine"]})
    with pytest.raises(DesignError, match="--cnn-space"):
        crop_space(crops)
    assert crop_space(crops.iloc[[0, 2]]) == "affine"


@pytest.mark.slow
def test_affine_crop_keeps_a_planted_ventricle_enlargement(tmp_path):
    """One synthetic subject with and without lateral ventricles 1.5 times larger (2 mm).

    In the crops of the affine stage the ventricles' CSF grows by about the planted fraction;
    in those of the whole registration SyN pulls the ventricles towards the template's, and the
    difference shrinks (measured: 1.49 and 1.19 for a realised 1.49).
    """
    from bids_app.preprocessing.cnn_input import cnn_ready, to_crop_grid
    from bids_app.preprocessing.conform import conform, load_image
    from bids_app.preprocessing.registration import (
        REGISTRATION_PRESETS,
        apply_transform,
        register_to_template,
    )
    from bids_app.preprocessing.templates import load_template
    from bids_app.runtime import ants_seed
    from bids_app.synthetic import CohortSpec, make_cohort
    from bids_app.synthetic.anatomy import load_anatomy

    spec = {
        "n_subjects": 2,
        "n_sites": 1,
        "seed": 5,
        "voxel_size": 2.0,
        "groups": {"CN": {}, "MS": {"lateral_ventricles": 1.0}},
        "age_range": (40.0, 40.0),
        "longitudinal_fraction": 0.0,
        "flair_fraction": 0.0,
        "severity_sd": 0.0,
    }
    template = load_template(2)
    settings = REGISTRATION_PRESETS["sloppy"]
    crops, realised = {}, None
    for name, effect in (("planted", 0.5), ("null", 0.0)):
        bids = make_cohort(tmp_path / name, CohortSpec(effect_size=effect, **spec))
        image, _ = conform(load_image(next(bids.rglob("sub-002_*T1w.nii.gz"))))
        with ants_seed(1):
            result = register_to_template(image, template, tmp_path / f"xfm_{name}", settings)
        for space, transform in (("nonlinear", result.forward), ("affine", result.affine)):
            in_mni = apply_transform(image, template.t1w, [transform], "bSpline")
            crop = cnn_ready(in_mni, template.brain_mask, template.brain_mask)
            crops[name, space] = np.asarray(crop.dataobj)
        if effect:
            truth = pd.read_csv(bids / "sourcedata" / "ground_truth" / "truth.tsv", sep="\t")
            rows = truth[(truth.region == "lateral_ventricles") & (truth.diagnosis == "MS")]
            realised = float(rows.realised_ratio.iloc[0])
    assert realised > 1.4
    # the two crops of a subject differ
    assert np.abs(crops["planted", "affine"] - crops["planted", "nonlinear"]).mean() > 0.01
    # the ventricles' CSF (dark in the min-max normalised T1w) around the template's ventricles
    anatomy = load_anatomy("mni")
    ventricles = nib.Nifti1Image(np.isin(anatomy.labels, (4, 43)).astype(np.uint8), anatomy.affine)
    grid = nib.Nifti1Image(crops["null", "affine"], crop.affine)
    region = ndimage.binary_dilation(
        np.asarray(to_crop_grid(ventricles, grid).dataobj) > 0, iterations=2
    )
    ratio = {
        space: ((crops["planted", space] < 0.3) & region).sum()
        / ((crops["null", space] < 0.3) & region).sum()
        for space in ("affine", "nonlinear")
    }
    assert abs(ratio["affine"] - realised) < 0.15, ratio
    assert ratio["affine"] - ratio["nonlinear"] > 0.15, ratio

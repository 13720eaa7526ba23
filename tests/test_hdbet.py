"""HD-BET brain extraction through the real HD-BET/nnU-Net code, on a tiny random-weight model.

The model folder is written here: a minimal nnU-Net ``plans.json`` (a 3-stage PlainConvUNet with
4-16 features), a ``dataset.json`` (background/brain) and ``fold_all/checkpoint_final.pth`` holding
randomly initialised weights of exactly the network nnU-Net builds from those plans.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

pytest.importorskip("HD_BET")
torch = pytest.importorskip("torch")
pytest.importorskip("nnunetv2")

from bids_app.errors import NoInputError, UsageError  # noqa: E402
from bids_app.pretrained.hdbet import (  # noqa: E402
    HDBET_MODEL_FILES,
    default_hdbet_weights_dir,
    find_hdbet_weights,
    hdbet_brain_mask,
    make_hdbet_predictor,
    predict_brain_mask,
)

SPACING = 3.0
PATCH = [32, 32, 32]


def _plans(reader_writer: str) -> dict:
    resampling = {"order_z": 0, "force_separate_z": None}
    return {
        "dataset_name": "Dataset999_TinyBET",
        "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": [SPACING] * 3,
        "original_median_shape_after_transp": PATCH,
        "image_reader_writer": reader_writer,
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {
            "0": {
                "max": 1000.0,
                "mean": 400.0,
                "median": 400.0,
                "min": 0.0,
                "percentile_00_5": 10.0,
                "percentile_99_5": 900.0,
                "std": 150.0,
            }
        },
        "configurations": {
            "3d_fullres": {
                "data_identifier": "nnUNetPlans_3d_fullres",
                "preprocessor_name": "DefaultPreprocessor",
                "batch_size": 2,
                "patch_size": PATCH,
                "median_image_size_in_voxels": PATCH,
                "spacing": [SPACING] * 3,
                "normalization_schemes": ["ZScoreNormalization"],
                "use_mask_for_norm": [False],
                "resampling_fn_data": "resample_data_or_seg_to_shape",
                "resampling_fn_seg": "resample_data_or_seg_to_shape",
                "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
                "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, **resampling},
                "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, **resampling},
                "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, **resampling},
                "architecture": {
                    "network_class_name": "dynamic_network_architectures.architectures.unet."
                    "PlainConvUNet",
                    "arch_kwargs": {
                        "n_stages": 3,
                        "features_per_stage": [4, 8, 16],
                        "conv_op": "torch.nn.modules.conv.Conv3d",
                        "kernel_sizes": [[3, 3, 3]] * 3,
                        "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]],
                        "n_conv_per_stage": [1, 1, 1],
                        "n_conv_per_stage_decoder": [1, 1],
                        "conv_bias": True,
                        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
                        "norm_op_kwargs": {"eps": 1e-05, "affine": True},
                        "dropout_op": None,
                        "dropout_op_kwargs": None,
                        "nonlin": "torch.nn.LeakyReLU",
                        "nonlin_kwargs": {"inplace": True},
                    },
                    "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
                },
                "batch_dice": False,
            }
        },
    }


def write_tiny_hdbet_model(folder: Path, reader_writer: str = "SimpleITKIO") -> Path:
    """Write a complete, tiny nnU-Net model folder laid out like HD-BET's release."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans = _plans(reader_writer)
    dataset = {
        "channel_names": {"0": "T1"},
        "labels": {"background": 0, "brain": 1},
        "numTraining": 1,
        "file_ending": ".nii.gz",
    }
    manager = PlansManager(plans)
    torch.manual_seed(0)
    network = nnUNetTrainer.build_network_architecture(
        manager, manager.get_configuration("3d_fullres"), 1, 2, enable_deep_supervision=False
    )
    (folder / "fold_all").mkdir(parents=True)
    (folder / "plans.json").write_text(json.dumps(plans, indent=1))
    (folder / "dataset.json").write_text(json.dumps(dataset, indent=1))
    checkpoint = {
        "network_weights": network.state_dict(),
        "trainer_name": "nnUNetTrainer",
        "init_args": {
            "plans": plans,
            "configuration": "3d_fullres",
            "fold": "all",
            "dataset_json": dataset,
            "device": "cpu",
        },
        "inference_allowed_mirroring_axes": (0, 1, 2),
        "current_epoch": 1,
    }
    torch.save(checkpoint, folder / "fold_all" / "checkpoint_final.pth")
    return folder


def _head_image(axcodes: str = "RAS", shape=(32, 32, 32)) -> nib.Nifti1Image:
    """An off-centre bright ellipsoid ('head') at 3 mm, stored with the given orientation."""
    grid = np.indices(shape).astype(float)
    centre = np.array([14.0, 17.0, 15.0])
    radii = np.array([11.0, 13.0, 10.0])
    radius = np.sqrt(sum(((grid[i] - centre[i]) / radii[i]) ** 2 for i in range(3)))
    rng = np.random.default_rng(0)
    data = np.where(radius < 1, 300 + 500 * (radius < 0.8), 0) + rng.normal(0, 5, shape)
    ras_affine = np.diag([SPACING, SPACING, SPACING, 1.0])
    ras_affine[:3, 3] = -np.array(shape) * SPACING / 2
    transform = nib.orientations.ornt_transform(
        nib.orientations.axcodes2ornt("RAS"), nib.orientations.axcodes2ornt(axcodes)
    )
    stored = nib.orientations.apply_orientation(data, transform).astype(np.float32)
    affine = ras_affine @ nib.orientations.inv_ornt_aff(transform, shape)
    return nib.Nifti1Image(stored, affine)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_hdbet_model(tmp_path_factory.mktemp("hdbet") / "release_tiny")


def test_find_weights_explicit_dir(tiny_model):
    assert find_hdbet_weights(tiny_model) == tiny_model


def test_find_weights_default_location_follows_hd_bet(monkeypatch, tiny_model):
    import HD_BET.paths

    assert default_hdbet_weights_dir() == Path(HD_BET.paths.folder_with_parameter_files)
    monkeypatch.setattr(HD_BET.paths, "folder_with_parameter_files", str(tiny_model))
    assert find_hdbet_weights() == tiny_model
    monkeypatch.setattr(HD_BET.paths, "folder_with_parameter_files", str(tiny_model / "nope"))
    assert find_hdbet_weights() is None


@pytest.mark.parametrize("removed", HDBET_MODEL_FILES)
def test_incomplete_weights_dir_is_a_clear_error(tmp_path, tiny_model, removed):
    incomplete = tmp_path / "weights"
    for name in HDBET_MODEL_FILES:
        if name != removed:
            (incomplete / name).parent.mkdir(parents=True, exist_ok=True)
            (incomplete / name).write_bytes((tiny_model / name).read_bytes())
    with pytest.raises(
        NoInputError,
        match=rf"{re.escape(str(incomplete))} lacks {re.escape(removed)}.*--hdbet-weights",
    ):
        find_hdbet_weights(incomplete)


def test_missing_weights_dir_is_a_clear_error(tmp_path):
    with pytest.raises(NoInputError, match=r"does not exist.*zenodo"):
        find_hdbet_weights(tmp_path / "absent")


def test_unavailable_device_is_a_usage_error(tiny_model):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(UsageError, match="CUDA is not available"):
        make_hdbet_predictor(tiny_model, device="cuda")


def test_brain_mask_on_input_grid(tiny_model):
    image = _head_image("RAS")
    mask = hdbet_brain_mask(image, tiny_model, device="cpu")
    assert mask.shape == image.shape
    np.testing.assert_array_equal(mask.affine, image.affine)
    assert mask.get_data_dtype() == np.uint8
    assert set(np.unique(np.asanyarray(mask.dataobj))) <= {0, 1}


@pytest.mark.parametrize("reader_writer", ["SimpleITKIO", "NibabelIOWithReorient"])
def test_matches_nnunet_file_prediction(tmp_path, reader_writer):
    """In-memory prediction equals nnU-Net's own file pipeline (what `hd-bet` runs), voxel for
    voxel, on a non-RAS image: orientation and axis order survive the round trip."""
    model = write_tiny_hdbet_model(tmp_path / "model", reader_writer)
    image = _head_image("PIL")
    predictor = make_hdbet_predictor(model, device="cpu")
    mask = predict_brain_mask(image, predictor)

    nib.save(image, tmp_path / "case_0000.nii.gz")
    (tmp_path / "out").mkdir()
    predictor.predict_from_files_sequential(
        [[str(tmp_path / "case_0000.nii.gz")]], [str(tmp_path / "out" / "case")]
    )
    reference = nib.load(tmp_path / "out" / "case.nii.gz")
    ours = np.asanyarray(mask.dataobj)
    assert 0 < ours.sum() < ours.size, "random model should give a non-trivial mask"
    np.testing.assert_array_equal(ours, np.asanyarray(reference.dataobj))
    np.testing.assert_allclose(mask.affine, reference.affine, atol=1e-4)

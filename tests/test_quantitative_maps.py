"""Quantitative maps as CNN inputs (Lu et al. 2023 §II.A): options, range normalisation, names."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from bids_app.cli.main import parse_config
from bids_app.config.build import build_config
from bids_app.derivatives.naming import contrast_output, output_path
from bids_app.errors import UsageError
from bids_app.preprocessing.cnn_input import cnn_ready
from bids_app.preprocessing.qmaps import MAP_RANGES, map_range, range_normalise

BASE = ["/in", "/out", "group"]


def test_paper_ranges_in_bids_units():
    # qT1 0-2500 ms with BIDS T1map in seconds; MWF at most 30 % with BIDS MWFmap in percent
    assert MAP_RANGES["T1map"] == (0.0, 2.5)
    assert MAP_RANGES["MWFmap"] == (0.0, 30.0)
    assert MAP_RANGES["NDImap"] == (0.0, 1.0)


def test_range_normalise_clips_and_scales_inside_the_mask():
    data = np.array([-0.2, 0.0, 0.5, 1.25, 2.5, 4.0, 1.0])
    mask = np.array([True, True, True, True, True, True, False])
    out = range_normalise(data, mask, 0.0, 2.5)
    np.testing.assert_allclose(out, [0.0, 0.0, 0.2, 0.5, 1.0, 1.0, 0.0])
    assert out.dtype == np.float32
    # a shifted range: its low bound is 0
    np.testing.assert_allclose(
        range_normalise(np.array([1.0, 2.0]), np.ones(2, bool), 1, 3), [0, 0.5]
    )


def test_cnn_ready_uses_the_range_not_the_brain_min_max():
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    data = np.full((10, 10, 10), 1.0, np.float32)
    data[4:6, 4:6, 4:6] = 2.0
    image, mask = nib.Nifti1Image(data, affine), nib.Nifti1Image(np.ones((10, 10, 10)), affine)
    box = (20.0, 20.0, 20.0)
    ranged = np.asarray(cnn_ready(image, mask, mask, "minmax", box, (0.0, 2.5)).dataobj)
    np.testing.assert_allclose(np.unique(ranged), [0.4, 0.8], rtol=1e-6)
    minmax = np.asarray(cnn_ready(image, mask, mask, "minmax", box).dataobj)
    np.testing.assert_allclose(np.unique(minmax), [0.0, 1.0])


def test_map_range_option_parses_and_overrides():
    ranges = ["--map-range", "T2map=0:0.3", "T1map=0.5:4"]
    config = parse_config([*BASE, "--dl-contrasts", "T1w", "T1map", "T2map", *ranges])
    assert config.participant.map_ranges == {"T2map": (0.0, 0.3), "T1map": (0.5, 4.0)}
    assert map_range("T1map", config.participant.map_ranges) == (0.5, 4.0)
    assert map_range("MWFmap", config.participant.map_ranges) == (0.0, 30.0)
    assert map_range("FLAIR", config.participant.map_ranges) is None
    # in a configuration file too, and it changes the processing digest
    filed = build_config(
        {"bids_dir": "/in", "output_dir": "/out", "analysis_level": "group"},
        {"map_range": ["T1map=0:3"]},
    )
    assert filed.participant.map_ranges == {"T1map": (0.0, 3.0)}
    plain = build_config({"bids_dir": "/in", "output_dir": "/out", "analysis_level": "group"}, {})
    assert filed.processing_hash() != plain.processing_hash()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("T1map", "is not SUFFIX=LOW:HIGH"),
        ("T1map=0-2.5", "is not SUFFIX=LOW:HIGH"),
        ("T1 map=0:2.5", "is not SUFFIX=LOW:HIGH"),
        ("T1map=a:2.5", "must be numbers"),
        ("T1map=3:2", "below HIGH"),
        ("T1map=0:inf", "below HIGH"),
    ],
)
def test_bad_map_range_names_the_option(value, message):
    with pytest.raises(UsageError, match=message) as error:
        build_config(
            {"bids_dir": "/in", "output_dir": "/out", "analysis_level": "group"},
            {"map_range": [value]},
        )
    assert str(error.value).startswith("--map-range")


def test_dl_contrasts_takes_any_bids_suffix_t1w_first():
    config = parse_config([*BASE, "--dl-contrasts", "T1w", "T1map", "NDImap", "FLAIR"])
    assert config.deep.dl_contrasts == ("T1w", "T1map", "NDImap", "FLAIR")
    with pytest.raises(UsageError, match="start with T1w"):
        parse_config([*BASE, "--dl-contrasts", "T1map", "T1w"])
    with pytest.raises(UsageError, match="letters and digits"):
        parse_config([*BASE, "--dl-contrasts", "T1w", "T1map.nii.gz"])
    with pytest.raises(UsageError, match="once"):
        parse_config([*BASE, "--dl-contrasts", "T1w", "T1map", "T1map"])
    # a BIDS quantitative map without a built-in range needs --map-range
    with pytest.raises(UsageError, match="--map-range T2map=LOW:HIGH"):
        parse_config([*BASE, "--dl-contrasts", "T1w", "T2map"])
    parse_config([*BASE, "--dl-contrasts", "T1w", "T2map", "--map-range", "T2map=0:0.2"])


def test_crop_names_of_any_suffix_keep_the_existing_ones():
    entities = {"sub": "01", "ses": "1"}
    assert contrast_output("FLAIR", "cnn") == "flair_cnn"
    assert contrast_output("T1w", "cnn") == "t1w_cnn"
    assert (
        output_path(contrast_output("FLAIR", "cnn"), entities).name
        == "sub-01_ses-1_space-MNI152NLin2009aSym_desc-cnn_FLAIR.nii.gz"
    )
    names = {
        kind: output_path(contrast_output("MWFmap", kind), entities).name
        for kind in ("t1w", "mni", "cnn", "xfm")
    }
    assert names == {
        "t1w": "sub-01_ses-1_space-T1w_desc-preproc_MWFmap.nii.gz",
        "mni": "sub-01_ses-1_space-MNI152NLin2009aSym_desc-preproc_MWFmap.nii.gz",
        "cnn": "sub-01_ses-1_space-MNI152NLin2009aSym_desc-cnn_MWFmap.nii.gz",
        "xfm": "sub-01_ses-1_from-MWFmap_to-T1w_mode-image_xfm.mat",
    }
    for name in ("FLAIR_cnn", "T1map_preproc", "xfm_FLAIR_to_t1w", "T1map.cnn"):
        with pytest.raises(KeyError):
            output_path(name, entities)

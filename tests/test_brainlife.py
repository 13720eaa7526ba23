"""The brainlife.io App: ``brainlife/main`` on a fake working folder with a config.json."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bids import BIDSLayout

from bids_app.cli.brainlife import bids_from_config, main
from bids_app.cli.errors import ExitCode
from bids_app.cli.parser import build_parser
from bids_app.inputs.layout import validate_dataset
from tests.conftest import REPOSITORY, write_t1w

APP = REPOSITORY / "brainlife" / "main"
#: brainlife's description of the T1w input (``_inputs``), as in brainlife's own samples.
T1W_INPUT = {
    "id": "t1w",
    "keys": ["t1"],
    "datatype_tags": [],
    "meta": {
        "subject": "A12",
        "MagneticFieldStrength": 3,
        "nifti_headers": {"dim": [3, 20, 24, 20]},
    },
}
FAST_OPTIONS = {"skull_strip": "template", "features": ["volumes"], "sloppy": True}


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """A brainlife working folder with a small T1w (``input/t1.nii.gz``); the current folder."""
    folder = tmp_path / "task"
    write_t1w(folder / "input" / "t1.nii.gz")
    monkeypatch.chdir(folder)
    return folder


def write_config(folder: Path, **config) -> Path:
    path = folder / "config.json"
    path.write_text(json.dumps(config))
    return path


def run_app(folder: Path) -> subprocess.CompletedProcess:
    """Run ``brainlife/main`` in ``folder`` without a container, with this interpreter."""
    environment = {
        **os.environ,
        "NEUROSTRAT_NO_CONTAINER": "1",
        "PYTHON": sys.executable,
        "PYTHONPATH": str(REPOSITORY),
    }
    return subprocess.run(
        [str(APP)], cwd=folder, env=environment, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_app_writes_derivatives_and_product(workdir):
    write_config(workdir, t1="input/t1.nii.gz", _inputs=[T1W_INPUT], **FAST_OPTIONS)

    result = run_app(workdir)

    assert result.returncode == 0, result.stderr[-2000:]
    anat = workdir / "output" / "sub-A12" / "anat"
    assert (anat / "sub-A12_desc-volumes_morph.tsv").is_file()
    assert not list(anat.glob("*_desc-thickness_morph.tsv"))  # features: volumes only
    assert (
        json.loads((workdir / "output" / "dataset_description.json").read_text())["DatasetType"]
        == "derivative"
    )
    product = json.loads((workdir / "product.json").read_text())
    assert product["exit_code"] == 0 and product["subject"] == "A12"
    assert product["brainlife"][0]["type"] == "success"
    assert product["qc"]["brain_volume_ml"] > 0
    assert not (workdir / "work").exists()  # removed after a successful run


def test_missing_t1_exits_66_naming_config_json(workdir):
    write_config(workdir, _inputs=[T1W_INPUT])

    result = run_app(workdir)

    assert result.returncode == ExitCode.NO_INPUT
    assert result.stderr.count("\n") == 1
    assert "config.json" in result.stderr and "'t1'" in result.stderr
    product = json.loads((workdir / "product.json").read_text())
    assert product["exit_code"] == 66 and product["brainlife"][0]["type"] == "error"


def test_missing_t1_file_exits_66(workdir, capsys):
    write_config(workdir, t1="input/nope.nii.gz")

    assert main([]) == ExitCode.NO_INPUT
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "config.json" in error and "nope.nii.gz" in error


def test_missing_config_json_exits_66(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main([]) == ExitCode.NO_INPUT
    assert "config.json does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"freesurfer_license": "x"}, "'freesurfer_license'"),
        ({"skull_strip": "bogus"}, "'skull_strip'"),
        ({"sloppy": "yes"}, "'sloppy'"),
    ],
)
def test_bad_option_exits_64_naming_the_key(workdir, capsys, options, named):
    write_config(workdir, t1="input/t1.nii.gz", **options)

    assert main([]) == ExitCode.USAGE
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "config.json" in error and named in error
    assert not (workdir / "output").exists()


def test_options_become_neurostrat_flags(workdir):
    config = {
        "t1": "input/t1.nii.gz",
        "_app": "5e5d2b9a",
        "_inputs": [T1W_INPUT],
        "nprocs": 2,
        "atlas": None,  # an optional parameter left empty: NeuroStrat's default
        "radiomics_rois": "brain, brainstem",  # brainlife's parameters are scalars
        **FAST_OPTIONS,
    }

    arguments = bids_from_config(config, workdir / "bids")

    parsed = vars(build_parser().parse_args(["bids", "out", "participant", *arguments]))
    assert {key: parsed[key] for key in parsed.keys() - {"bids_dir", "output_dir"}} == {
        "analysis_level": "participant",
        "skull_strip": "template",
        "features": ["volumes"],
        "sloppy": True,
        "nprocs": 2,
        "radiomics_rois": ["brain", "brainstem"],
    }


def test_dataset_is_valid_bids_with_flair_and_session(workdir):
    write_t1w(workdir / "input" / "flair.nii.gz", seed=1)
    flair_input = {
        "id": "flair",
        "keys": ["flair"],
        "meta": {"subject": "A12", "session": "ses-1", "RepetitionTime": 9.0, "run": "1"},
    }
    t1w_input = {**T1W_INPUT, "meta": {**T1W_INPUT["meta"], "session": "ses-1"}}
    config = {"t1": "input/t1.nii.gz", "flair": "input/flair.nii.gz"}

    bids_from_config({**config, "_inputs": [t1w_input, flair_input]}, workdir / "bids")

    anat = workdir / "bids" / "sub-A12" / "ses-1" / "anat"
    flair = anat / "sub-A12_ses-1_FLAIR.nii.gz"
    assert flair.is_symlink() and flair.resolve() == workdir / "input" / "flair.nii.gz"
    assert (anat / "sub-A12_ses-1_T1w.nii.gz").is_file()
    # the sidecars keep BIDS fields; brainlife's own keys (run, nifti_headers...) are dropped
    assert json.loads((anat / "sub-A12_ses-1_FLAIR.json").read_text()) == {"RepetitionTime": 9.0}
    assert json.loads((anat / "sub-A12_ses-1_T1w.json").read_text()) == {"MagneticFieldStrength": 3}
    assert (workdir / "bids" / "participants.tsv").read_text() == "participant_id\nsub-A12\n"
    validate_dataset(workdir / "bids")  # bids-validator where installed, else pybids
    layout = BIDSLayout(workdir / "bids", validate=True)
    assert layout.get_subjects() == ["A12"] and layout.get_sessions() == ["1"]


def test_subject_defaults_to_01_and_bids_is_rebuilt(workdir):
    (workdir / "bids" / "sub-old" / "anat").mkdir(parents=True)

    bids_from_config({"t1": "input/t1.nii.gz"}, workdir / "bids")

    assert sorted(p.name for p in (workdir / "bids").glob("sub-*")) == ["sub-01"]
    assert (workdir / "bids" / "sub-01" / "anat" / "sub-01_T1w.nii.gz").is_file()
    assert not (workdir / "bids" / "sub-01" / "anat" / "sub-01_T1w.json").exists()


def test_sample_config_is_accepted(workdir):
    sample = json.loads((APP.parent / "config.json.sample").read_text())

    arguments = bids_from_config({**sample, "t1": "input/t1.nii.gz"}, workdir / "bids")

    build_parser().parse_args(["bids", "out", "participant", *arguments])
    assert (workdir / "bids" / "sub-01" / "ses-1" / "anat" / "sub-01_ses-1_T1w.json").is_file()

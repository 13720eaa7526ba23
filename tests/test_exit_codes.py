"""Exit codes of the BIDS-Apps execution-spec draft, and failures that spare other subjects."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bids_app.cli.errors import (
    EXIT_CODES,
    ExitCode,
    UnknownLevelError,
    error_message,
    exit_code,
)
from bids_app.cli.main import main
from bids_app.errors import (
    DataError,
    InvalidBIDSError,
    NoInputError,
    NoMatchError,
    OutputError,
    UsageError,
)

ROOT = Path(__file__).resolve().parents[1]
#: The features are not what these tests check: the cheapest family keeps them short.
FEW_FEATURES = ["--features", "volumes"]


def test_version_prints_the_version_file():
    result = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert result.stdout == (ROOT / "version").read_text()


def test_module_entry_point(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bids_app",
            str(tmp_path / "missing"),
            str(tmp_path / "o"),
            "participant",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == ExitCode.NO_INPUT
    assert result.stderr.count("\n") == 1 and "does not exist" in result.stderr


def test_missing_bids_dir(tmp_path, capsys):
    assert main([str(tmp_path / "nope"), str(tmp_path / "out"), "participant"]) == 66
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_invalid_bids(tmp_path, make_bids):
    bids = make_bids(subjects=["01"])
    (bids / "dataset_description.json").unlink()
    assert main([str(bids), str(tmp_path / "out"), "participant"]) == ExitCode.INVALID_BIDS


@pytest.mark.requires_bids_validator
def test_invalid_bids_from_validator(tmp_path, make_bids, capsys):
    bids = make_bids(subjects=["01"])
    (bids / "sub-01" / "anat" / "sub-01_T1x.nii.gz").write_bytes(b"")
    code = main([str(bids), str(tmp_path / "out"), "participant"])
    assert code == ExitCode.INVALID_BIDS
    assert "--skip-bids-validation" in capsys.readouterr().err
    args = ["--skip_bids_validator", "-w", str(tmp_path / "work"), *FEW_FEATURES]
    code = main([str(bids), str(tmp_path / "out"), "participant", *args])
    assert code == ExitCode.OK


def test_unmatched_participant_label(tmp_path, make_bids, capsys):
    bids = make_bids(subjects=["01", "02"])
    code = main([str(bids), str(tmp_path / "out"), "participant", "--participant-label", "09"])
    assert code == ExitCode.NO_MATCH
    assert "['09']" in capsys.readouterr().err


def test_unmatched_session_label(tmp_path, make_bids):
    bids = make_bids(subjects=["01"], sessions=["1"])
    code = main([str(bids), str(tmp_path / "out"), "participant", "--session-label", "2"])
    assert code == ExitCode.NO_MATCH


def test_unknown_level(tmp_path, make_bids):
    assert main([str(make_bids()), str(tmp_path / "out"), "both"]) == ExitCode.UNKNOWN_LEVEL


def test_unwritable_output(tmp_path, make_bids, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code = main([str(make_bids()), str(blocker / "out"), "participant"])
    assert code == ExitCode.CANT_CREATE
    assert "output folder" in capsys.readouterr().err


def test_unwritable_work_folder(tmp_path, make_bids, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    bids = make_bids()
    code = main([str(bids), str(tmp_path / "out"), "participant", "-w", str(blocker / "work")])
    assert code == ExitCode.CANT_CREATE
    message = capsys.readouterr().err
    assert "work folder" in message and "-w DIR" in message


def test_a_run_that_stops_early_leaves_no_work_folder(tmp_path, make_bids, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bids = make_bids(subjects=["01"])
    args = [str(bids), str(tmp_path / "out"), "participant", "--participant-label", "09"]
    assert main(args) == ExitCode.NO_MATCH
    assert not (tmp_path / "work").exists()


def test_default_work_folder_in_an_unwritable_cwd(tmp_path, make_bids, capsys, monkeypatch):
    bids = make_bids()
    monkeypatch.chdir("/proc/self")  # not writable, even by root
    code = main([str(bids), str(tmp_path / "out"), "participant"])
    assert code == ExitCode.CANT_CREATE
    message = capsys.readouterr().err
    assert message.count("\n") == 1 and f"/proc/{os.getpid()}/work" in message
    assert "-w DIR" in message
    assert not (tmp_path / "out" / "sub-01").exists()


def test_cuda_without_a_gpu_stops_before_the_first_session(tmp_path, make_bids, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    out = tmp_path / "out"
    args = [str(make_bids(subjects=["01", "02"])), str(out), "participant", "--device", "cuda"]
    assert main([*args, "-w", str(tmp_path / "work")]) == ExitCode.USAGE
    message = capsys.readouterr().err
    assert message.count("\n") == 1 and "--gpus all" in message and "--device cpu" in message
    assert not (out / "sub-01").exists()


def test_bad_participants_table(tmp_path, make_bids, capsys):
    bids = make_bids()
    table = bids / "participants.tsv"
    table.write_text(table.read_text().replace("\t51\t", "\tfifty-one\t"))
    assert main([str(bids), str(tmp_path / "out"), "participant"]) == ExitCode.DATA
    assert "fifty-one" in capsys.readouterr().err


def test_corrupt_image_spares_other_subjects(tmp_path, make_bids, capsys):
    bids = make_bids(subjects=["01", "02", "03"])
    broken = bids / "sub-02" / "anat" / "sub-02_T1w.nii.gz"
    broken.write_bytes(broken.read_bytes()[:200])  # a truncated gzip
    out = tmp_path / "out"
    code = main(
        [
            str(bids),
            str(out),
            "participant",
            "-w",
            str(tmp_path / "work"),
            "--sloppy",
            *FEW_FEATURES,
        ]
    )
    assert code != 0
    err = capsys.readouterr().err
    assert "FAILED sub-02" in err and "sub-02_T1w.nii.gz" in err
    for subject in ("01", "03"):
        assert (out / f"sub-{subject}/anat/sub-{subject}_desc-preproc_T1w.nii.gz").exists()
    assert not list(out.glob("sub-02/**/*.nii.gz"))
    assert not [p for p in out.rglob("*") if ".part-" in p.name]
    summary = next((out / "logs").glob("summary_*.txt")).read_text()
    assert "2 done" in summary and "1 failed" in summary and "sub-02" in summary


@pytest.mark.slow
def test_session_without_t1w_fails_alone(tmp_path, make_bids, capsys):
    bids = make_bids(subjects=["01", "02"], sessions=["1", "2"])
    missing = bids / "sub-01" / "ses-2" / "anat" / "sub-01_ses-2_T1w.nii.gz"
    missing.unlink()
    missing.with_name("sub-01_ses-2_T1w.json").unlink()
    (missing.parent / "sub-01_ses-2_FLAIR.nii.gz").write_bytes(
        (bids / "sub-01/ses-1/anat/sub-01_ses-1_T1w.nii.gz").read_bytes()
    )
    out = tmp_path / "out"
    code = main(
        [str(bids), str(out), "participant", "-w", str(tmp_path / "w"), "--sloppy", *FEW_FEATURES]
    )
    assert code == ExitCode.SUBJECTS_FAILED
    failed = next(line for line in capsys.readouterr().err.splitlines() if "FAILED" in line)
    assert "FAILED sub-01_ses-2:" in failed and "sub-01/ses-2/anat has no T1w image" in failed
    inventory = next((out / "logs").glob("inventory_*.tsv")).read_text()
    assert "T1w (required)" in inventory
    assert len([p for p in out.rglob("*_desc-preproc_T1w.nii.gz") if "_space-" not in p.name]) == 3
    assert json.loads((out / "dataset_description.json").read_text())["DatasetType"] == "derivative"


@pytest.mark.slow
@pytest.mark.parametrize("level", ["participant", "group"])
def test_group_without_group_column(tmp_path, make_bids, level):
    bids = make_bids(subjects=["01", "02"])
    out = tmp_path / "out"
    args = [str(bids), str(out), "participant", "-w", str(tmp_path / "w"), "--sloppy"]
    assert main(args + FEW_FEATURES) == 0
    code = main([str(bids), str(out), level, "--group-column", "cohort", "-w", str(tmp_path / "w")])
    assert code == (ExitCode.DATA if level == "group" else ExitCode.OK)


def test_errors_are_plain_and_the_cli_maps_them():
    assert issubclass(DataError, ValueError) and issubclass(UsageError, ValueError)
    assert issubclass(NoInputError, FileNotFoundError) and issubclass(OutputError, OSError)
    assert not any(hasattr(cls, "exit_code") for cls in EXIT_CODES)
    codes = {
        UnknownLevelError: 17,
        UsageError: 64,
        NoInputError: 66,
        InvalidBIDSError: 16,
        NoMatchError: 18,
        DataError: 65,
        OutputError: 73,
    }
    assert {cls: int(exit_code(cls("x"))) for cls in codes} == codes
    assert error_message(DataError("a.nii.gz: truncated\nre-convert it")).count("\n") == 0

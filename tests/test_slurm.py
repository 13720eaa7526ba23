"""Running on a cluster: SLURM job arrays, the status of the subjects, nipype plugins.

The scripts' text, the choice of the subjects to submit and the status are checked here without
SLURM; the test marked ``slurm`` submits to a real SLURM controller (``make test-slurm``, after
``bash .ci/slurm-local.sh start``) the commands of the README's 'Running on a cluster'.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bids_app.cli.errors import ExitCode
from bids_app.cli.main import main, parse_config
from bids_app.cli.status import status_text, subject_states
from bids_app.cli.submit import array_script, group_script, sbatch, sbatch_command
from bids_app.derivatives.writer import DerivativesWriter
from bids_app.errors import SchedulerError, UsageError
from bids_app.inputs.inventory import build_inventory
from bids_app.inputs.layout import load_layout
from bids_app.participant.run import _plugin
from tests.conftest import REPOSITORY, write_t1w

SUBJECTS = ("01", "02", "03", "04", "05", "06")
BROKEN = "06"
#: The cheap settings of every participant run here (3 mm heads).
CHEAP = "--sloppy --skull-strip template --features volumes --skip-bids-validation --omp-nthreads 1"
#: The README's commands, run by the test marked slurm in a folder holding ``bids/``.
SUBMIT = (
    "neurostrat bids out participant -w work --submit slurm --array-throttle 2 "
    f'--sbatch-args="--mem=1000 --time=20" --submit-group {CHEAP}'
)
STATUS = "neurostrat bids out participant --status"
LOCAL = f"neurostrat bids local participant -w local-work --nprocs 2 {CHEAP}"
CONTAINER = f"{SUBMIT} --container neurostrat.sif"


def _write_dataset(root: Path, subjects=SUBJECTS, broken: str | None = BROKEN) -> Path:
    """Tiny 3 mm heads, two diagnoses; the broken subject's T1w is garbage bytes."""
    root.mkdir(parents=True)
    description = {"Name": "slurm", "BIDSVersion": "1.9.0", "DatasetType": "raw"}
    (root / "dataset_description.json").write_text(json.dumps(description))
    rows = ["participant_id\tdiagnosis\tage\tsex"]
    for index, label in enumerate(subjects):
        rows.append(f"sub-{label}\t{'ALS' if index % 2 else 'CN'}\t{50 + index}\tF")
        t1w = write_t1w(root / f"sub-{label}" / "anat" / f"sub-{label}_T1w.nii.gz", seed=index)
        if label == broken:
            t1w.write_bytes(b"not a NIfTI image " * 64)
    (root / "participants.tsv").write_text("\n".join(rows) + "\n")
    return root


#: The relative paths of the commands, taken in the test's folder.
_RELATIVE = {"bids", "out", "work", "local", "local-work", "neurostrat.sif"}


def _arguments(folder: Path, command: str) -> list[str]:
    """The arguments of a README command run in ``folder``, its paths made absolute."""
    return [str(folder / a) if a in _RELATIVE else a for a in shlex.split(command)[1:]]


def _config(folder: Path, command: str):
    """The Config of a README command run in ``folder`` (its work folder there too)."""
    arguments = _arguments(folder, command)
    return parse_config(
        arguments if "-w" in arguments else [*arguments, "-w", str(folder / "work")]
    )


# --- the scripts, without SLURM -------------------------------------------------------------


def test_array_script_runs_one_subject_per_task(tmp_path):
    config = _config(tmp_path, SUBMIT)
    settings, output = tmp_path / "out/logs/slurm/s.yaml", tmp_path / "out/logs/slurm/p_%A_%a.txt"
    script = array_script(config, ["01", "03", "06"], settings, output)
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash"
    assert "#SBATCH --array=1-3%2" in lines
    assert "#SBATCH --mem=1000 --time=20" in lines  # --sbatch-args, as given
    assert f"#SBATCH --output={output}" in lines and "#SBATCH --cpus-per-task=1" in lines
    assert "labels=(01 03 06)" in lines
    assert 'label="${labels[$((SLURM_ARRAY_TASK_ID - 1))]}"' in lines
    command = shlex.split(lines[-1].replace('"${label}"', "LABEL"))
    assert command[:4] == ["exec", sys.executable, "-m", "bids_app"]
    assert command[4:] == [
        str(tmp_path / "bids"),
        str(tmp_path / "out"),
        "participant",
        "--config",
        str(settings),
        "--participant-label",
        "LABEL",
    ]
    # bash runs task 2 as the second subject
    task = subprocess.run(
        ["bash", "-c", "\n".join([*lines[7:9], 'echo "$label"'])],
        env={"SLURM_ARRAY_TASK_ID": "2"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert task.stdout.strip() == "03"


def test_unthrottled_array_and_memory_from_mem_gb(tmp_path):
    config = _config(tmp_path, "neurostrat bids out participant --submit slurm --mem-gb 2")
    script = array_script(config, ["01", "02"], tmp_path / "s.yaml", tmp_path / "o.txt")
    assert "#SBATCH --array=1-2" in script.splitlines() and "#SBATCH --mem=2048M" in script


def test_container_form_binds_the_folders(tmp_path):
    config = _config(tmp_path, CONTAINER)
    settings = tmp_path / "out/logs/slurm/s.yaml"
    last = array_script(config, ["01"], settings, tmp_path / "o.txt").splitlines()[-1]
    bids, out, work = (tmp_path / name for name in ("bids", "out", "work"))
    expected = (
        f"exec singularity run --cleanenv --bind {bids}:{bids}:ro --bind {out}:{out} "
        f"--bind {work}:{work} {tmp_path / 'neurostrat.sif'} {bids} {out} participant "
        f'--config {settings} --participant-label "${{label}}"'
    )
    assert last == expected
    group = group_script(config, settings, tmp_path / "g.txt").splitlines()
    assert group[-1].startswith("exec singularity run --cleanenv") and " group " in group[-1]
    assert not any("--array" in line for line in group)


def test_group_job_waits_for_the_array():
    assert sbatch_command(Path("group.sh"), after="41") == [
        "sbatch",
        "--parsable",
        "--dependency=afterany:41",
        "group.sh",
    ]
    assert sbatch_command(Path("group.sh")) == ["sbatch", "--parsable", "group.sh"]


def test_sbatch_errors_are_scheduler_errors(tmp_path):
    with pytest.raises(SchedulerError, match="not found"):
        sbatch(["no-such-sbatch-here", "x.sh"])
    with pytest.raises(SchedulerError, match="failed: refused"):
        sbatch(["bash", "-c", "echo refused >&2; exit 1"])
    assert sbatch(["bash", "-c", "echo '77;cluster'"]) == "77"


def test_submission_options_need_submit(tmp_path):
    with pytest.raises(UsageError, match="--array-throttle only apply with --submit slurm"):
        _config(tmp_path, "neurostrat bids out participant --array-throttle 2")
    with pytest.raises(UsageError, match="--submit or --status"):
        _config(tmp_path, "neurostrat bids out participant --submit slurm --status")


def test_readme_runs_the_tested_commands():
    readme = (REPOSITORY / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Running on a cluster", 1)[1].split("\n## ", 1)[0]
    for command in (SUBMIT, STATUS, CONTAINER):
        assert command in " ".join(section.replace("\\\n", " ").split()), command


# --- nipype plugins ----------------------------------------------------------------------------


def test_use_plugin_file_sets_nipype_plugin(tmp_path):
    plugin = tmp_path / "plugin.yml"
    plugin.write_text("plugin: MultiProc\nplugin_args: {n_procs: 3, memory_gb: 2}\n")
    config = _config(tmp_path, f"neurostrat bids out participant --use-plugin {plugin}")
    name, args = _plugin(config, "sub-01")
    assert name == "MultiProc" and args["n_procs"] == 3 and args["memory_gb"] == 2
    assert callable(args["status_callback"])
    assert _plugin(_config(tmp_path, "neurostrat bids out participant"), "sub-01")[0] == "Linear"
    plugin.write_text("plugin_args: {n_procs: 3}\n")
    with pytest.raises(UsageError, match="plugin: NAME"):
        _config(tmp_path, f"neurostrat bids out participant --use-plugin {plugin}")


# --- the status, on a real output folder -----------------------------------------------------


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    """Subjects 01 (fine) and 06 (broken) run through nipype's Linear plugin; 02 never run."""
    root = tmp_path_factory.mktemp("status")
    _write_dataset(root / "bids", subjects=("01", "02", "06"))
    plugin = root / "plugin.yml"
    plugin.write_text("plugin: Linear\n")
    arguments = _arguments(root, f"{LOCAL} --participant-label 01 06 --use-plugin {plugin} -q")
    assert main(arguments) == ExitCode.SUBJECTS_FAILED
    return root


@pytest.mark.slow
def test_status_names_done_failed_and_pending(small_run, capsys):
    bids, out = small_run / "bids", small_run / "local"
    inventory = build_inventory(load_layout(bids), (), ())
    states = subject_states(inventory, DerivativesWriter(out, bids, settings_hash="x"))
    assert [(s.subject, s.state) for s in states] == [
        ("01", "done"),
        ("02", "pending"),
        ("06", "failed"),
    ]
    failed = states[2]
    assert failed.cause.startswith("DataError: ") and "sub-06_T1w.nii.gz" in failed.cause
    assert (out / failed.log).is_file() and "sub-06" in (out / failed.log).read_text()
    capsys.readouterr()
    assert main([str(bids), str(out), "participant", "--status"]) == 0
    printed = capsys.readouterr().out
    assert printed == status_text(states) + "\n"
    assert "sub-06  failed  DataError: " in printed and printed.endswith(
        "1 done, 1 failed, 1 pending\n"
    )


# --- a real SLURM ------------------------------------------------------------------------------


def _slurm_reason() -> str | None:
    """Why the SLURM test cannot run here (None: it can)."""
    if shutil.which("sbatch") is None or shutil.which("squeue") is None:
        return "needs SLURM's sbatch and squeue (bash .ci/slurm-local.sh start)"
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, check=False)
    if "UP" not in ping.stdout:
        return "needs a running SLURM controller (bash .ci/slurm-local.sh start)"
    return None


def _run(folder: Path, command: str) -> str:
    """Run a README command (``neurostrat`` is this Python's ``-m bids_app``) in ``folder``."""
    arguments = [sys.executable, "-m", "bids_app", *shlex.split(command)[1:]]
    done = subprocess.run(arguments, cwd=folder, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _job_ids(printed: str) -> list[str]:
    """The ids of the jobs a submission printed (the array's, then the group job's)."""
    return re.findall(r"^(?:participant array|group) job (\d+)", printed, re.MULTILINE)


def _wait(job_ids: list[str], timeout: float = 1200) -> None:
    deadline = time.monotonic() + timeout
    while subprocess.run(
        ["squeue", "-h", "-j", ",".join(job_ids)], capture_output=True, text=True, check=False
    ).stdout.strip():
        assert time.monotonic() < deadline, f"SLURM jobs {job_ids} still queued or running"
        time.sleep(3)


def _files(out: Path) -> list[str]:
    return sorted(
        p.relative_to(out).as_posix()
        for p in out.rglob("*")
        if p.is_file() and "logs" not in p.parts
    )


def _volumes(out: Path) -> dict[str, pd.DataFrame]:
    return {
        p.name: pd.read_csv(p, sep="\t", na_values="n/a", keep_default_na=False)
        for p in sorted(out.rglob("*_desc-volumes_morph.tsv"))
    }


@pytest.mark.slurm
def test_slurm_array_then_group_then_resubmission(tmp_path):
    reason = _slurm_reason()
    if reason:
        pytest.skip(reason)
    _write_dataset(tmp_path / "bids")
    printed = _run(tmp_path, SUBMIT)
    array, group = _job_ids(printed)
    assert f"participant array job {array}: 6 subject(s)" in printed
    assert f"group job {group}, after job {array}" in printed
    slurm = tmp_path / "out" / "logs" / "slurm"
    (script,) = slurm.glob("participant_*.sh")
    assert "#SBATCH --array=1-6%2" in script.read_text()
    _wait([array, group])

    status = _run(tmp_path, STATUS).splitlines()
    assert status[:5] == [f"sub-{label}  done" for label in SUBJECTS[:5]]
    assert status[5].startswith(f"sub-{BROKEN}  failed  DataError: ") and "(log: logs/" in status[5]
    assert status[6] == "5 done, 1 failed, 0 pending"
    outputs = sorted(slurm.glob(f"participant_{array}_*.txt"))
    assert len(outputs) == 6  # one output file per task
    groups = pd.read_csv(tmp_path / "out" / "group" / "participants.tsv", sep="\t")
    assert len(groups) == 5  # the group job ran on the five complete subjects

    # the subject repaired, the same command submits it alone
    write_t1w(tmp_path / "bids" / f"sub-{BROKEN}" / "anat" / f"sub-{BROKEN}_T1w.nii.gz", seed=5)
    printed = _run(tmp_path, SUBMIT)
    array, group = _job_ids(printed)
    assert f"participant array job {array}: 1 subject(s) ({BROKEN})" in printed
    _wait([array, group])
    assert len(list(slurm.glob(f"participant_{array}_*.txt"))) == 1
    assert _run(tmp_path, STATUS).splitlines()[-1] == "6 done, 0 failed, 0 pending"
    assert len(pd.read_csv(tmp_path / "out" / "group" / "participants.tsv", sep="\t")) == 6

    # the same outputs as a run on this machine
    _run(tmp_path, LOCAL)
    participant = [f for f in _files(tmp_path / "out") if f.startswith("sub-")]
    assert participant == [f for f in _files(tmp_path / "local") if f.startswith("sub-")]
    ours, theirs = _volumes(tmp_path / "out"), _volumes(tmp_path / "local")
    assert list(ours) == list(theirs) and len(ours) == 6
    for name, table in ours.items():
        numeric = table.select_dtypes("number").columns
        assert list(table.columns) == list(theirs[name].columns)
        np.testing.assert_allclose(table[numeric], theirs[name][numeric], rtol=1e-6, atol=1e-6)

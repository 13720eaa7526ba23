"""Faults during a participant run: kills, interrupts, concurrent runs, a full disk.

Every run here processes tiny 3 mm heads with the cheap settings and one ITK thread; the runs
that only need finished workflows reuse the reference run's work folder (nipype's cache).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bids_app.cli.errors import ExitCode
from bids_app.cli.main import main
from tests.conftest import write_t1w

SUBJECTS = ("01", "02", "03")
OPTIONS = ["--sloppy", "--skull-strip", "template", "--features", "volumes"]
OPTIONS += ["--skip-bids-validation", "--omp-nthreads", "1", "-q"]
RESUME = "re-run the same command to resume"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Three subjects without sessions, one tiny T1w each, two diagnoses."""
    root = tmp_path_factory.mktemp("faults") / "bids"
    root.mkdir()
    description = {"Name": "faults", "BIDSVersion": "1.9.0", "DatasetType": "raw"}
    (root / "dataset_description.json").write_text(json.dumps(description))
    rows = ["participant_id\tdiagnosis\tage\tsex"]
    for index, label in enumerate(SUBJECTS):
        rows.append(f"sub-{label}\t{'ALS' if index % 2 else 'CN'}\t{50 + index}\tF")
        write_t1w(root / f"sub-{label}" / "anat" / f"sub-{label}_T1w.nii.gz", seed=index)
    (root / "participants.tsv").write_text("\n".join(rows) + "\n")
    return root


def _start(bids: Path, out: Path, work: Path, *extra: str) -> subprocess.Popen:
    """Start a participant run in its own process group (its workers belong to it)."""
    command = [sys.executable, "-m", "bids_app", str(bids), str(out), "participant"]
    return subprocess.Popen(
        [*command, "-w", str(work), *OPTIONS, *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _finish(process: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    """Wait for a run; return its exit code and its stderr."""
    _, err = process.communicate(timeout=timeout)
    return process.returncode, err


def _wait_for(condition: Callable[[], bool], process: subprocess.Popen, what: str) -> None:
    """Poll ``condition`` every millisecond while the run lives (at most 5 minutes)."""
    deadline = time.monotonic() + 300
    while not condition():
        assert process.poll() is None, f"the run ended before {what}: {process.stderr.read()}"
        assert time.monotonic() < deadline, f"the run never reached {what}"
        time.sleep(0.001)


def _freeze_during_a_write(process: subprocess.Popen, writing: Callable[[], bool]) -> None:
    """Stop the run's process group while ``writing()`` holds.

    A tiny file's write can end between a poll and the signal, so the group is stopped
    (SIGSTOP), the condition checked again on the frozen run, and the run continued and
    watched again when the write had already ended.
    """
    while True:
        _wait_for(writing, process, "a write of the first subject's outputs")
        os.killpg(process.pid, signal.SIGSTOP)
        deadline = time.monotonic() + 10
        while not _all_stopped(process.pid) and time.monotonic() < deadline:
            time.sleep(0.001)
        if writing():
            return
        os.killpg(process.pid, signal.SIGCONT)


def _all_stopped(group: int) -> bool:
    """Whether every living process of a process group is stopped (state ``T``)."""
    return all(state == "T" for state in _member_states(group).values())


def _parts(out: Path) -> list[Path]:
    return [path for path in out.rglob("*") if ".part-" in path.name]


def _marker(out: Path, label: str) -> Path:
    return out / f"sub-{label}" / "anat" / f"sub-{label}_desc-preproc_qc.json"


def _volumes(out: Path, label: str) -> pd.DataFrame:
    path = out / f"sub-{label}" / "anat" / f"sub-{label}_desc-volumes_morph.tsv"
    return pd.read_csv(path, sep="\t", na_values="n/a", keep_default_na=False)


def _assert_same_volumes(out: Path, reference: Path, labels: tuple[str, ...]) -> None:
    for label in labels:
        ours, theirs = _volumes(out, label), _volumes(reference, label)
        assert list(ours.columns) == list(theirs.columns)
        numeric = ours.select_dtypes("number").columns
        np.testing.assert_allclose(ours[numeric], theirs[numeric], rtol=1e-6, atol=1e-6)


def _member_states(group: int) -> dict[int, str]:
    """The state letter of each living process of a process group (zombies left out)."""
    states = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            states[int(stat.parent.name)] = fields[0]
    return states


def _living_members(group: int) -> list[int]:
    """Processes of a process group that still run (zombies left out), from ``/proc``."""
    return list(_member_states(group))


@pytest.fixture(scope="module")
def reference(dataset, tmp_path_factory) -> tuple[Path, Path]:
    """An uninterrupted run of every subject: its output and work folders."""
    root = tmp_path_factory.mktemp("reference")
    out, work = root / "out", root / "work"
    code, err = _finish(_start(dataset, out, work))
    assert code == 0, err
    return out, work


def test_session_lock_is_exclusive_and_names_its_holder(tmp_path):
    from bids_app.participant.locks import SessionLockedError, session_lock

    with session_lock(tmp_path, "sub-01"):
        with pytest.raises(SessionLockedError) as busy, session_lock(tmp_path, "sub-01"):
            pass
        with session_lock(tmp_path, "sub-02"):  # another session: its own lock
            pass
    assert busy.value.holder == f"pid {os.getpid()} on host {socket.gethostname()}"
    with session_lock(tmp_path, "sub-01"):  # released after the block
        pass


@pytest.mark.slow
def test_kill_during_a_write_then_rerun_resumes_and_matches(dataset, reference, tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    process = _start(dataset, out, work, "--participant-label", "01", "02")
    _freeze_during_a_write(process, lambda: any(out.glob("sub-01/**/.*.part-*")))
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert _parts(out), "the kill did not land during a write"
    assert not _marker(out, "01").exists()
    assert not (out / "sub-02").exists()
    code, err = _finish(_start(dataset, out, work, "--participant-label", "01", "02"))
    assert code == 0, err
    assert not _parts(out)
    assert _marker(out, "01").exists() and _marker(out, "02").exists()
    _assert_same_volumes(out, reference[0], ("01", "02"))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "nprocs", "labels"),
    [(signal.SIGINT, "1", ("01",)), (signal.SIGTERM, "2", ("01", "02"))],
    ids=["sigint", "sigterm-two-workers"],
)
def test_interrupt_stops_the_run(dataset, tmp_path, signum, nprocs, labels):
    out, work = tmp_path / "out", tmp_path / "work"
    run = ("--participant-label", *labels, "--nprocs", nprocs)
    process = _start(dataset, out, work, *run)
    register = work / "sub_01_wf" / "registration_wf" / "register"
    _wait_for(register.is_dir, process, "the registration")
    time.sleep(0.5)  # inside the registration (a nipype step)
    os.kill(process.pid, signum)
    code, err = _finish(process, timeout=120)
    assert code == 128 + signum, err
    name = signal.Signals(signum).name
    assert err.strip().splitlines()[-1] == f"neurostrat: interrupted ({name}); {RESUME}"
    assert "Traceback" not in err
    deadline = time.monotonic() + 20  # the session workers die with the run
    while _living_members(process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _living_members(process.pid)
    assert not _parts(out)
    assert not _marker(out, "01").exists()
    if signum == signal.SIGINT:  # the re-run resumes
        code, err = _finish(_start(dataset, out, work, *run))
        assert code == 0, err
        assert _marker(out, "01").exists()


@pytest.mark.slow
def test_half_written_session_is_not_counted_and_is_redone(dataset, reference, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(reference[0], out)
    _marker(out, "01").unlink()  # a run killed between two files of sub-01
    stale = [
        out / "sub-01" / "anat" / ".sub-01_dseg.part-0badc0de.nii.gz",
        out / ".sub-01.part-0badc0de.html",
    ]
    for path in stale:
        path.write_bytes(b"half")
    args = ["-w", str(reference[1]), "--skip-bids-validation"]
    assert main([str(dataset), str(out), "group", *args]) == 0
    table = pd.read_csv(out / "group" / "participants.tsv", sep="\t")
    assert list(table["participant_id"]) == ["sub-02", "sub-03"]
    features = pd.read_csv(out / "group" / "features_volumes.tsv", sep="\t")
    assert "sub-01" not in set(features["participant_id"])
    code, err = _finish(_start(dataset, out, reference[1]))
    assert code == 0, err
    assert _marker(out, "01").exists()
    assert not _parts(out)
    summaries = (out / "logs").glob("summary_*.txt")
    summary = max(summaries, key=lambda path: path.stat().st_mtime_ns).read_text()
    assert summary.startswith("participant level: 1 done, 2 skipped, 0 failed"), summary


@pytest.mark.slow
def test_concurrent_runs_on_one_output_folder(dataset, reference, tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    first = _start(dataset, out, work, "--participant-label", "01")
    lock = work / "locks" / "sub-01.lock"
    holder = f"pid {first.pid} on host {socket.gethostname()}"
    _wait_for(lambda: lock.exists() and lock.read_text() == holder, first, "sub-01's lock")
    second = _start(dataset, out, work, "--participant-label", "01", "02")
    code, err = _finish(second)
    assert code == ExitCode.SUBJECTS_FAILED, err
    expected = f"FAILED sub-01: being processed by another run ({holder}); re-run after it finishes"
    assert expected in err
    assert "Traceback" not in err
    code, err = _finish(first)
    assert code == 0, err
    json.loads((out / "dataset_description.json").read_text())
    assert not _parts(out)
    _assert_same_volumes(out, reference[0], ("01", "02"))


@pytest.fixture
def small_disk(tmp_path, reference) -> Path:
    """A tmpfs with room for the outputs of one subject and a half (root only)."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small tmpfs needs root and mount(8)")
    first = [*(reference[0] / "sub-01").rglob("*"), reference[0] / "sub-01.html"]
    size = math.ceil(sum(path.stat().st_size for path in first if path.is_file()) * 1.5)
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.slow
def test_full_disk_stops_the_run_cleanly(dataset, reference, small_disk):
    out = small_disk / "out"
    process = _start(dataset, out, reference[1], "--participant-label", "01", "02")
    code, err = _finish(process)
    assert code == ExitCode.CANT_CREATE, err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("neurostrat: error: cannot write ")
    assert "No space left on device" in err and "free some space there" in err
    assert f"({out})" in err and RESUME in err
    assert _marker(out, "01").exists()
    _assert_same_volumes(out, reference[0], ("01",))
    assert not [path for path in out.rglob("*sub-02*")]
    assert not _parts(out)


@pytest.mark.slow
def test_error_outside_the_workflow_fails_that_session_only(dataset, reference, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub-01").write_text("a file where the subject's folder goes")
    process = _start(dataset, out, reference[1], "--participant-label", "01", "02")
    code, err = _finish(process)
    assert code == ExitCode.SUBJECTS_FAILED, err
    assert "FAILED sub-01: NotADirectoryError" in err
    assert "Traceback" not in err
    assert _marker(out, "02").exists()

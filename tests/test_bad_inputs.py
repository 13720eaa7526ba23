"""Bad input as users produce it: datasets, options, configuration files and participants.tsv.

Every case asserts the exit code, one ``neurostrat: error:`` line on stderr naming the file or
option and the fix, no traceback (unless ``-v``), and nothing left in the output or work folder.
Most cases fail before any image is processed, so they run in-process in milliseconds. The
cases where one subject fails and the others must complete share one participant-level run of
a dataset with one good subject among bad ones (:func:`mixed_run`). Layouts of the public
bids-examples datasets, whose images are 0-byte files, are rebuilt from short path lists.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from bids_app.cli.main import main
from bids_app.inputs.inventory import build_inventory
from bids_app.inputs.layout import load_layout
from bids_app.inputs.participants import read_participants
from tests.conftest import write_t1w

#: Options of every run: cheap settings, no validator, nothing for the tests to wait for.
FAST = ["--sloppy", "--skull-strip", "template", "--features", "volumes", "--skip-bids-validation"]
PARTICIPANTS = "participant_id\tdiagnosis\tage\tsex\nsub-01\tCN\t50\tF\nsub-02\tALS\t61\tM\n"


def write_dataset(root: Path, subjects=("01", "02"), sessions=None, participants=PARTICIPANTS):
    """Write a dataset whose T1w images are 0-byte files (enough for the up-front checks)."""
    root.mkdir(parents=True)
    (root / "dataset_description.json").write_text(
        json.dumps({"Name": "bad", "BIDSVersion": "1.9.0", "DatasetType": "raw"})
    )
    if participants is not None:
        (root / "participants.tsv").write_text(participants)
    for subject in subjects:
        for session in sessions or [None]:
            folder = root / f"sub-{subject}" / (f"ses-{session}" if session else "") / "anat"
            folder.mkdir(parents=True)
            stem = f"sub-{subject}" + (f"_ses-{session}" if session else "")
            (folder / f"{stem}_T1w.nii.gz").write_bytes(b"")
    return root


@dataclass(frozen=True)
class Case:
    """One bad input: how to make it, the exit code and words the message must hold."""

    name: str
    make: Callable[[Path], list[str]]
    code: int
    words: tuple[str, ...]


def _run(tmp: Path, *extra: str, level: str = "participant", bids: Path | None = None) -> list:
    """The command line of a run on ``tmp/bids`` (written unless given) into ``tmp/out``."""
    bids = bids if bids is not None else write_dataset(tmp / "bids")
    return [str(bids), str(tmp / "out"), level, "-w", str(tmp / "work"), *FAST, *extra]


def _edit(relative: str, content: bytes | str | None, **kw) -> Callable[[Path], list[str]]:
    """A case that writes (or deletes, for None) one file of the dataset."""

    def make(tmp: Path) -> list[str]:
        bids = write_dataset(tmp / "bids")
        path = bids / relative
        if content is None:
            path.unlink()
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return _run(tmp, bids=bids, **kw)

    return make


def _config(suffix: str, content: bytes | str, level: str = "participant"):
    """A case with a configuration file."""

    def make(tmp: Path) -> list[str]:
        path = tmp / f"options{suffix}"
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return _run(tmp, "--config", str(path), level=level)

    return make


def _options(*extra: str, level: str = "participant"):
    return lambda tmp: _run(tmp, *extra, level=level)


def _bids_is_a_file(tmp: Path) -> list[str]:
    (tmp / "bids").write_text("not a folder")
    return _run(tmp, bids=tmp / "bids")


def _output_inside(tmp: Path) -> list[str]:
    bids = write_dataset(tmp / "bids")
    return [str(bids), str(bids / "out"), "participant", "-w", str(tmp / "work"), *FAST]


def _output_under_a_file(tmp: Path) -> list[str]:
    (tmp / "afile").write_text("")
    bids = write_dataset(tmp / "bids")
    return [str(bids), str(tmp / "afile" / "out"), "participant", "-w", str(tmp / "work"), *FAST]


def _work_under_a_file(tmp: Path) -> list[str]:
    (tmp / "afile").write_text("")
    bids = write_dataset(tmp / "bids")
    return [str(bids), str(tmp / "out"), "participant", "-w", str(tmp / "afile" / "w"), *FAST]


def _work_inside(tmp: Path) -> list[str]:
    bids = write_dataset(tmp / "bids")
    return [str(bids), str(tmp / "out"), "participant", "-w", str(bids / "work"), *FAST]


def _sessions_on_flat_dataset(tmp: Path) -> list[str]:
    return _run(tmp, "--session-label", "1")


def _unknown_session(tmp: Path) -> list[str]:
    bids = write_dataset(tmp / "bids", sessions=["1", "2"])
    return _run(tmp, "--session-label", "3", bids=bids)


def _derivative_as_input(tmp: Path) -> list[str]:
    bids = write_dataset(tmp / "bids")
    description = {"Name": "d", "BIDSVersion": "1.9.0", "DatasetType": "derivative"}
    (bids / "dataset_description.json").write_text(json.dumps(description))
    return _run(tmp, bids=bids)


def _missing_derivatives(tmp: Path) -> list[str]:
    return _run(tmp, "--derivatives", str(tmp / "nowhere"))


def _no_participants(level: str, content: str | None):
    """participants.tsv removed (None) or replaced, at a level."""
    return _edit("participants.tsv", content, level=level)


LATIN1 = "participant-label = ['01']\n# café\n".encode("latin-1")
TSV_LATIN1 = "participant_id\tsite\nsub-01\tZürich\n".encode("latin-1")

CASES = [
    # the dataset and the folders
    Case("bids-dir-is-a-file", _bids_is_a_file, 66, ("bids", "not a folder", "BIDS root")),
    Case("output-inside-bids-dir", _output_inside, 64, ("inside", "derivatives")),
    Case(
        "output-is-bids-dir", lambda t: _run(t, bids=write_dataset(t / "out")), 64, ("is bids_dir",)
    ),
    Case("output-not-writable", _output_under_a_file, 73, ("afile", "writable")),
    Case("work-not-writable", _work_under_a_file, 73, ("afile", "-w")),
    Case("work-inside-bids-dir", _work_inside, 64, ("work", "inside", "-w")),
    Case("derivatives-as-bids-dir", _derivative_as_input, 16, ("derivative", "raw dataset")),
    Case("derivatives-missing", _missing_derivatives, 66, ("nowhere", "--derivatives")),
    # labels
    Case("label-dotdot", _options("--participant-label", "../x"), 64, ("../x", "sub-01")),
    Case("label-traversal", _options("--participant-label", "01/../02"), 64, ("01/../02",)),
    Case("label-absolute", _options("--participant-label", "/etc"), 64, ("/etc",)),
    Case("label-empty", _options("--participant-label", "sub-"), 64, ("label",)),
    Case("label-unicode", _options("--participant-label", "0²"), 64, ("0²",)),
    Case("label-unknown", _options("--participant-label", "07"), 18, ("07", "01")),
    Case("session-dotdot", _options("--session-label", "../1"), 64, ("../1", "ses-")),
    Case("session-on-flat-dataset", _sessions_on_flat_dataset, 18, ("no sessions", "drop")),
    Case("session-unknown", _unknown_session, 18, ("'3'", "1")),
    # resources and seed
    Case("nprocs-zero", _options("--nprocs", "0"), 64, ("nprocs", "at least 1")),
    Case("nprocs-negative", _options("--nprocs", "-1"), 64, ("nprocs", "at least 1")),
    Case("omp-nthreads-zero", _options("--omp-nthreads", "0"), 64, ("omp_nthreads", "1")),
    Case("seed-negative", _options("--seed", "-5"), 64, ("seed", "4294967295")),
    Case("seed-huge", _options("--seed", str(2**40)), 64, ("seed", "4294967295")),
    Case("seed-negative-group", _options("--seed", "-5", level="group"), 64, ("seed", "0")),
    Case("seed-huge-group", _options("--seed", str(2**40), level="group"), 64, ("seed",)),
    # configuration files
    Case("config-toml-syntax", _config(".toml", "nprocs = = 2\n"), 64, ("options.toml", "parse")),
    Case("config-yaml-syntax", _config(".yaml", "nprocs: [2\n"), 64, ("options.yaml", "parse")),
    Case("config-unknown-key", _config(".toml", "nproc = 2\n"), 64, ("nproc", "nprocs")),
    Case("config-wrong-type", _config(".toml", 'nprocs = "many"\n'), 64, ("nprocs", "integer")),
    Case("config-bool-type", _config(".yaml", "force: maybe\n"), 64, ("force", "true or false")),
    Case(
        "config-integer-labels",
        _config(".yaml", "participant-label: [002, 003]\n"),
        64,
        ("options.yaml", "participant_label", "quote"),
    ),
    Case(
        "config-integer-labels-toml",
        _config(".toml", "participant-label = [2, 3]\n"),
        64,
        ("options.toml", "quote"),
    ),
    Case("config-not-utf8", _config(".toml", LATIN1), 64, ("options.toml", "UTF-8")),
    Case("config-float-folds", _config(".toml", "cv-folds = 2.7\n"), 64, ("cv_folds", "2.7")),
    Case(
        "config-both-spellings",
        _config(".toml", 'participant_label = ["01"]\nparticipant-label = ["02"]\n'),
        64,
        ("options.toml", "participant_label", "once"),
    ),
    Case("config-top-level-list", _config(".yaml", "- 1\n- 2\n"), 64, ("options.yaml", "table")),
    Case("config-extension", _config(".cfg", "nprocs = 2\n"), 64, ("options.cfg", ".toml")),
    Case(
        "config-label-traversal",
        _config(".toml", 'participant-label = ["../../x"]\n'),
        64,
        ("../../x",),
    ),
    Case("config-bids-dir-key", _config(".toml", 'bids_dir = "/"\n'), 64, ("bids_dir",)),
    # dataset_description.json
    Case(
        "description-missing",
        _edit("dataset_description.json", None),
        16,
        ("dataset_description.json", "missing"),
    ),
    Case(
        "description-invalid",
        _edit("dataset_description.json", "{bad"),
        16,
        ("dataset_description.json", "JSON"),
    ),
    Case(
        "description-list",
        _edit("dataset_description.json", "[]"),
        16,
        ("dataset_description.json", "object"),
    ),
    Case(
        "description-not-utf8",
        _edit("dataset_description.json", '{"Name": "é"}'.encode("latin-1")),
        16,
        ("dataset_description.json", "UTF-8"),
    ),
    # participants.tsv and participants.json
    Case(
        "participants-missing-group",
        _no_participants("group", None),
        66,
        ("participants.tsv", "group level"),
    ),
    Case(
        "participants-empty-group",
        _no_participants("group", ""),
        65,
        ("participants.tsv", "group level"),
    ),
    Case(
        "participants-header-only-group",
        _no_participants("group", "participant_id\tage\n"),
        65,
        ("participants.tsv", "no participant"),
    ),
    Case(
        "participants-duplicated",
        _edit("participants.tsv", PARTICIPANTS + "sub-01\tCN\t3\tF\n"),
        65,
        ("participants.tsv", "duplicate", "sub-01"),
    ),
    Case(
        "participants-not-utf8",
        _edit("participants.tsv", TSV_LATIN1),
        65,
        ("participants.tsv", "UTF-8"),
    ),
    Case(
        "participants-json-invalid",
        _edit("participants.json", "{bad"),
        65,
        ("participants.json", "JSON"),
    ),
    Case(
        "participants-json-not-utf8",
        _edit("participants.json", '{"a": "é"}'.encode("latin-1")),
        65,
        ("participants.json", "UTF-8"),
    ),
    Case(
        "participants-json-list",
        _edit("participants.json", "[]"),
        65,
        ("participants.json", "object"),
    ),
]


def _leftovers(tmp: Path) -> list[Path]:
    return [p for p in tmp.rglob("*") if ".part" in p.name or p.name.startswith(".write-test")]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input(case: Case, tmp_path: Path, capsys):
    argv = case.make(tmp_path)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == case.code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("neurostrat: error: "), err
    for word in case.words:
        assert word.lower() in err.lower(), (word, err)
    assert ";" in err, f"no fix given: {err}"
    assert "Traceback" not in err
    assert not (tmp_path / "work").exists()
    if case.name != "output-is-bids-dir":
        assert not Path(argv[1]).exists(), "an up-front error created the output folder"
    assert not _leftovers(tmp_path)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_verbose(case: Case, tmp_path: Path, capsys):
    """-v still ends with the same code and message (a traceback is allowed)."""
    code = main([*case.make(tmp_path), "-v"])
    err = capsys.readouterr().err
    assert code == case.code, err
    assert "neurostrat: error: " in err


# ---------------------------------------------------------------------------------------------
# participants.tsv oddities that must work: the run gets past the inputs (its only session then
# fails on its 0-byte T1w, before any processing)


def _probe(tmp: Path, participants: str | bytes | None) -> Path:
    """A dataset of sub-01 (a 0-byte T1w) with the given participants.tsv (None: none)."""
    bids = write_dataset(tmp / "bids", subjects=("01",), participants=None)
    if participants is not None:
        path = bids / "participants.tsv"
        path.write_bytes(participants if isinstance(participants, bytes) else participants.encode())
    return bids


WORKING = {
    "crlf": "participant_id\tage\r\nsub-01\t50\r\n",
    "bom": "\ufeffparticipant_id\tage\nsub-01\t50\n",
    "stray-spaces": "participant_id\t age \n sub-01 \t 50 \n",
    "missing": None,
    "zero-bytes": "",
    "header-only": "participant_id\tage\n",
    "subject-not-on-disk": "participant_id\tage\nsub-01\t50\nsub-09\t70\n",
    "subject-not-listed": "participant_id\tage\nsub-02\t50\n",
}
#: What the log must say about each.
WARNINGS = {
    "missing": "participants.tsv",
    "zero-bytes": "participants.tsv",
    "header-only": "participants.tsv",
    "subject-not-on-disk": "sub-09",
    "subject-not-listed": "sub-01",
}


@pytest.mark.parametrize("name", WORKING)
def test_participants_quirks_still_run(name: str, tmp_path: Path, capsys):
    bids = _probe(tmp_path, WORKING[name])
    code = main(_run(tmp_path, bids=bids))
    err = capsys.readouterr().err
    assert code == 1, err  # the 0-byte T1w fails its session, after the inputs were read
    assert "Traceback" not in err
    summary = next((tmp_path / "out").rglob("*summary*")).read_text()
    assert "cannot be read as NIfTI" in summary
    log = next(p for p in (tmp_path / "out").rglob("*.txt") if "summary" not in p.name)
    if name in WARNINGS:
        warned = [line for line in log.read_text().splitlines() if "WARNING" in line]
        assert any(WARNINGS[name] in line for line in warned), log.read_text()
    assert not _leftovers(tmp_path)


@pytest.mark.parametrize("name", ["crlf", "bom", "stray-spaces"])
def test_participants_quirks_read_cleanly(name: str, tmp_path: Path):
    bids = _probe(tmp_path, WORKING[name])
    table = read_participants(bids)
    assert list(table.index) == ["01"]
    assert list(table.columns) == ["participant_id", "age"]
    assert table.loc["01", "age"] == 50


# ---------------------------------------------------------------------------------------------
# one participant-level run: a good subject among bad ones


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory) -> dict:
    """Run the participant level on one good subject (two T1w runs) and six bad ones."""
    tmp = tmp_path_factory.mktemp("mixed")
    bids = write_dataset(
        tmp / "bids",
        subjects=(),
        participants="participant_id\tage\nsub-good\t50\nsub-ghost\t60\nsub-badjson\t55\n",
    )
    anat = bids / "sub-good" / "anat"
    write_t1w(anat / "sub-good_run-1_T1w.nii.gz", seed=1, shape=(12, 14, 12), zoom=5.0)
    write_t1w(anat / "sub-good_run-2_T1w.nii.gz", seed=2, shape=(15, 18, 15), zoom=4.0)
    for subject in ("badjson", "latin", "listjson"):
        write_t1w(bids / f"sub-{subject}" / "anat" / f"sub-{subject}_T1w.nii.gz")
    (bids / "sub-badjson/anat/sub-badjson_T1w.json").write_text('{"EchoTime": 0.003,')
    (bids / "sub-latin/anat/sub-latin_T1w.json").write_bytes('{"Site": "Zürich"}'.encode("cp1252"))
    (bids / "sub-listjson/anat/sub-listjson_T1w.json").write_text("[1, 2]")
    write_t1w(bids / "sub-not1w" / "anat" / "sub-not1w_T2w.nii.gz")
    (bids / "sub-zero/anat").mkdir(parents=True)
    (bids / "sub-zero/anat/sub-zero_T1w.nii.gz").write_bytes(b"")
    func = bids / "sub-func" / "func"
    func.mkdir(parents=True)
    (func / "sub-func_task-rest_bold.nii.gz").write_bytes(b"")
    out = tmp / "out"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main([str(bids), str(out), "participant", "-w", str(tmp / "work"), *FAST])
    text = {p.name: p.read_text() for p in (out / "logs").glob("*.t*")}
    return {"code": code, "out": out, "bids": bids, "tmp": tmp, "err": err.getvalue(), "logs": text}


def _summary(run: dict) -> str:
    return next(t for name, t in run["logs"].items() if "summary" in name)


def _inventory(run: dict) -> pd.DataFrame:
    path = next(p for p in run["out"].rglob("*inventory*.tsv"))
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def test_mixed_run_exit_code(mixed_run):
    assert mixed_run["code"] == 1, mixed_run["err"]
    assert "Traceback" not in mixed_run["err"]


FAILURES = {
    "sub-badjson": ("sub-badjson_T1w.json", "JSON"),
    "sub-latin": ("sub-latin_T1w.json", "UTF-8"),
    "sub-listjson": ("sub-listjson_T1w.json", "object"),
    "sub-not1w": ("sub-not1w/anat has no T1w", "sub-not1w_T1w.nii.gz"),
    "sub-zero": ("sub-zero_T1w.nii.gz", "cannot be read as NIfTI"),
}


@pytest.mark.parametrize("key", FAILURES)
def test_mixed_run_fails_the_bad_subject_alone(mixed_run, key):
    summary = _summary(mixed_run)
    line = next((line for line in summary.splitlines() if f"FAILED {key}:" in line), None)
    assert line is not None, summary
    for word in FAILURES[key]:
        assert word in line, line
    assert "; " in line, f"no fix given: {line}"
    assert not list(mixed_run["out"].glob(f"{key}/**/*.nii.gz"))


def test_mixed_run_good_subject_complete(mixed_run):
    out = mixed_run["out"] / "sub-good" / "anat"
    assert list(out.glob("*desc-preproc_T1w.nii.gz"))
    assert list(out.glob("*desc-volumes_morph.tsv"))
    assert list(out.glob("*qc*")) or list(out.rglob("*qc*"))
    assert "1 done" in _summary(mixed_run)


def test_mixed_run_picks_the_finest_t1w(mixed_run):
    """Two T1w runs: the finest voxels win (run-2, 4 mm over run-1, 5 mm), and it is said."""
    sidecar = next((mixed_run["out"] / "sub-good" / "anat").glob("*desc-preproc_T1w.json"))
    sources = json.loads(sidecar.read_text())["Sources"]
    assert any("run-2_T1w" in s for s in sources) and not any("run-1_T1w" in s for s in sources)
    log = "\n".join(mixed_run["logs"].values())
    assert "sub-good_run-2_T1w.nii.gz" in log and "finest" in log
    table = _inventory(mixed_run).set_index("subject")
    assert table.loc["good", "T1w"] == "2"
    assert table.loc["good", "T1w_used"].endswith("sub-good_run-2_T1w.nii.gz")


def test_mixed_run_func_only_is_not_applicable(mixed_run):
    table = _inventory(mixed_run).set_index("subject")
    assert table.loc["func", "status"] == "not applicable"
    assert "FAILED sub-func" not in _summary(mixed_run)
    assert "1 not applicable" in _summary(mixed_run)


@pytest.mark.parametrize(
    ("words"), [("sub-ghost", "not on disk"), ("sub-zero", "participants.tsv")]
)
def test_mixed_run_warns_about_participants(mixed_run, words):
    log = "\n".join(t for name, t in mixed_run["logs"].items() if name.endswith(".txt"))
    assert any(all(w in line for w in words) for line in log.splitlines() if "WARNING" in line)


def test_mixed_run_leaves_no_partial_file(mixed_run):
    assert not _leftovers(mixed_run["tmp"])


def test_mixed_run_wrote_nothing_into_bids(mixed_run):
    assert not [p for p in mixed_run["bids"].rglob("*") if "desc-" in p.name]


# ---------------------------------------------------------------------------------------------
# layouts of bids-examples (their images are 0-byte files)

#: Paths of a few subjects of three bids-examples datasets (bids-standard/bids-examples).
EXAMPLES = {
    "7t_trt": [
        "sub-01/ses-1/anat/sub-01_ses-1_T1map.nii.gz",
        "sub-01/ses-1/anat/sub-01_ses-1_T1w.nii.gz",
        "sub-01/ses-1/fmap/sub-01_ses-1_run-1_magnitude1.nii.gz",
        "sub-01/ses-1/fmap/sub-01_ses-1_run-1_phasediff.json",
        "sub-01/ses-1/fmap/sub-01_ses-1_run-1_phasediff.nii.gz",
        "sub-01/ses-1/func/sub-01_ses-1_task-rest_acq-fullbrain_run-1_bold.nii.gz",
        "sub-01/ses-1/sub-01_ses-1_scans.tsv",
        "sub-01/ses-2/fmap/sub-01_ses-2_run-1_magnitude1.nii.gz",
        "sub-01/ses-2/fmap/sub-01_ses-2_run-1_phasediff.json",
        "sub-01/ses-2/func/sub-01_ses-2_task-rest_acq-fullbrain_run-1_bold.nii.gz",
        "sub-01/ses-2/sub-01_ses-2_scans.tsv",
        "sub-01/sub-01_sessions.tsv",
        "sub-02/ses-1/anat/sub-02_ses-1_T1w.nii.gz",
        "sub-02/ses-1/func/sub-02_ses-1_task-rest_acq-fullbrain_run-1_bold.nii.gz",
        "sub-02/ses-2/func/sub-02_ses-2_task-rest_acq-fullbrain_run-1_bold.nii.gz",
        "task-rest_acq-fullbrain_bold.json",
        "participants.json",
    ],
    "ds051": [
        "sub-01/anat/sub-01_run-01_T1w.nii.gz",
        "sub-01/anat/sub-01_run-02_T1w.nii.gz",
        "sub-01/anat/sub-01_inplaneT2.nii.gz",
        "sub-01/func/sub-01_task-abstractconcretejudgment_run-01_bold.nii.gz",
        "sub-02/anat/sub-02_run-01_T1w.nii.gz",
        "sub-02/anat/sub-02_run-02_T1w.nii.gz",
        "task-abstractconcretejudgment_bold.json",
    ],
    "ds000117": [
        "acq-mprage_T1w.json",
        "sub-01/ses-mri/anat/sub-01_ses-mri_acq-mprage_T1w.json",
        "sub-01/ses-mri/anat/sub-01_ses-mri_acq-mprage_T1w.nii.gz",
        "sub-01/ses-mri/anat/sub-01_ses-mri_run-1_echo-1_FLASH.nii.gz",
        "sub-01/ses-meg/meg/sub-01_ses-meg_coordsystem.json",
        "sub-01/ses-meg/meg/sub-01_ses-meg_task-facerecognition_run-01_meg.fif",
        "sub-emptyroom/ses-20090409/meg/sub-emptyroom_ses-20090409_task-noise_meg.fif",
        "sub-emptyroom/ses-20090409/sub-emptyroom_ses-20090409_scans.tsv",
        "participants.json",
        ".bidsignore",
    ],
}
#: Sessions expected to fail on their 0-byte T1w, and those without anatomy.
EXPECTED = {
    "7t_trt": (["sub-01_ses-1", "sub-02_ses-1"], ["sub-01_ses-2", "sub-02_ses-2"]),
    "ds051": (["sub-01", "sub-02"], []),
    "ds000117": (["sub-01_ses-mri"], ["sub-01_ses-meg", "sub-emptyroom_ses-20090409"]),
}


def rebuild_example(root: Path, paths: list[str]) -> Path:
    """Recreate a bids-examples layout: 0-byte images and minimal JSON/TSV files."""
    root.mkdir(parents=True)
    (root / "dataset_description.json").write_text(
        json.dumps({"Name": root.name, "BIDSVersion": "1.0.2"})
    )
    subjects = sorted({p.split("/")[0] for p in paths if p.startswith("sub-")})
    (root / "participants.tsv").write_text(
        "participant_id\tage\n" + "".join(f"{s}\t30\n" for s in subjects)
    )
    for relative in paths:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".json":
            path.write_text("{}")
        elif path.suffix == ".tsv":
            path.write_text(
                "session_id\tage\nses-1\t30\n"
                if "sessions" in path.name
                else "filename\tacq_time\n"
            )
        elif path.name == ".bidsignore":
            path.write_text("*.pos\n")
        else:
            path.write_bytes(b"")
    return root


@pytest.mark.parametrize("name", EXAMPLES)
def test_bids_examples_layouts(name: str, tmp_path: Path, capsys):
    bids = rebuild_example(tmp_path / name, EXAMPLES[name])
    code = main(_run(tmp_path, bids=bids))
    err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err
    summary = next((tmp_path / "out").rglob("*summary*")).read_text()
    failing, not_applicable = EXPECTED[name]
    failed = [line for line in summary.splitlines() if "FAILED" in line]
    assert len(failed) == len(failing), summary
    for key in failing:
        line = next(line for line in failed if f"FAILED {key}:" in line)
        assert "cannot be read as NIfTI" in line and "_T1w.nii.gz" in line
    assert f"{len(not_applicable)} not applicable" in summary
    inventory = pd.read_csv(next((tmp_path / "out").rglob("*inventory*.tsv")), sep="\t", dtype=str)
    keys = inventory["subject"].radd("sub-") + inventory["session"].fillna("").map(
        lambda s: f"_ses-{s}" if s else ""
    )
    marked = set(keys[inventory["status"] == "not applicable"])
    assert marked == set(not_applicable)
    assert not _leftovers(tmp_path)


# ---------------------------------------------------------------------------------------------
# the inventory's rules, and security


def test_two_t1w_runs_rule(tmp_path: Path):
    """Finest voxels first, then the lowest run number (run-2 before run-10), not the name."""
    bids = write_dataset(tmp_path / "bids", subjects=())
    anat = bids / "sub-01" / "anat"
    for run in (10, 2, 3):
        write_t1w(anat / f"sub-01_run-{run}_T1w.nii.gz", shape=(4, 4, 4), zoom=3.0)
    write_t1w(anat / "sub-01_run-4_T1w.nii.gz", shape=(4, 4, 4), zoom=4.0)
    (inputs,) = build_inventory(load_layout(bids))
    assert inputs.t1w[0].name == "sub-01_run-2_T1w.nii.gz"
    assert [p.name for p in inputs.t1w][-1] == "sub-01_run-4_T1w.nii.gz"


HOSTILE = ["../outside", "01/../../outside", "/tmp/outside", "sub-01/..", "..", "01\n02", "01 02"]


@pytest.mark.parametrize("label", HOSTILE)
@pytest.mark.parametrize("where", ["participant-cli", "session-cli", "participant-file"])
def test_labels_cannot_leave_the_folders(label: str, where: str, tmp_path: Path, capsys):
    """No label reaches a path: every hostile one is refused before anything is read."""
    bids = write_dataset(tmp_path / "inner" / "bids")
    (tmp_path / "outside").mkdir()
    before = sorted(tmp_path.rglob("*"))
    extra = {
        "participant-cli": ["--participant-label", label],
        "session-cli": ["--session-label", label],
    }.get(where)
    if extra is None:
        config = tmp_path / "inner" / "options.json.toml"
        config.write_text(f"participant-label = [{json.dumps(label)}]\n")
        extra = ["--config", str(config)]
        before = sorted(tmp_path.rglob("*"))
    out = tmp_path / "inner" / "out"
    code = main([str(bids), str(out), "participant", "-w", str(tmp_path / "inner/w"), *extra])
    assert code == 64, capsys.readouterr().err
    assert sorted(tmp_path.rglob("*")) == before

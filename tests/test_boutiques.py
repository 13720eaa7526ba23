"""The Boutiques descriptor: committed as generated, valid, complete, and accepted by the CLI.

The checks that run ``bosh`` skip, with the reason, where boutiques is not installed.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bids_app.cli.boutiques import descriptor, main, render
from bids_app.cli.main import parse_config
from bids_app.cli.parser import build_parser
from tests.conftest import REPOSITORY, read_volumes

DESCRIPTOR = REPOSITORY / "boutiques" / "neurostrat.json"


@pytest.fixture(scope="module")
def bosh() -> str:
    """The ``bosh`` command next to this Python, else on PATH; skip if neither."""
    beside = Path(sys.executable).parent / "bosh"
    found = str(beside) if beside.is_file() else shutil.which("bosh")
    if found is None:
        pytest.skip("needs boutiques' bosh command (pip install boutiques)")
    return found


def _bosh(bosh: str, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [bosh, *args], capture_output=True, text=True, timeout=300, check=False, **kwargs
    )


def _simulate(bosh: str, tmp_path: Path, invocation: dict[str, Any]) -> list[str]:
    """Return the arguments of the command ``bosh exec simulate`` writes for an invocation."""
    path = tmp_path / "invocation.json"
    path.write_text(json.dumps(invocation))
    done = _bosh(bosh, "exec", "simulate", "-i", str(path), str(DESCRIPTOR))
    assert done.returncode == 0, done.stdout + done.stderr
    program, *arguments = shlex.split(done.stdout.strip().splitlines()[-1])
    assert program == "neurostrat"
    return arguments


def test_committed_descriptor_is_generated():
    assert DESCRIPTOR.read_text(encoding="utf-8") == render(descriptor()), (
        "boutiques/neurostrat.json differs from the option declarations: run `make boutiques`"
    )


def test_main_writes_the_descriptor(tmp_path, capsys):
    assert main(["--output", str(tmp_path / "neurostrat.json")]) == 0
    assert main([]) == 0
    written = (tmp_path / "neurostrat.json").read_text(encoding="utf-8")
    assert written == capsys.readouterr().out == render(descriptor())
    assert [p.name for p in tmp_path.iterdir()] == ["neurostrat.json"]


def test_bosh_validate(bosh):
    done = _bosh(bosh, "validate", str(DESCRIPTOR))
    assert done.returncode == 0, done.stdout + done.stderr


def _expected_input(action: argparse.Action) -> dict[str, Any]:
    """What the input of one argparse action must say, read from the parser alone."""
    if not action.option_strings:
        return {"id": action.dest, "command-line-flag": None, "optional": False}
    if action.nargs == 0 and action.const is None:  # a count: -v/-q, not store_true/false
        return {"type": "String", "command-line-flag": None, "optional": True}
    if action.nargs == 0:
        return {"type": "Flag", "command-line-flag": action.option_strings[0], "optional": True}
    expected: dict[str, Any] = {"command-line-flag": action.option_strings[0], "optional": True}
    if action.type in (int, float):
        expected.update({"type": "Number", "integer": action.type is int})
    if action.nargs == "+":
        expected["list"] = True
    if action.choices:
        expected["value-choices"] = list(action.choices)
    return expected


def test_every_option_of_the_parser_is_an_input():
    actions = [a for a in build_parser()._actions if a.dest not in ("help", "version")]
    inputs = descriptor()["inputs"]
    assert len(inputs) == len(actions)
    for action, item in zip(actions, inputs, strict=True):
        expected = _expected_input(action)
        assert {key: item.get(key) for key in expected} == expected, action.dest
    verbosity = next(item for item in inputs if item["id"] == "verbosity")
    assert verbosity["value-choices"] == ["-qq", "-q", "-v", "-vv"]
    counted = [
        build_parser().parse_args(["in", "out", "group", choice]).verbosity
        for choice in verbosity["value-choices"]
    ]
    assert counted == [-2, -1, 1, 2]
    levels = next(item for item in inputs if item["id"] == "analysis_level")
    assert levels["value-choices"] == ["participant", "group"]
    assert not any("default-value" in item for item in inputs)


def test_simulated_command_is_accepted_by_the_cli(bosh, make_bids, tmp_path):
    bids = make_bids()
    invocation = {
        "bids_dir": str(bids),
        "output_dir": str(tmp_path / "out put"),
        "analysis_level": "participant",
        "participant_label": ["01", "sub-02"],
        "skull_strip": "template",
        "features": ["volumes", "histogram"],
        "cv_folds": 5,
        "mem_gb": 2.5,
        "sloppy": True,
        "no_dl_validation": True,
        "verbosity": "-vv",
        "work_dir": str(tmp_path / "work"),
    }
    config = parse_config(_simulate(bosh, tmp_path, invocation))
    assert config.input.bids_dir == bids.resolve()
    assert config.output_dir == (tmp_path / "out put").resolve()
    assert config.input.participant_label == ("01", "02")
    assert config.participant.skull_strip == "template"
    assert config.participant.features == ("volumes", "histogram")
    assert (config.group.cv_folds, config.resources.mem_gb) == (5, 2.5)
    assert config.sloppy and not config.deep.dl_validation
    assert config.verbosity == 2
    assert config.work_dir == tmp_path / "work"


def test_simulated_command_leaves_the_defaults_to_the_cli(bosh, tmp_path):
    required = {"bids_dir": "in", "output_dir": "out", "analysis_level": "group"}
    assert _simulate(bosh, tmp_path, required) == ["in", "out", "group"]


@pytest.mark.parametrize(
    "invalid", [{"cv_folds": 1}, {"mem_gb": 0}, {"skull_strip": "bet"}, {"features": []}]
)
def test_bosh_rejects_what_the_cli_rejects(bosh, tmp_path, invalid):
    path = tmp_path / "invocation.json"
    required = {"bids_dir": "in", "output_dir": "out", "analysis_level": "participant"}
    path.write_text(json.dumps({**required, **invalid}))
    assert _bosh(bosh, "exec", "simulate", "-i", str(path), str(DESCRIPTOR)).returncode != 0


@pytest.mark.slow
def test_bosh_launch_without_container(bosh, make_bids, tmp_path):
    """A real participant run through ``bosh exec launch --no-container`` (about 40 s)."""
    invocation = {
        "bids_dir": str(make_bids(subjects=("01", "02"))),
        "output_dir": str(tmp_path / "derivatives"),
        "analysis_level": "participant",
        "participant_label": ["01"],
        "skull_strip": "template",
        "features": ["volumes"],
        "sloppy": True,
        "skip_bids_validation": True,
        "work_dir": str(tmp_path / "work"),
    }
    (tmp_path / "invocation.json").write_text(json.dumps(invocation))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = _bosh(
        bosh,
        *("exec", "launch", "--no-container", "--skip-data-collection"),
        *(str(DESCRIPTOR), str(tmp_path / "invocation.json")),
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    derivatives = tmp_path / "derivatives"
    assert (derivatives / "dataset_description.json").is_file()
    assert list(read_volumes(derivatives).index) == ["sub-01"]

"""The command line and the configuration file."""

from pathlib import Path

import pytest

from bids_app.cli.errors import ExitCode
from bids_app.cli.main import parse_config
from bids_app.config import Config
from bids_app.errors import UsageError


def _config(tmp_path: Path, *extra: str) -> Config:
    return parse_config([str(tmp_path / "in"), str(tmp_path / "out"), "participant", *extra])


def test_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = _config(tmp_path)
    assert config.analysis_level == "participant"
    assert config.input.bids_dir == (tmp_path / "in").resolve()
    assert config.input.participant_label == ()
    assert (
        config.resources.nprocs,
        config.resources.omp_nthreads,
        config.seed,
        config.resources.device,
    ) == (1, 1, 42, "auto")
    assert config.work_dir == tmp_path.resolve() / "work"
    assert not config.sloppy and not config.input.skip_bids_validation


@pytest.mark.parametrize("flag", ["--participant-label", "--participant_label"])
def test_participant_label_aliases_strip_prefix(tmp_path, flag):
    config = _config(tmp_path, flag, "sub-01", "02", "sub-01")
    assert config.input.participant_label == ("01", "02")


@pytest.mark.parametrize(
    "flag", ["--skip-bids-validation", "--skip_bids_validation", "--skip_bids_validator"]
)
def test_skip_validation_aliases(tmp_path, flag):
    assert _config(tmp_path, flag).skip_bids_validation


def test_all_options(tmp_path):
    config = _config(
        tmp_path,
        "--session-label",
        "ses-1",
        "2",
        "-w",
        str(tmp_path / "w"),
        "--nprocs",
        "2",
        "--omp-nthreads",
        "3",
        "--mem-gb",
        "8",
        "--device",
        "cpu",
        "--seed",
        "7",
        "--sloppy",
        "--force",
        "-vv",
        "-q",
        "--group-column",
        "dx",
    )
    assert config.input.session_label == ("1", "2")
    assert config.work_dir == (tmp_path / "w").resolve()
    assert (config.resources.nprocs, config.resources.omp_nthreads, config.resources.mem_gb) == (
        2,
        3,
        8.0,
    )
    assert (config.resources.device, config.seed, config.sloppy, config.force) == (
        "cpu",
        7,
        True,
        True,
    )
    assert config.verbosity == 1
    assert config.group.group_column == "dx"


def test_config_is_frozen(tmp_path):
    config = _config(tmp_path)
    with pytest.raises(AttributeError):
        config.seed = 3


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("opts.toml", 'seed = 11\nnprocs = 2\nparticipant-label = ["sub-05"]\nsloppy = true\n'),
        ("opts.yaml", "seed: 11\nnprocs: 2\nparticipant_label: [sub-05]\nsloppy: true\n"),
    ],
)
def test_config_file_and_cli_precedence(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    from_file = _config(tmp_path, "--config", str(path))
    assert (from_file.seed, from_file.nprocs, from_file.sloppy) == (11, 2, True)
    assert from_file.participant_label == ("05",)
    overridden = _config(tmp_path, "--config", str(path), "--seed", "3")
    assert (overridden.seed, overridden.nprocs) == (3, 2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sede = 1\n", "unknown option"),
        ("seed = 'abc'\n", "invalid value"),
        ("sloppy = 'yes'\n", "true or false"),
        ("device = 'tpu'\n", "device"),
        ("nprocs = 0\n", "at least 1"),
        ("seed = [\n", "cannot be parsed"),
    ],
)
def test_bad_config_file(tmp_path, text, message):
    path = tmp_path / "opts.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message):
        _config(tmp_path, "--config", str(path))


def test_yaml_is_safe_loaded(tmp_path):
    path = tmp_path / "opts.yaml"
    path.write_text("seed: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(UsageError, match="cannot be parsed"):
        _config(tmp_path, "--config", str(path))


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["in", "out", "everything"], ExitCode.UNKNOWN_LEVEL),
        (["in", "out"], ExitCode.USAGE),
        (["in", "out", "participant", "--device", "tpu"], ExitCode.USAGE),
        (["in", "out", "participant", "--participant-label", "sub-0_1"], ExitCode.USAGE),
        (["in", "in", "participant"], ExitCode.USAGE),
    ],
)
def test_usage_errors(argv, code):
    with pytest.raises(UsageError) as info:
        parse_config(argv)
    assert info.value.exit_code == code

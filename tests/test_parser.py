"""The command line and the configuration file."""

import dataclasses
import re
from pathlib import Path

import pytest

from bids_app.cli.errors import ExitCode, exit_code
from bids_app.cli.main import main, parse_config
from bids_app.cli.parser import build_parser
from bids_app.config import DL_PRESETS, Config, build_config
from bids_app.config.options import SECTIONS, declarations
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
    assert _config(tmp_path, flag).input.skip_bids_validation


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
    assert (from_file.seed, from_file.resources.nprocs, from_file.sloppy) == (11, 2, True)
    assert from_file.input.participant_label == ("05",)
    overridden = _config(tmp_path, "--config", str(path), "--seed", "3")
    assert (overridden.seed, overridden.resources.nprocs) == (3, 2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sede = 1\n", "unknown option 'sede'; did you mean 'seed'"),
        ("seed = 'abc'\n", "invalid value"),
        ("seed = 'abc'\n", "'seed'.*expected an integer"),
        ("cv-folds = [3]\n", "'cv_folds'.*expected an integer"),
        ("participant_label = {a = 1}\n", "'participant_label'.*expected a string"),
        ("work_dir = 3\n", "'work_dir'.*expected a path"),
        ("dl-models = ['resnet3d', 3]\n", r"'dl_models': unknown \['3'\]"),
        ("dl-models = ['resnet3d', true]\n", "'dl_models'.*expected a string"),
        ("cv_folds = 1\n", "'cv_folds' must be at least 2"),
        ("mem_gb = 0\n", "'mem_gb' must be greater than 0"),
        ("dl_preset = 'seed002'\n", "'dl_preset' must be one of"),
        ("bids_dir = '/data'\n", "unknown option 'bids_dir'"),
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
    assert exit_code(info.value) == code


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sede = 1\n", "unknown option 'sede'"),
        ("cv_folds = 'three'\n", "'cv_folds'.*expected an integer"),
        ("sloppy = 'yes'\n", "'sloppy' must be true or false"),
    ],
)
def test_bad_config_file_exits_64_naming_the_key(tmp_path, make_bids, capsys, text, message):
    path = tmp_path / "opts.toml"
    path.write_text(text)
    code = main([str(make_bids()), str(tmp_path / "out"), "participant", "--config", str(path)])
    assert code == ExitCode.USAGE == 64
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err)


@pytest.mark.parametrize(
    ("argv", "file_text", "expected"),
    [
        (["--dl-preset", "seed001"], "", ("coll2023", ())),
        (["--dl-preset", "seed004"], "", ("lu2023", ())),
        ([], "dl_preset = 'seed004'\n", ("lu2023", ())),
        (["--cluster-features", "002"], "", ("coll2023", ("milella2023",))),
        ([], "cluster-features = '002'\n", ("coll2023", ("milella2023",))),
        (["--cluster-features", "milella2023"], "", ("coll2023", ("milella2023",))),
        (["--dl-preset", "lu2023"], "dl_preset = 'seed001'\n", ("lu2023", ())),
    ],
)
def test_former_names_are_aliases(tmp_path, argv, file_text, expected):
    extra = list(argv)
    if file_text:
        path = tmp_path / "opts.toml"
        path.write_text(file_text)
        extra += ["--config", str(path)]
    config = _config(tmp_path, *extra)
    assert (config.deep.dl_preset, config.group.cluster_features) == expected
    assert config.deep.dl_preset in DL_PRESETS


def test_help_shows_declared_defaults_and_current_names(capsys):
    parser = build_parser("neurostrat")
    helps = {action.dest: action.help for action in parser._actions}
    for declaration in declarations():
        spec, default = declaration.option, declaration.default
        if not spec.flags or spec.action is not None:
            continue
        if spec.default_text is not None:
            shown = spec.default_text
        elif default is None:
            continue
        elif declaration.multiple:
            shown = "all" if default == spec.choices else " ".join(default) or "none"
        else:
            shown = str(default)
        assert helps[declaration.name].endswith(f"(default: {shown})"), declaration.name
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--cv-folds K outer and inner folds (Turrisi et al. 2024: 3) (default: 3)" in text
    assert "--dl-preset {coll2023,lu2023}" in text and "(default: coll2023)" in text
    assert "seed 00" not in text and "seed00" not in text and " 002" not in text


def test_every_field_has_one_declaration():
    declared = [d.name for d in declarations()]
    assert len(declared) == len(set(declared)), "an option is declared twice"
    fields = [f.name for cls in SECTIONS.values() for f in dataclasses.fields(cls)]
    fields += [f.name for f in dataclasses.fields(Config) if f.name not in SECTIONS]
    assert sorted(fields) == sorted(declared), "a Config field has no declaration"
    for declaration in declarations():
        spec = declaration.option
        assert spec.help and (spec.flags or spec.position is not None or not spec.in_file)
        if spec.choices and declaration.default not in (None, dataclasses.MISSING):
            defaults = declaration.default if declaration.multiple else (declaration.default,)
            assert set(defaults) <= set(spec.choices), declaration.name
        assert set(spec.aliases.values()) <= set(spec.choices or spec.aliases.values())


def test_sections_and_processing_hash(tmp_path):
    config = _config(tmp_path, "--cv-folds", "5", "--nprocs", "2", "--skull-strip", "none")
    assert (config.group.cv_folds, config.resources.nprocs) == (5, 2)
    assert config.participant.skull_strip == "none"
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.group.cv_folds = 3
    # the hash covers what the processing computes, and not the resources
    assert config.processing_hash() == config.replace(nprocs=4, cv_folds=3).processing_hash()
    assert config.processing_hash() != config.replace(skull_strip="auto").processing_hash()
    # the flat dictionary goes back through the configuration-file checks unchanged
    flat = config.to_dict()
    assert flat["cv_folds"] == 5 and flat["skull_strip"] == "none"
    assert build_config(flat, {}) == config


def test_processing_hash_is_unchanged_for_the_defaults(tmp_path):
    # the digest of {"cnn_normalisation": "minmax", "seed": 42, "skull_strip": "auto",
    # "sloppy": false}, as before the options were split into sections: outputs are not redone
    assert _config(tmp_path).processing_hash() == "bdcffc1f0237"

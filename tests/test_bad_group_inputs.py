"""Bad input at the group level: a clear one-line error, its exit code, nothing half-written.

Each case starts from a copy of one small dataset whose participant level is "done": per
session a T1w, the preprocessed T1w, a volumes table and the QC marker, written by the real
:class:`~bids_app.derivatives.writer.DerivativesWriter` from a synthetic feature cohort (the
participant level itself takes minutes; what the group level reads is these files). One group
run trains a model bundle that the ``--apply-models`` cases apply, alter or break. A case passes
when the run exits with its code and one ``neurostrat: error:`` line holding the case's pieces
(the file or option, and the fix), prints no traceback, and leaves ``group/`` empty: the group
level checks its inputs before it writes anything.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bids_app.cli.errors import ExitCode, exit_code
from bids_app.cli.main import main
from bids_app.cli.parser import build_parser
from bids_app.deep.bundle import BundleError, read_card
from bids_app.derivatives.naming import bundle_path
from bids_app.synthetic.features import make_feature_cohort
from tests.conftest import write_feature_dataset

REPOSITORY = Path(__file__).resolve().parents[1]
#: The cheapest classification: one classifier, no SMOTE.
CHEAP = ["--classifiers", "logistic_regression", "--smote-k", "0", "--seed", "3"]
TARGET = ["--target", "diagnosis", "--positive-label", "ALS"]


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A dataset whose participant level is done, and a model bundle trained on it."""
    root = tmp_path_factory.mktemp("bad_group")
    cohort = make_feature_cohort(n_subjects=24, n_features=6, effect_size=2.0, n_sites=2, seed=5)
    bids, out = write_feature_dataset(root, cohort)
    args = [str(bids), str(out), "group", "--skip-bids-validation", "-w", str(root / "work")]
    assert main([*args, *CHEAP, *TARGET]) == 0
    shutil.move(out / "group" / "models", root / "models")
    shutil.rmtree(out / "group")
    return root


@dataclass(frozen=True)
class Case:
    """One bad group-level input.

    Parameters
    ----------
    prepare : callable
        ``prepare(bids, out, models)`` edits the copies and returns the extra arguments.
    code : ExitCode
        The expected exit code.
    needles : tuple of str
        Pieces the error line must hold (``{bids}``, ``{out}``, ``{models}`` are filled in).
    """

    prepare: Callable[[Path, Path, Path], list[str]]
    code: ExitCode
    needles: tuple[str, ...]


def _edit_participants(bids: Path, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    path = bids / "participants.tsv"
    edit(pd.read_csv(path, sep="\t")).to_csv(path, sep="\t", index=False, na_rep="n/a")


def _no_participant_outputs(bids: Path, out: Path, models: Path) -> list[str]:
    shutil.rmtree(out)
    return []


def _one_subject(bids: Path, out: Path, models: Path) -> list[str]:
    for folder in out.glob("sub-*"):
        if folder.name != "sub-001":
            shutil.rmtree(folder)
    return []


def _one_subject_selected(bids: Path, out: Path, models: Path) -> list[str]:
    return ["--participant-label", "001", *TARGET]


def _one_class(bids: Path, out: Path, models: Path) -> list[str]:
    _edit_participants(bids, lambda t: t.assign(diagnosis="CN"))
    return TARGET


def _missing_target(bids: Path, out: Path, models: Path) -> list[str]:
    return ["--target", "edss", "--threshold", "3"]


def _numeric_target_with_label(bids: Path, out: Path, models: Path) -> list[str]:
    rng = np.random.default_rng(0)
    _edit_participants(bids, lambda t: t.assign(edss=rng.choice([1.0, 2.5, 3.0, 6.5], len(t))))
    return ["--target", "edss", "--positive-label", "3"]


def _missing_group_column(bids: Path, out: Path, models: Path) -> list[str]:
    return ["--group-column", "dx"]


def _smote_too_few(bids: Path, out: Path, models: Path) -> list[str]:
    return [*TARGET, "--smote-k", "9"]


def _networks_without_target(bids: Path, out: Path, models: Path) -> list[str]:
    return ["--dl-models", "cnn8"]


def _networks_without_crops(bids: Path, out: Path, models: Path) -> list[str]:
    return [*TARGET, "--dl-models", "cnn8"]


def _apply(folder: Path) -> list[str]:
    return ["--apply-models", str(folder)]


def _not_a_bundle(bids: Path, out: Path, models: Path) -> list[str]:
    return _apply(bids)


def _altered_model(bids: Path, out: Path, models: Path) -> list[str]:
    model = next(models.rglob("*fold-1*.joblib"))
    model.write_bytes(model.read_bytes() + b"\0")
    return _apply(models)


def _manifest(models: Path, content) -> list[str]:
    (models / "manifest.json").write_text(json.dumps(content))
    return _apply(models)


def _manifest_list(bids: Path, out: Path, models: Path) -> list[str]:
    return _manifest(models, [])


def _manifest_without_models(bids: Path, out: Path, models: Path) -> list[str]:
    content = json.loads((models / "manifest.json").read_text())
    del content["models"]
    return _manifest(models, content)


def _manifest_entry_without_files(bids: Path, out: Path, models: Path) -> list[str]:
    content = json.loads((models / "manifest.json").read_text())
    for entry in content["models"].values():
        del entry["files"]
    return _manifest(models, content)


def _manifest_path_outside(bids: Path, out: Path, models: Path) -> list[str]:
    content = json.loads((models / "manifest.json").read_text())
    for entry in content["models"].values():
        entry["files"]["full"]["path"] = "../../bids/participants.tsv"
    return _manifest(models, content)


def _manifest_not_json(bids: Path, out: Path, models: Path) -> list[str]:
    (models / "manifest.json").write_text("{models: ")
    return _apply(models)


def _unseen_site(bids: Path, out: Path, models: Path) -> list[str]:
    _edit_participants(bids, lambda t: t.assign(site="siteZ"))
    return _apply(models)


CASES = {
    "group before participant": Case(
        _no_participant_outputs,
        ExitCode.NO_INPUT,
        ("{out}", "run the participant level first"),
    ),
    "group with one subject": Case(
        _one_subject, ExitCode.DATA, ("sub-001", "at least 2", "participant level")
    ),
    "group with one subject selected": Case(
        _one_subject_selected, ExitCode.DATA, ("sub-001", "at least 2", "--participant-label")
    ),
    "one class only": Case(
        _one_class, ExitCode.DATA, ("{bids}/participants.tsv", "'diagnosis'", "'CN'", "both")
    ),
    "--target names a missing column": Case(
        _missing_target,
        ExitCode.DATA,
        ("--target", "'edss'", "{bids}/participants.tsv", "'diagnosis'", "'age'"),
    ),
    "numeric target with --positive-label": Case(
        _numeric_target_with_label,
        ExitCode.DATA,
        ("{bids}/participants.tsv", "'edss'", "numeric", "--threshold"),
    ),
    "--group-column names a missing column": Case(
        _missing_group_column, ExitCode.DATA, ("{bids}/participants.tsv", "'dx'", "--group-column")
    ),
    "SMOTE with too few rows": Case(_smote_too_few, ExitCode.DATA, ("--smote-k 0",)),
    "--dl-models without --target": Case(
        _networks_without_target, ExitCode.DATA, ("--dl-models", "--target", "--positive-label")
    ),
    "--dl-models without CNN-ready crops": Case(
        _networks_without_crops,
        ExitCode.DATA,
        ("{out}", "no session has CNN-ready crops", "--dl-models", "run the participant level"),
    ),
    "--apply-models on a folder that is no bundle": Case(
        _not_a_bundle, ExitCode.DATA, ("{bids}", "manifest.json", "group/models")
    ),
    "--apply-models with an altered file": Case(
        _altered_model, ExitCode.DATA, ("{models}/", "fold-1", "SHA-256", "manifest.json")
    ),
    "--apply-models with manifest []": Case(
        _manifest_list, ExitCode.DATA, ("{models}/manifest.json", "group/models")
    ),
    "--apply-models with a manifest without models": Case(
        _manifest_without_models, ExitCode.DATA, ("{models}/manifest.json", "'models'")
    ),
    "--apply-models with a model without files": Case(
        _manifest_entry_without_files, ExitCode.DATA, ("{models}/manifest.json", "'files'")
    ),
    "--apply-models with a file outside the bundle": Case(
        _manifest_path_outside, ExitCode.DATA, ("{models}/manifest.json", "outside")
    ),
    "--apply-models with a manifest that is not JSON": Case(
        _manifest_not_json, ExitCode.DATA, ("{models}/manifest.json", "JSON")
    ),
    "--apply-models on an unseen site": Case(
        _unseen_site, ExitCode.DATA, ("'siteZ'", "--unseen-site reference", "participants.tsv")
    ),
}


@pytest.fixture
def copy(source: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    """Copies of the dataset, its outputs and the model bundle, free to edit."""
    for name in ("bids", "out", "models"):
        shutil.copytree(source / name, tmp_path / name)
    return tmp_path / "bids", tmp_path / "out", tmp_path / "models"


def _run(bids: Path, out: Path, extra: list[str], capsys) -> tuple[int, str]:
    work = out.parent / "work"
    args = [str(bids), str(out), "group", "--skip-bids-validation", "-w", str(work), *CHEAP]
    code = main([*args, *extra])
    return code, capsys.readouterr().err


@pytest.mark.slow  # about 3 s a case, and 20 s to train the bundle once
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_group_input(case: Case, copy, capsys) -> None:
    bids, out, models = copy
    code, err = _run(bids, out, case.prepare(bids, out, models), capsys)
    errors = [line for line in err.splitlines() if line.startswith("neurostrat: error: ")]
    assert (code, len(errors)) == (case.code, 1), err
    for needle in case.needles:
        assert needle.format(bids=bids, out=out, models=models) in errors[0], errors[0]
    assert "Traceback" not in err
    group = out / "group"
    assert not group.exists() or not list(group.iterdir()), sorted(group.rglob("*"))
    assert not [p for p in out.rglob("*") if ".part" in p.name]


@pytest.mark.slow
def test_unseen_site_with_reference_applies_with_a_warning(copy, capsys) -> None:
    bids, out, models = copy
    extra = _unseen_site(bids, out, models)
    code, err = _run(bids, out, [*extra, "--unseen-site", "reference"], capsys)
    assert code == 0, err
    assert "siteZ" in err and "siteA" in err  # the warning names the site and the reference
    predictions = pd.read_csv(out / "group" / "external_predictions.tsv", sep="\t")
    assert predictions["majority_vote"].notna().all()


@pytest.mark.parametrize(
    ("card", "message"),
    [
        ([], "a JSON list, not the object with 'card_version'"),
        ({"card_version": 1}, "no 'networks' listed"),
        ({"card_version": 1, "networks": {"cnn8": []}}, "'cnn8' of 'networks' is a JSON list"),
        ({"card_version": 1, "networks": {"cnn8": {"files": {}}}}, "has no 'contrasts'"),
        (
            {"card_version": 1, "networks": {"cnn8": {"files": {}, "contrasts": ["T1w"]}}},
            "lists no fold model",
        ),
        (
            {
                "card_version": 1,
                "networks": {"cnn8": {"files": {"fold-0": "a.pt"}, "contrasts": ["T1w"]}},
            },
            "has a file 'fold-0' without its 'path' and 'sha256'",
        ),
        (
            {
                "card_version": 1,
                "networks": {
                    "cnn8": {
                        "files": {"fold-0": {"path": "a.pt", "sha256": "0" * 64}},
                        "contrasts": ["T1w"],
                    }
                },
                "classes": ["1", "2", "3"],
            },
            "its networks predict 3 classes",
        ),
    ],
)
def test_a_broken_model_card_is_refused_naming_it(tmp_path: Path, card, message: str) -> None:
    path = bundle_path(tmp_path, "deep_model_card")
    path.write_text(json.dumps(card))
    with pytest.raises(BundleError, match=re.escape(message)) as caught:
        read_card(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert "group/deep_models" in str(caught.value)
    assert exit_code(caught.value) == ExitCode.DATA


# --- every option that a message of the app names exists ------------------------------------

#: Options of other programs that messages may name, with the program (which the same message
#: must name too).
OTHER_PROGRAMS = {
    "--gpus": "docker",
    "--nv": "singularity",
    "--force-reinstall": "pip",
    "--output_format": "tensorflowjs_converter",
}
_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*")
_REPORTING = {"warning", "error", "critical", "exception", "warn"}


def _messages(tree: ast.AST):
    """Yield (line, text) of the string pieces of every raise and logged warning or error."""
    for node in ast.walk(tree):
        logged = (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _REPORTING
        )
        if isinstance(node, ast.Raise) or logged:
            pieces = [
                sub.value
                for sub in ast.walk(node)
                if isinstance(sub, ast.Constant) and isinstance(sub.value, str)
            ]
            yield node.lineno, " ".join(pieces)


def named_options(root: Path) -> list[tuple[str, int, str, str]]:
    """Every ``--option`` named in an error or warning: (file, line, option, message)."""
    found = []
    for path in sorted((root / "bids_app").rglob("*.py")):
        for line, text in _messages(ast.parse(path.read_text(encoding="utf-8"))):
            found += [(str(path.relative_to(root)), line, f, text) for f in _FLAG.findall(text)]
    return found


def test_every_option_named_in_a_message_exists() -> None:
    known = {s for action in build_parser()._actions for s in action.option_strings}
    named = named_options(REPOSITORY)
    assert len(named) > 20  # the scan finds the messages
    wrong = [
        f"{file}:{line}: {flag}"
        for file, line, flag, text in named
        if flag not in known and OTHER_PROGRAMS.get(flag, "\0") not in text
    ]
    assert not wrong, wrong

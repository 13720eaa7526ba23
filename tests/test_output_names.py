"""Only the derivatives writer names files; the group level computes, the reports draw.

Issue 14's acceptance: no string literal in ``bids_app/`` outside ``bids_app/derivatives/`` ends
in a file extension, except the allowances below (each is not an output name); the group level
imports no matplotlib and builds no HTML; every group output is in the ``GROUP`` registry.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import joblib
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier

from bids_app.derivatives.naming import BUNDLES, GROUP, bundle_path, group_path
from bids_app.derivatives.writer import DerivativesWriter
from bids_app.models.persistence import ModelBundleError, load_models, manifest, model_entry

PACKAGE = Path(__file__).resolve().parents[1] / "bids_app"
EXTENSION = re.compile(
    r"\.(tsv|csv|json|png|svg|html|nii\.gz|nii|mgz|gz|joblib|pt|pth|pkl|npy|npz|h5|mat|txt|log"
    r"|yaml|yml)$"
)

#: Whole modules whose file names are not outputs of NeuroStrat.
ALLOWED_MODULES = {
    # the synthetic cohorts are test/demo *input* datasets (raw BIDS and ground truth)
    "synthetic/cohort.py": "writes the top-level files of a synthetic raw BIDS dataset",
    "synthetic/anatomy.py": "reads the label maps the synthetic anatomy starts from",
    "synthetic/sessions.py": "writes the images of a synthetic raw BIDS dataset",
    "synthetic/writing.py": "writes a synthetic raw BIDS dataset's tables and its ground truth",
    "synthetic/crops.py": "writes a synthetic raw BIDS dataset",
    # inputs read from the raw BIDS dataset
    "inputs/inventory.py": "image extensions of the raw BIDS inputs",
    "inputs/layout.py": "dataset_description.json of the raw BIDS dataset",
    "inputs/participants.py": "participants.tsv/json and sessions.tsv of the raw dataset",
    "cli/brainlife.py": "brainlife's config.json and product.json, and the raw BIDS dataset "
    "it builds from them",
    # nipype nodes write into their own scratch folder (work dir), copied out by the writer
    "participant/interfaces/anatomical.py": "scratch names in the nipype node's folder",
    "participant/interfaces/conform.py": "scratch names in the nipype node's folder",
    "participant/interfaces/features.py": "scratch names in the nipype node's folder",
    # reference data read, and temporary files of external tools
    "config/build.py": "extensions of a --config file the user gives",
    "config/recipes.py": "package data: the recipes' yaml files",
    "features/atlases.py": "atlas files read from the atlas cache",
    "features/radiomics.py": "package data: the radiomics settings yaml",
    "pretrained/hdbet.py": "HD-BET's model files read, and its temporary input/output",
    "pretrained/tfjs.py": "a TF.js model's model.json read",
    "pretrained/meshnet.py": "brainchop's model files read (model.json, colormap.json)",
    "pretrained/weights.py": "brainchop's model files checked (their SHA-256 table)",
    "preprocessing/registration.py": "ANTs' temporary transforms in a scratch folder",
    "preprocessing/templates.py": "TemplateFlow's template files read",
}
#: Single literals allowed in other modules.
ALLOWED_LITERALS = {
    # the raw dataset's participants table, the source of the group tables
    ("group/workflow.py", "participants.tsv"),
}


def _docstrings(tree: ast.AST) -> set[int]:
    nodes = [tree, *(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef))]
    ids = set()
    for node in nodes:
        body = getattr(node, "body", [])
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            ids.add(id(body[0].value))
    return ids


def _file_name_literals(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _docstrings(tree)
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in skip
        and EXTENSION.search(node.value)
        # prose (an error message that mentions participants.tsv) is not a file name
        and not re.search(r"\s", node.value)
    ]


def _modules(folder: Path = PACKAGE) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "derivatives" not in p.parts)


def test_no_file_names_outside_the_derivatives_writer():
    found = []
    for path in _modules():
        module = path.relative_to(PACKAGE).as_posix()
        if module in ALLOWED_MODULES:
            continue
        found += [
            f"{module}: {value!r}"
            for value in _file_name_literals(path)
            if (module, value) not in ALLOWED_LITERALS
        ]
    assert not found, "name files in bids_app/derivatives/naming.py:\n" + "\n".join(found)


def test_the_check_finds_a_planted_file_name(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text(
        '"""A docstring naming report.html is fine."""\n\n'
        'NAME = f"{x}_table.tsv"\nMESSAGE = "no column in participants.tsv"\n'
    )
    assert _file_name_literals(planted) == ["_table.tsv"]
    assert all((PACKAGE / module).is_file() for module in ALLOWED_MODULES)


def test_group_level_neither_draws_nor_writes_html():
    html_tag = re.compile(r"<(p|h\d|table|img|code|section|div|br)\b")
    for path in sorted((PACKAGE / "group").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not [m for m in imported if m.split(".")[0] == "matplotlib"], path.name
        if path.name != "workflow.py":
            # only the workflow hands the results to the reports
            assert not [m for m in imported if m.startswith("bids_app.reports")], path.name
        strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)]
        assert not [s for s in strings if isinstance(s, str) and html_tag.search(s)], path.name


def test_group_registry_is_complete_and_consistent():
    for key, output in GROUP.items():
        assert output.pattern.endswith("." + output.format), key
        assert output.description and "\n" not in output.description, key
        folder = output.pattern.split("/")[0]
        if output.format in ("joblib", "pt") or folder in BUNDLES:
            assert folder in BUNDLES, key
    paths = [output.pattern for output in GROUP.values()]
    assert len(set(paths)) == len(paths)
    assert group_path("features", family="volumes").as_posix() == "group/features_volumes.tsv"
    assert group_path("figure_survival_km").as_posix() == "group/figures/survival_km.png"
    with pytest.raises(ValueError, match="not a file of a model bundle"):
        bundle_path(Path("x"), "report")


def test_writer_refuses_an_output_of_another_format(tmp_path):
    writer = DerivativesWriter(tmp_path / "out", tmp_path, "h")
    with pytest.raises(ValueError, match="is a tsv output, not png"):
        writer.write_group_figure(b"png", "clusters")
    with pytest.raises(KeyError):
        writer.write_group_table(pd.DataFrame(), "no_such_output")


def test_model_bundle_round_trip_and_failed_write(tmp_path):
    writer = DerivativesWriter(tmp_path / "out", tmp_path, "h")
    model = DummyClassifier(strategy="prior").fit([[0], [1]], [0, 1])
    with writer.model_bundle("models") as bundle:
        files = {
            key: bundle.write_model(model, "model", model="v__dummy", fold=key)
            for key in ("fold-0", "full")
        }
        entry = model_entry("v", "dummy", ["a"], files, bundle.root, ["sub-1"], {})
        bundle.write_json(manifest([entry], {"target": {}}), "model_manifest")
    folder = writer.group_file("model_manifest").parent
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.*")) == [
        "manifest.json",
        "v__dummy/fold-0.joblib",
        "v__dummy/full.joblib",
    ]
    info, (loaded,) = load_models(bundle_path(folder, "model_manifest"))
    assert loaded.name == "v__dummy" and len(loaded.folds) == 1 and "target" in info
    assert isinstance(joblib.load(folder / "v__dummy" / "full.joblib"), DummyClassifier)
    # a bundle whose writing fails leaves the earlier one whole, and no staged folder
    with pytest.raises(RuntimeError), writer.model_bundle("models") as bundle:
        bundle.write_model(model, "model", model="v__dummy", fold="fold-0")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in folder.parent.iterdir()) == ["models"]
    assert load_models(bundle_path(folder, "model_manifest"))[1][0].name == "v__dummy"
    # an altered file is refused before anything is unpickled
    (folder / "v__dummy" / "full.joblib").write_bytes(b"changed")
    with pytest.raises(ModelBundleError, match="SHA-256 differs"):
        load_models(bundle_path(folder, "model_manifest"))

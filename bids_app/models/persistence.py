"""Saved models: a manifest of what each model needs, loading with checks, and applying.

A saved model is a set of fitted pipelines for one feature set and classifier: one per outer
fold (combined by majority vote on new data, Coll 2023 §2.5: "a majority voting of the seven
different models") and one refitted on all the data. The manifest records the feature columns,
the training participants, the target, the site and covariate columns, the software versions and
a SHA-256 digest of every file, which is checked before anything is unpickled.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from bids_app.errors import DataError
from bids_app.models.metrics import binary_metrics, positive_scores
from bids_app.utils.digests import file_digest

#: Version of the manifest's layout.
MANIFEST_VERSION = 1
#: What the user can do about a manifest that lacks something NeuroStrat writes.
MANIFEST_FIX = (
    "give the group/models folder as the group run wrote it (re-run that run with --target to "
    "write it again)"
)
#: Fields of a manifest's model entry that loading and applying need, and their JSON types.
MODEL_FIELDS: dict[str, type | tuple[type, ...]] = {"files": dict, "features": list}


class ModelBundleError(DataError):
    """A models folder is missing, altered or incompatible with the data."""


@dataclass
class SavedModel:
    """One feature set and classifier: fold models, full model and what they need.

    Parameters
    ----------
    name : str
        ``<feature_set>__<classifier>``.
    entry : dict
        Its manifest entry (features, covariates, site column, target...).
    folds : list
        The fold pipelines.
    full : object
        The pipeline refitted on all the data.
    """

    name: str
    entry: dict[str, Any]
    folds: list
    full: Any


def model_entry(
    feature_set: str,
    classifier: str,
    features: Sequence[str],
    files: Mapping[str, Path],
    root: Path,
    training_participants: Sequence[str],
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    """Describe one saved model for the manifest.

    Parameters
    ----------
    feature_set, classifier : str
        What the model is.
    features : sequence of str
        Its input feature columns, in order.
    files : mapping of str to Path
        ``fold-0``... and ``full`` to the written files.
    root : Path
        The models folder (paths are stored relative to it).
    training_participants : sequence of str
        Participants of the training data.
    extra : mapping
        Target, site column, covariates, harmonisation, CV metrics...

    Returns
    -------
    dict
        The entry.
    """
    return {
        "feature_set": feature_set,
        "classifier": classifier,
        "features": list(features),
        "files": {
            key: {"path": path.relative_to(root).as_posix(), "sha256": file_digest(path)}
            for key, path in files.items()
        },
        "training_participants": sorted(set(training_participants)),
        **extra,
    }


def manifest(entries: Sequence[Mapping[str, Any]], info: Mapping[str, Any]) -> dict[str, Any]:
    """Assemble the manifest of a models folder.

    Parameters
    ----------
    entries : sequence of dict
        From :func:`model_entry`.
    info : mapping
        Run-wide facts (software versions, seed, target).

    Returns
    -------
    dict
        ``{"manifest_version", **info, "models": {name: entry}}``.
    """
    models = {f"{e['feature_set']}__{e['classifier']}": dict(e) for e in entries}
    return {"manifest_version": MANIFEST_VERSION, **info, "models": models}


def read_versioned_json(
    path: Path, key: str, version: int, error: type[Exception], missing: str
) -> dict[str, Any]:
    """Read a manifest or model card and check its layout version.

    Parameters
    ----------
    path : Path
        The JSON file.
    key : str
        Its version field (``manifest_version``, ``card_version``).
    version : int
        The version this NeuroStrat reads.
    error : type of Exception
        What to raise.
    missing : str
        What to tell the user when the file is absent.

    Returns
    -------
    dict
        The content.

    Raises
    ------
    Exception
        ``error``, when the file is missing, not a JSON object or of another version.
    """
    if not path.is_file():
        raise error(f"{path.parent}: no {path.name}; {missing}")
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{path}: not valid JSON ({exc}); {missing}") from exc
    if not isinstance(content, dict):
        raise error(
            f"{path}: a JSON {type(content).__name__}, not the object with {key!r} that "
            f"NeuroStrat writes; {missing}"
        )
    if content.get(key) != version:
        raise error(
            f"{path}: {key.replace('_', ' ')} {content.get(key)!r}, this NeuroStrat reads "
            f"version {version}; use the NeuroStrat version that wrote it"
        )
    return content


def _entry_problem(
    entry: Any, fields: Mapping[str, type | tuple[type, ...]], file_key: str
) -> str | None:
    """Say what is wrong with one entry of a manifest or card; None when nothing is."""
    if not isinstance(entry, dict):
        return f"is a JSON {type(entry).__name__}, not an object"
    for name, kind in fields.items():
        if name not in entry:
            return f"has no {name!r}"
        if not isinstance(entry[name], kind):
            return f"has a {name!r} of the wrong type ({type(entry[name]).__name__})"
    if not any(key.startswith("fold-") for key in entry["files"]):
        return "lists no fold model"
    for key, record in entry["files"].items():
        if not re.fullmatch(file_key, key):
            return f"lists an unknown file {key!r}"
        if not isinstance(record, dict) or not all(
            isinstance(record.get(k), str) for k in ("path", "sha256")
        ):
            return f"has a file {key!r} without its 'path' and 'sha256'"
    return None


def check_entries(
    content: Mapping[str, Any],
    path: Path,
    key: str,
    fields: Mapping[str, type | tuple[type, ...]],
    file_key: str,
    error: type[Exception],
    fix: str,
) -> None:
    r"""Check the entries of a manifest or card before anything is read from them.

    Parameters
    ----------
    content : mapping
        The manifest or card.
    path : Path
        Its file (named in errors).
    key : str
        The field that maps names to entries (``models``, ``networks``).
    fields : mapping of str to type
        The fields every entry has, with their JSON types; ``files`` among them.
    file_key : str
        Regular expression of the keys of ``files`` (``fold-\d+``); a ``fold-`` key is
        required.
    error : type of Exception
        What to raise.
    fix : str
        What the user can do.

    Raises
    ------
    Exception
        ``error``, naming the file and the first entry at fault.

    Examples
    --------
    >>> check_entries({"models": {}}, Path("m.json"), "models", {}, "fold-\d+", ValueError, "fix")
    Traceback (most recent call last):
    ...
    ValueError: m.json: no 'models' listed; fix
    """
    entries = content.get(key)
    if not isinstance(entries, dict) or not entries:
        raise error(f"{path}: no {key!r} listed; {fix}")
    for name, entry in entries.items():
        problem = _entry_problem(entry, fields, file_key)
        if problem:
            raise error(f"{path}: the entry {name!r} of {key!r} {problem}; {fix}")


def verified_file(
    directory: Path, record: Mapping[str, str], listing: Path, error: type[Exception]
) -> Path:
    """Return a listed file after checking that it exists and its SHA-256 is unchanged.

    Parameters
    ----------
    directory : Path
        The models folder.
    record : mapping
        ``path`` (relative to ``directory``) and ``sha256``.
    listing : Path
        The manifest or card that lists it (named in errors).
    error : type of Exception
        What to raise.

    Returns
    -------
    Path
        The file, safe to load.
    """
    file = directory / record["path"]
    if not file.resolve().is_relative_to(directory.resolve()):
        raise error(
            f"{listing}: lists {record['path']!r}, outside {directory}; a bundle loads its own "
            "files only"
        )
    if not file.is_file():
        raise error(f"{file}: missing (listed in {listing})")
    if file_digest(file) != record["sha256"]:
        raise error(
            f"{file}: its SHA-256 differs from the one in {listing.name}; the file was changed "
            "after the run that saved it, so it is not loaded"
        )
    return file


def load_models(path: Path) -> tuple[dict[str, Any], list[SavedModel]]:
    """Load every model of a models folder after checking the files' digests.

    Parameters
    ----------
    path : Path
        The manifest of a ``group/models`` folder of an earlier run (its files are listed
        relative to the manifest's folder).

    Returns
    -------
    info : dict
        The manifest.
    models : list of SavedModel
        The models.

    Raises
    ------
    ModelBundleError
        If the manifest is missing, unreadable or lacks what loading needs, or a file is
        missing, altered or outside the folder.
    """
    directory = path.parent
    info = read_versioned_json(
        path,
        "manifest_version",
        MANIFEST_VERSION,
        ModelBundleError,
        "give the group/models folder of an earlier group run",
    )
    check_entries(
        info, path, "models", MODEL_FIELDS, r"fold-\d+|full", ModelBundleError, MANIFEST_FIX
    )
    if not all("full" in entry["files"] for entry in info["models"].values()):
        raise ModelBundleError(f"{path}: a model lists no 'full' file; {MANIFEST_FIX}")
    models = []
    for name, entry in info["models"].items():
        loaded = {
            key: joblib.load(verified_file(directory, record, path, ModelBundleError))
            for key, record in entry["files"].items()
        }
        folds = [loaded[k] for k in sorted(loaded) if k.startswith("fold-")]
        models.append(SavedModel(name, entry, folds, loaded["full"]))
    return info, models


def apply_model(
    model: SavedModel,
    X: pd.DataFrame,  # noqa: N803
    y: np.ndarray | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Predict new sessions with a saved model's fold models and full model.

    Parameters
    ----------
    model : SavedModel
        The model.
    X : pandas.DataFrame
        The new sessions: at least the model's feature columns, the site and the covariates.
    y : numpy.ndarray, optional
        True labels (0/1), when the new data has them.

    Returns
    -------
    predictions : pandas.DataFrame
        Per session: ``fold-<k>_pred`` and ``fold-<k>_score`` of every fold model, ``votes``
        (positive votes), ``majority_vote`` (ties go to the mean fold score's side of 0.5 for
        probabilities, of 0 for decision values), ``full_pred``, ``full_score``, and ``y_true``.
    metrics : pandas.DataFrame
        With labels: one row for the majority vote and one for the full model.

    Raises
    ------
    ModelBundleError
        If feature columns the model needs are absent.
    """
    needed = list(model.entry["features"])
    missing = [c for c in needed if c not in X]
    if missing:
        raise ModelBundleError(
            f"model {model.name}: the data lacks {len(missing)} feature column(s) it was "
            f"trained on, e.g. {missing[:5]}; run the participant level with the same --features"
        )
    predictions = pd.DataFrame(index=X.index)
    for k, fold in enumerate(model.folds):
        predictions[f"fold-{k}_pred"] = fold.predict(X)
        predictions[f"fold-{k}_score"] = positive_scores(fold, X)
    preds = predictions[[f"fold-{k}_pred" for k in range(len(model.folds))]].to_numpy()
    scores = predictions[[f"fold-{k}_score" for k in range(len(model.folds))]].to_numpy()
    cut = 0.5 if hasattr(model.folds[0], "predict_proba") else 0.0
    votes = preds.sum(axis=1)
    half = len(model.folds) / 2
    tie_break = (scores.mean(axis=1) >= cut).astype(int)
    predictions["votes"] = votes
    predictions["majority_vote"] = np.where(votes == half, tie_break, (votes > half).astype(int))
    predictions["full_pred"] = model.full.predict(X)
    predictions["full_score"] = positive_scores(model.full, X)
    rows = []
    if y is not None:
        predictions["y_true"] = y
        rows.append(
            {
                "model": model.name,
                "rule": "majority vote of the fold models",
                **binary_metrics(y, predictions["majority_vote"], scores.mean(axis=1)),
            }
        )
        rows.append(
            {
                "model": model.name,
                "rule": "model refitted on all training data",
                **binary_metrics(y, predictions["full_pred"], predictions["full_score"]),
            }
        )
    return predictions, pd.DataFrame(rows)

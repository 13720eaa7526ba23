"""Open and validate the input BIDS dataset."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from pathlib import Path

from bids import BIDSLayout, BIDSLayoutIndexer
from bids.exceptions import BIDSValidationError

from bids_app.errors import InvalidBIDSError, NoInputError

LOGGER = logging.getLogger(__name__)
_MAX_REPORTED = 5


def check_dataset_root(bids_dir: Path) -> None:
    """Fail early when ``bids_dir`` is missing or is not a BIDS dataset root.

    Parameters
    ----------
    bids_dir : Path
        The input folder.

    Raises
    ------
    NoInputError
        If the folder does not exist or is a file (exit 66).
    InvalidBIDSError
        If ``dataset_description.json`` is missing, not UTF-8 JSON, not an object, or declares
        a derivatives dataset (exit 16).
    """
    if bids_dir.exists() and not bids_dir.is_dir():
        raise NoInputError(f"input {bids_dir} is a file, not a folder; give the BIDS root folder")
    if not bids_dir.is_dir():
        raise NoInputError(f"input folder {bids_dir} does not exist; give an existing BIDS root")
    description = bids_dir / "dataset_description.json"
    if not description.is_file():
        raise InvalidBIDSError(
            f"{bids_dir} is not a BIDS dataset: {description.name} is missing; give the "
            "dataset's root folder, the one that holds it "
            "(see https://bids-specification.readthedocs.io)"
        )
    try:
        content = json.loads(description.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise InvalidBIDSError(f"{description} is not UTF-8 text; save it as UTF-8") from exc
    except json.JSONDecodeError as exc:
        raise InvalidBIDSError(f"{description} is not valid JSON ({exc}); fix it") from exc
    if not isinstance(content, dict):
        raise InvalidBIDSError(
            f"{description} must hold a JSON object; write "
            '{"Name": ..., "BIDSVersion": ..., "DatasetType": "raw"}'
        )
    if content.get("DatasetType") == "derivative":
        raise InvalidBIDSError(
            f"{description} declares a derivatives dataset (DatasetType 'derivative'); give the "
            "raw dataset as bids_dir (and pass precomputed masks with --derivatives)"
        )


def run_bids_validator(bids_dir: Path) -> list[str]:
    """Validate with the ``bids-validator`` command (node, 1.x) and return its errors.

    Parameters
    ----------
    bids_dir : Path
        The dataset root.

    Returns
    -------
    list of str
        One line per error (code, reason, first file); empty when valid.

    Raises
    ------
    FileNotFoundError
        If the command is not installed.
    """
    command = shutil.which("bids-validator")
    if command is None:
        raise FileNotFoundError("bids-validator")
    result = subprocess.run(
        [command, str(bids_dir), "--json", "--ignoreNiftiHeaders"],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        return [f"bids-validator failed: {(result.stderr or result.stdout).strip()[:500]}"]
    errors = []
    for issue in report.get("issues", {}).get("errors", []):
        files = [
            (f.get("file") or {}).get("relativePath", "") for f in issue.get("files") or [] if f
        ]
        where = f" (e.g. {files[0]})" if files and files[0] else ""
        errors.append(f"[{issue.get('key', 'ERROR')}] {issue.get('reason', '')}{where}")
    return errors


def validate_dataset(bids_dir: Path) -> None:
    """Validate ``bids_dir`` against the BIDS specification.

    Uses the ``bids-validator`` command when it is installed, else pybids' own checks.

    Parameters
    ----------
    bids_dir : Path
        The dataset root.

    Raises
    ------
    InvalidBIDSError
        If the dataset is not valid, with the first errors in the message.
    """
    try:
        errors = run_bids_validator(bids_dir)
        tool = "bids-validator"
    except FileNotFoundError:
        LOGGER.info("bids-validator is not installed: validating with pybids only")
        tool = "pybids"
        errors = []
        try:
            layout = BIDSLayout(bids_dir, validate=True, indexer=_indexer(validate=True))
        except BIDSValidationError as exc:
            errors = [str(exc)]
        else:
            if not layout.get_subjects():
                errors = ["no sub-<label> folder with valid BIDS files"]
    if errors:
        shown = "; ".join(errors[:_MAX_REPORTED])
        more = f" (and {len(errors) - _MAX_REPORTED} more)" if len(errors) > _MAX_REPORTED else ""
        raise InvalidBIDSError(
            f"{bids_dir} is not valid BIDS ({tool}): {shown}{more}; fix these or run with "
            "--skip-bids-validation"
        )
    LOGGER.info("%s: %s is valid BIDS", tool, bids_dir)


def _indexer(validate: bool) -> BIDSLayoutIndexer:
    """Index file names only: a broken JSON sidecar fails its session, not the index."""
    return BIDSLayoutIndexer(validate=validate, index_metadata=False)


def load_layout(bids_dir: Path) -> BIDSLayout:
    """Index the dataset with pybids.

    Files that BIDS does not define (e.g. fMRIPrep-style ``label-lesion_roi`` masks) are kept in
    the index; validity is checked separately by :func:`validate_dataset`. JSON sidecars are
    not read here (the inventory checks those of the images it uses), so that one invalid
    sidecar cannot stop the whole dataset.

    Parameters
    ----------
    bids_dir : Path
        The dataset root.

    Returns
    -------
    bids.BIDSLayout
        The layout.

    Raises
    ------
    InvalidBIDSError
        If pybids cannot index the folder.
    """
    try:
        return BIDSLayout(bids_dir, validate=False, indexer=_indexer(validate=False))
    except BIDSValidationError as exc:
        raise InvalidBIDSError(f"{bids_dir}: {exc}") from exc

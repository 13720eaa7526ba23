"""``python -m bids_app.cli.brainlife``: NeuroStrat as a brainlife.io App.

brainlife.io runs an App's ``main`` (here ``brainlife/main``) in a working folder that holds
``config.json``: the paths of the input data objects (``t1``, and optionally ``flair`` and
``t2``), the App's options, and ``_inputs``, brainlife's description of each input (its
``meta`` gives the subject and session). This module turns that folder into a run of the
participant level::

    <working folder>/
        config.json      (from brainlife)
        bids/            a one-subject BIDS dataset: links to the inputs, sidecars from meta
        work/            NeuroStrat's work folder, removed after a successful run
        output/          the BIDS-Derivatives dataset (the App's output)
        product.json     messages and QC metrics for brainlife's UI

Relative paths in ``config.json`` are relative to the working folder, as brainlife writes them.
Exit status: that of ``neurostrat`` (:class:`bids_app.cli.errors.ExitCode`); a ``config.json``
error ends the run before it starts, with 66 for a missing input and 64 for a bad option.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bids_app import __version__
from bids_app.cli import main as cli_main
from bids_app.cli.errors import ExitCode, error_message, exit_code
from bids_app.cli.parser import build_parser
from bids_app.config.options import Declaration, declarations
from bids_app.derivatives.naming import build_path, output_path
from bids_app.errors import NeuroStratError, NoInputError, UsageError

PROG = "neurostrat-brainlife"
CONFIG_NAME = "config.json"
#: Folders and file the App writes in its working folder.
BIDS_FOLDER = "bids"
WORK_FOLDER = "work"
OUTPUT_FOLDER = "output"
PRODUCT_NAME = "product.json"

#: config.json keys of the input images (files of brainlife's neuro/anat/t1w, neuro/anat/flair
#: and neuro/anat/t2w datatypes) and their BIDS suffixes; ``t1`` is required.
IMAGES = {"t1": "T1w", "flair": "FLAIR", "t2": "T2w"}

#: NeuroStrat options a brainlife user may set, by their declared names
#: (:mod:`bids_app.config.options`); options that take a path or concern the group level are
#: left out, since a brainlife App gets its files as inputs and runs one subject.
OPTIONS = (
    "skull_strip",
    "hdbet_mode",
    "segmentation",
    "features",
    "atlas",
    "radiomics_rois",
    "thickness_preset",
    "sloppy",
    "seed",
    "nprocs",
    "omp_nthreads",
    "mem_gb",
)


def read_config(path: Path) -> dict[str, Any]:
    """Read brainlife's ``config.json``.

    Parameters
    ----------
    path : Path
        The file.

    Returns
    -------
    dict
        Its content.

    Raises
    ------
    NoInputError
        If the file does not exist (exit 66).
    UsageError
        If it is not a JSON object (exit 64).
    """
    if not path.is_file():
        raise NoInputError(f"{path} does not exist; run the App in brainlife's working folder")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise UsageError(f"{path}: the top level must be an object")
    return config


def bids_label(value: Any) -> str:
    """Return a brainlife subject or session name as a BIDS label (letters and digits).

    Parameters
    ----------
    value : Any
        The name, as brainlife's ``meta`` gives it.

    Returns
    -------
    str
        The name without a ``sub-``/``ses-`` prefix and without other characters than
        letters and digits (as brainlife's own ``bl2bids`` does); may be empty.

    Examples
    --------
    >>> bids_label("sub-A_12"), bids_label(7), bids_label("ses-pre op")
    ('A12', '7', 'preop')
    """
    text = str(value).removeprefix("sub-").removeprefix("ses-")
    return re.sub(r"[^A-Za-z0-9]", "", text)


def _input_meta(config: Mapping[str, Any], key: str) -> dict[str, Any]:
    """Return the ``meta`` of the ``_inputs`` entry that provides ``key`` (empty if none)."""
    for entry in config.get("_inputs") or []:
        if isinstance(entry, dict) and key in (entry.get("keys") or ()):
            return dict(entry.get("meta") or {})
    return {}


def subject_session(config: Mapping[str, Any]) -> tuple[str, str | None]:
    """Return the subject and session labels of the run.

    Parameters
    ----------
    config : mapping
        The content of ``config.json``.

    Returns
    -------
    tuple of (str, str or None)
        The subject from the ``meta`` of the T1w's ``_inputs`` entry (else of the first entry),
        ``"01"`` when there is none; the session likewise, None when there is none.

    Examples
    --------
    >>> subject_session({"_inputs": [{"meta": {"subject": "A-12", "session": "1"}}]})
    ('A12', '1')
    >>> subject_session({})
    ('01', None)
    """
    inputs = [entry for entry in config.get("_inputs") or [] if isinstance(entry, dict)]
    meta = _input_meta(config, "t1") or (dict(inputs[0].get("meta") or {}) if inputs else {})
    subject = bids_label(meta.get("subject", "")) or "01"
    session = bids_label(meta.get("session", "")) or None
    return subject, session


def _image_path(config: Mapping[str, Any], key: str) -> Path:
    """Return the existing, absolute path of an input image named in ``config.json``."""
    value = config[key]
    if not isinstance(value, str) or not value:
        raise UsageError(f"{CONFIG_NAME}: {key!r} must be the path of one NIfTI file")
    path = Path(value).expanduser().resolve()
    if not path.is_file():
        raise NoInputError(f"{CONFIG_NAME}: the {key!r} file {value} does not exist")
    if not path.name.endswith((".nii.gz", ".nii")):
        raise UsageError(f"{CONFIG_NAME}: the {key!r} file {value} is not a NIfTI (.nii[.gz])")
    return path


def _sidecar(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Return the BIDS sidecar fields of a brainlife ``meta``: its capitalised keys.

    brainlife keeps an image's sidecar in ``meta`` beside its own lower-case keys (subject,
    session, run, ``nifti_headers``...), which BIDS would read as conflicting entities.
    """
    return {key: value for key, value in meta.items() if key[:1].isupper()}


def _option_arguments(declaration: Declaration, value: Any) -> list[str]:
    """Return the command-line arguments that set an option to a ``config.json`` value."""
    spec = declaration.option
    flag = spec.flags[0]
    if value is None or value == "" or value == []:
        return []  # an optional parameter the user left empty: NeuroStrat's default
    if spec.action == "store_true":
        if not isinstance(value, bool):
            raise UsageError(f"{CONFIG_NAME}: {declaration.name!r} must be true or false")
        return [flag] if value else []
    if declaration.multiple:
        # brainlife's parameters are scalars: a list may also come as "a, b" or "a b"
        items = value if isinstance(value, list) else re.split(r"[,\s]+", str(value).strip())
        return [flag, *(str(item) for item in items)]
    return [flag, str(value)]


def bids_from_config(config: Mapping[str, Any], bids_dir: Path) -> list[str]:
    """Write a one-subject BIDS dataset from ``config.json``; return the NeuroStrat options.

    The images are linked (``sub-<label>/[ses-<label>/]anat/sub-<label>[_ses-<label>]_T1w``,
    ``_FLAIR``, ``_T2w``), each with a sidecar from its ``_inputs`` meta when that has BIDS
    fields; ``dataset_description.json``, ``participants.tsv`` and a README complete the
    dataset. An existing ``bids_dir`` is replaced.

    Parameters
    ----------
    config : mapping
        The content of ``config.json``: image paths (relative to the current folder),
        options named as in :data:`OPTIONS`, and brainlife's own keys (``_inputs``...).
    bids_dir : Path
        The dataset root to write.

    Returns
    -------
    list of str
        The command-line options of the config's options, e.g. ``["--sloppy"]``.

    Raises
    ------
    NoInputError
        If ``t1`` is missing, or an image file does not exist (exit 66).
    UsageError
        If a key is neither an image, an option nor brainlife's, or a value has the wrong
        type (exit 64).
    """
    allowed = {d.name: d for d in declarations() if d.name in OPTIONS}
    for key in config:
        if not key.startswith("_") and key not in IMAGES and key not in allowed:
            raise UsageError(
                f"{CONFIG_NAME}: unknown key {key!r}; use the images {', '.join(IMAGES)} or "
                f"the options {', '.join(OPTIONS)}"
            )
    if config.get("t1") is None:
        raise NoInputError(f"{CONFIG_NAME}: no 't1' key (the path of the neuro/anat/t1w input)")
    images = {key: _image_path(config, key) for key in IMAGES if config.get(key) is not None}
    parser, arguments = build_parser(), []
    for name in (name for name in allowed if name in config):
        option = _option_arguments(allowed[name], config[name])
        try:  # NeuroStrat's own parser checks the value, and the error names the key
            parser.parse_args([str(bids_dir), "output", "participant", *option])
        except UsageError as exc:
            raise UsageError(f"{CONFIG_NAME}: bad {name!r} {config[name]!r}: {exc}") from exc
        arguments += option

    from bids_app.derivatives.writer import BIDS_VERSION  # here: config errors stay fast

    subject, session = subject_session(config)
    entities = {"sub": subject, "ses": session}
    shutil.rmtree(bids_dir, ignore_errors=True)
    for key, source in images.items():
        extension = ".nii.gz" if source.name.endswith(".nii.gz") else ".nii"
        image = bids_dir / build_path(entities, IMAGES[key], extension)
        image.parent.mkdir(parents=True, exist_ok=True)
        image.symlink_to(source)
        sidecar = _sidecar(_input_meta(config, key))
        if sidecar:
            image.with_name(image.name.removesuffix(extension) + ".json").write_text(
                json.dumps(sidecar, indent=2)
            )
    description = {"Name": "brainlife.io input", "BIDSVersion": BIDS_VERSION, "DatasetType": "raw"}
    (bids_dir / "dataset_description.json").write_text(json.dumps(description, indent=2))
    (bids_dir / "participants.tsv").write_text(f"participant_id\nsub-{subject}\n")
    (bids_dir / "README").write_text(f"Written by {PROG} from brainlife's {CONFIG_NAME}.\n")
    return arguments


def product(
    code: int, subject: str, session: str | None, output_dir: Path, error: str
) -> dict[str, Any]:
    """Return the content of ``product.json``: messages for brainlife's UI and a summary.

    Parameters
    ----------
    code : int
        The exit status.
    subject, session : str and str or None
        The labels of the run.
    output_dir : Path
        The derivatives dataset (its QC metrics are summarised when present).
    error : str
        The error message of a run that did not start; empty otherwise.

    Returns
    -------
    dict
        ``{"brainlife": [messages], "exit_code": ..., "qc": {...}, ...}``: one success or
        error message, then a warning per QC flag.
    """
    entities = {"sub": subject, "ses": session}
    qc_file = output_dir / output_path("qc_metrics", entities)
    qc = json.loads(qc_file.read_text(encoding="utf-8")) if qc_file.is_file() else {}
    name = f"sub-{subject}" + (f" ses-{session}" if session else "")
    if code == ExitCode.OK:
        messages = [{"type": "success", "msg": f"NeuroStrat {__version__} processed {name}"}]
    else:
        detail = error or f"see {OUTPUT_FOLDER}/logs"
        messages = [{"type": "error", "msg": f"NeuroStrat failed (exit {code}): {detail}"}]
    messages += [{"type": "warning", "msg": flag} for flag in qc.get("Flags", {}).values()]
    return {
        "brainlife": messages,
        "exit_code": code,
        "neurostrat_version": __version__,
        "subject": subject,
        "session": session,
        "qc": qc.get("Metrics", {}),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the participant level on brainlife's working folder (the current folder).

    Parameters
    ----------
    argv : sequence of str, optional
        ``[config.json path]``; ``sys.argv[1:]`` when None.

    Returns
    -------
    int
        The exit status (:class:`bids_app.cli.errors.ExitCode`).
    """
    parser = argparse.ArgumentParser(prog="python -m bids_app.cli.brainlife", description=__doc__)
    parser.add_argument("config", nargs="?", default=CONFIG_NAME, type=Path, help="config.json")
    options = parser.parse_args(argv)
    here = Path.cwd()
    output_dir, work_dir = here / OUTPUT_FOLDER, here / WORK_FOLDER
    subject, session, error = "01", None, ""
    try:
        config = read_config(options.config)
        subject, session = subject_session(config)
        arguments = bids_from_config(config, here / BIDS_FOLDER)
    except NeuroStratError as exc:
        print(error_message(exc, PROG), file=sys.stderr)
        code, error = int(exit_code(exc)), " ".join(str(exc).split())
    else:
        bids = [str(here / BIDS_FOLDER), str(output_dir), "participant", "-w", str(work_dir)]
        code = cli_main.main([*bids, *arguments])
        if code == ExitCode.OK:
            shutil.rmtree(work_dir, ignore_errors=True)
    summary = product(code, subject, session, output_dir, error)
    (here / PRODUCT_NAME).write_text(json.dumps(summary, indent=2) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())

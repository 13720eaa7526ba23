"""The pre-flight inventory: what each subject and session has, before any processing."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import pandas as pd
from bids import BIDSLayout

from bids_app.errors import NoMatchError
from bids_app.preprocessing.qmaps import PARAMETRIC_SUFFIXES, WEIGHTED_SUFFIXES, map_range

_IMAGE_EXTENSIONS = [".nii", ".nii.gz"]
#: Lesion masks as fMRIPrep names them (``label-lesion_roi``), plus the ``_mask`` variant.
_LESION_PATTERNS = ("*_label-lesion_roi.nii*", "*_label-lesion_mask.nii*")
#: Contrasts the inventory always looks for, besides the T1w (co-registered when present).
OPTIONAL_CONTRASTS = ("FLAIR", "T2w")
#: How the T1w of a session with several is chosen (the inventory log repeats it).
T1W_RULE = "the finest voxels (smallest voxel volume), then the lowest run number, then the name"
_RUN = re.compile(r"_run-(\d+)_")


@dataclass(frozen=True)
class SessionInputs:
    """The input files of one subject and session.

    Parameters
    ----------
    subject : str
        Label without ``sub-``.
    session : str or None
        Label without ``ses-``; None for datasets without sessions.
    t1w, flair, t2w, lesion_masks : tuple of Path
        Files found, the one used first (:data:`T1W_RULE`).
    extra : mapping of str to tuple of Path
        Files of the other contrasts asked for (``--dl-contrasts``, e.g. ``T1map``) by suffix,
        the one used first; a suffix without files maps to an empty tuple.
    anatomical : bool
        Whether the session has an ``anat`` folder with files; a session without one
        (functional-only, MEG) is not applicable, not a failure.
    problem : str or None
        Why a session with anatomical images cannot be processed (no T1w, or a JSON sidecar
        that is not valid JSON), naming the file and the fix.
    """

    subject: str
    session: str | None
    t1w: tuple[Path, ...] = ()
    flair: tuple[Path, ...] = ()
    t2w: tuple[Path, ...] = ()
    lesion_masks: tuple[Path, ...] = field(default=())
    extra: Mapping[str, tuple[Path, ...]] = field(default_factory=dict)
    anatomical: bool = True
    problem: str | None = None

    @property
    def entities(self) -> dict[str, str]:
        """BIDS entities that name this subject and session's outputs."""
        return {"sub": self.subject, **({"ses": self.session} if self.session else {})}

    @property
    def key(self) -> str:
        """``sub-X`` or ``sub-X_ses-Y``, for messages and summaries."""
        return "_".join(f"{k}-{v}" for k, v in self.entities.items())

    @property
    def contrasts(self) -> dict[str, tuple[Path, ...]]:
        """Files of every contrast besides the T1w, by suffix: FLAIR, T2w, then the extra."""
        return {"FLAIR": self.flair, "T2w": self.t2w, **self.extra}

    @property
    def others(self) -> dict[str, Path]:
        """The file used of each contrast present besides the T1w (co-registered to it)."""
        return {suffix: files[0] for suffix, files in self.contrasts.items() if files}

    @property
    def missing(self) -> list[str]:
        """What is missing: the required T1w, or the optional contrasts."""
        absent = []
        if not self.t1w:
            absent.append("T1w (required)")
        absent += [name for name, files in self.contrasts.items() if not files]
        if not self.lesion_masks:
            absent.append("lesion mask")
        return absent

    @property
    def usable(self) -> bool:
        """True when the session has the required T1w."""
        return bool(self.t1w)

    @property
    def status(self) -> str:
        """``ready``, ``not applicable`` (no anatomy), ``no T1w`` or ``invalid`` (a problem)."""
        if not self.anatomical:
            return "not applicable"
        if not self.t1w:
            return "no T1w"
        return "invalid" if self.problem else "ready"


def _voxel_volume(path: Path) -> float:
    """Return the voxel volume (mm³) from the header; infinite when it cannot be read."""
    try:
        zooms = nib.load(path).header.get_zooms()[:3]
    except Exception:  # any unreadable file ranks last; loading it later names the error
        return math.inf
    volume = math.prod(float(zoom) for zoom in zooms)
    return volume if len(zooms) == 3 and volume > 0 else math.inf


def _preference(path: Path) -> tuple[float, int, str]:
    """Return the sort key of :data:`T1W_RULE`: voxel volume, run number (none: 0), name."""
    run = _RUN.search(path.name)
    return _voxel_volume(path), int(run.group(1)) if run else 0, path.name


def _files(layout: BIDSLayout, subject: str, session: str | None, suffix: str) -> tuple[Path, ...]:
    query = {"subject": subject, "datatype": "anat", "suffix": suffix}
    query["session"] = session if session else []
    found = layout.get(return_type="filename", extension=_IMAGE_EXTENSIONS, **query)
    return tuple(sorted((Path(f) for f in found), key=_preference))


def _sidecar_problem(images: Sequence[Path]) -> str | None:
    """Check the JSON sidecars of the images a session uses; return the first problem."""
    for image in images:
        sidecar = image.with_name(re.sub(r"\.nii(\.gz)?$", ".json", image.name))
        if not sidecar.is_file():
            continue
        try:
            content = json.loads(sidecar.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            return f"{sidecar} is not UTF-8 text; save it as UTF-8"
        except json.JSONDecodeError as exc:
            return f"{sidecar} is not valid JSON ({exc}); fix or remove this sidecar"
        if not isinstance(content, dict):
            return f"{sidecar} must hold a JSON object; fix or remove this sidecar"
    return None


def _no_t1w(bids_dir: Path, subject: str, session: str | None) -> str:
    stem = f"sub-{subject}" + (f"_ses-{session}" if session else "")
    anat = bids_dir / f"sub-{subject}" / (f"ses-{session}" if session else "") / "anat"
    return (
        f"{anat} has no T1w image; add {stem}_T1w.nii.gz, or leave this session out with "
        "--participant-label/--session-label"
    )


def _has_anatomy(bids_dir: Path, subject: str, session: str | None) -> bool:
    anat = bids_dir / f"sub-{subject}" / (f"ses-{session}" if session else "") / "anat"
    return anat.is_dir() and any(anat.iterdir())


def _lesion_masks(bids_dir: Path, subject: str, session: str | None) -> tuple[Path, ...]:
    anat = bids_dir / f"sub-{subject}" / (f"ses-{session}" if session else "") / "anat"
    masks = {path for pattern in _LESION_PATTERNS for path in anat.glob(pattern)}
    return tuple(sorted(masks))


def build_inventory(
    layout: BIDSLayout,
    participant_label: Sequence[str] = (),
    session_label: Sequence[str] = (),
    contrasts: Sequence[str] = (),
) -> list[SessionInputs]:
    """List the inputs of every selected subject and session.

    Parameters
    ----------
    layout : bids.BIDSLayout
        The indexed input dataset.
    participant_label : sequence of str
        Subjects to keep (without ``sub-``); empty keeps all.
    session_label : sequence of str
        Sessions to keep (without ``ses-``); empty keeps all.
    contrasts : sequence of str
        Suffixes to look for besides the T1w and :data:`OPTIONAL_CONTRASTS` (the
        ``--dl-contrasts``, e.g. ``T1map``); the others are ignored.

    Returns
    -------
    list of SessionInputs
        Sorted by subject then session.

    Raises
    ------
    NoMatchError
        If a requested subject or session does not exist, or the filters leave nothing
        (exit 18).
    """
    bids_dir = Path(layout.root)
    subjects = sorted(layout.get_subjects())
    if participant_label:
        unknown = sorted(set(participant_label) - set(subjects))
        if unknown:
            raise NoMatchError(
                f"participant label(s) {unknown} not found in {bids_dir} "
                f"(it has {len(subjects)} subjects, e.g. {subjects[:3]}); "
                "check --participant-label"
            )
        subjects = [s for s in subjects if s in participant_label]
    if session_label:
        _check_sessions(layout, bids_dir, session_label)
    inventory = []
    for subject in subjects:
        sessions = sorted(layout.get_sessions(subject=subject)) or [None]
        if session_label:
            sessions = [s for s in sessions if s in session_label]
        for session in sessions:
            t1w = _files(layout, subject, session, "T1w")
            flair = _files(layout, subject, session, "FLAIR")
            t2w = _files(layout, subject, session, "T2w")
            extra = {
                suffix: _files(layout, subject, session, suffix)
                for suffix in contrasts
                if suffix not in ("T1w", *OPTIONAL_CONTRASTS)
            }
            anatomical = _has_anatomy(bids_dir, subject, session)
            inventory.append(
                SessionInputs(
                    subject=subject,
                    session=session,
                    t1w=t1w,
                    flair=flair,
                    t2w=t2w,
                    extra=extra,
                    lesion_masks=_lesion_masks(bids_dir, subject, session),
                    anatomical=anatomical,
                    problem=_sidecar_problem(
                        [files[0] for files in (t1w, flair, t2w, *extra.values()) if files]
                    )
                    if t1w or not anatomical
                    else _no_t1w(bids_dir, subject, session),
                )
            )
    if not inventory:
        raise NoMatchError(
            f"no subject/session of {bids_dir} matches participant label(s) "
            f"{list(participant_label) or 'any'} and session label(s) {list(session_label)}; "
            "check the labels"
        )
    return inventory


def _check_sessions(layout: BIDSLayout, bids_dir: Path, session_label: Sequence[str]) -> None:
    """Fail when ``--session-label`` names sessions the dataset does not have."""
    sessions = sorted(layout.get_sessions())
    if not sessions:
        raise NoMatchError(
            f"{bids_dir} has no sessions (no ses-<label> folders); drop --session-label"
        )
    unknown = sorted(set(session_label) - set(sessions))
    if unknown:
        raise NoMatchError(
            f"session label(s) {unknown} not found in {bids_dir}; choose among {sessions}"
        )


def choice_notes(inventory: Sequence[SessionInputs]) -> list[str]:
    """Say which T1w each session with several uses, and why (:data:`T1W_RULE`).

    Parameters
    ----------
    inventory : sequence of SessionInputs
        From :func:`build_inventory`.

    Returns
    -------
    list of str
        One line per session with more than one T1w.
    """
    return [
        f"{item.key}: {len(item.t1w)} T1w images; using {item.t1w[0].name} (rule: {T1W_RULE})"
        for item in inventory
        if len(item.t1w) > 1
    ]


def contrast_warnings(
    inventory: Sequence[SessionInputs],
    contrasts: Sequence[str],
    ranges: Mapping[str, tuple[float, float]] | None = None,
) -> list[str]:
    """Warn about the ``--dl-contrasts`` that are not BIDS suffixes or no session has.

    A suffix that BIDS does not define (e.g. a user's ``NDImap``) is accepted: it is a
    quantitative map when it has a range, else a weighted image.

    Parameters
    ----------
    inventory : sequence of SessionInputs
        From :func:`build_inventory` (with ``contrasts``).
    contrasts : sequence of str
        The ``--dl-contrasts``.
    ranges : mapping, optional
        The ``--map-range`` ranges by suffix.

    Returns
    -------
    list of str
        One line per such contrast.
    """
    notes = []
    for suffix in contrasts:
        if suffix not in (*WEIGHTED_SUFFIXES, *PARAMETRIC_SUFFIXES):
            value_range = map_range(suffix, ranges)
            kind = (
                "a weighted image (give --map-range to take it as a quantitative map)"
                if value_range is None
                else f"a quantitative map of range {value_range[0]:g}-{value_range[1]:g}"
            )
            notes.append(f"--dl-contrasts {suffix}: not a BIDS anatomical suffix; taken as {kind}")
        with_files = sum(bool(item.contrasts.get(suffix, item.t1w)) for item in inventory)
        if not with_files:
            notes.append(
                f"--dl-contrasts {suffix}: no selected session has a *_{suffix} image in anat; "
                "the networks need it in every session they train on"
            )
    return notes


def inventory_table(inventory: Sequence[SessionInputs]) -> pd.DataFrame:
    """Tabulate the inventory: one row per subject and session.

    Parameters
    ----------
    inventory : sequence of SessionInputs
        From :func:`build_inventory`.

    Returns
    -------
    pandas.DataFrame
        Columns ``subject, session, T1w, FLAIR, T2w``, one per extra contrast, then
        ``lesion_mask, usable, missing, status, T1w_used, problem`` (counts of files per
        contrast, :attr:`SessionInputs.status`, the T1w used and why the session cannot be
        processed).
    """
    rows = [
        {
            "subject": item.subject,
            "session": item.session,
            "T1w": len(item.t1w),
            **{suffix: len(files) for suffix, files in item.contrasts.items()},
            "lesion_mask": len(item.lesion_masks),
            "usable": item.usable,
            "missing": ", ".join(item.missing) if item.anatomical else "",
            "status": item.status,
            "T1w_used": item.t1w[0].name if item.t1w else "",
            "problem": item.problem or "",
        }
        for item in inventory
    ]
    return pd.DataFrame(rows)

"""The pre-flight inventory: what each subject and session has, before any processing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from bids import BIDSLayout

from bids_app.errors import NoMatchError

_IMAGE_EXTENSIONS = [".nii", ".nii.gz"]
#: Lesion masks as fMRIPrep names them (``label-lesion_roi``), plus the ``_mask`` variant.
_LESION_PATTERNS = ("*_label-lesion_roi.nii*", "*_label-lesion_mask.nii*")


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
        Files found, sorted (``run-1`` first).
    """

    subject: str
    session: str | None
    t1w: tuple[Path, ...] = ()
    flair: tuple[Path, ...] = ()
    t2w: tuple[Path, ...] = ()
    lesion_masks: tuple[Path, ...] = field(default=())

    @property
    def entities(self) -> dict[str, str]:
        """BIDS entities that name this subject and session's outputs."""
        return {"sub": self.subject, **({"ses": self.session} if self.session else {})}

    @property
    def key(self) -> str:
        """``sub-X`` or ``sub-X_ses-Y``, for messages and summaries."""
        return "_".join(f"{k}-{v}" for k, v in self.entities.items())

    @property
    def missing(self) -> list[str]:
        """What is missing: the required T1w, or the optional contrasts."""
        absent = []
        if not self.t1w:
            absent.append("T1w (required)")
        absent += [name for name, files in (("FLAIR", self.flair), ("T2w", self.t2w)) if not files]
        if not self.lesion_masks:
            absent.append("lesion mask")
        return absent

    @property
    def usable(self) -> bool:
        """True when the session has the required T1w."""
        return bool(self.t1w)


def _files(layout: BIDSLayout, subject: str, session: str | None, suffix: str) -> tuple[Path, ...]:
    query = {"subject": subject, "datatype": "anat", "suffix": suffix}
    query["session"] = session if session else []
    found = layout.get(return_type="filename", extension=_IMAGE_EXTENSIONS, **query)
    return tuple(sorted(Path(f) for f in found))


def _lesion_masks(bids_dir: Path, subject: str, session: str | None) -> tuple[Path, ...]:
    anat = bids_dir / f"sub-{subject}" / (f"ses-{session}" if session else "") / "anat"
    masks = {path for pattern in _LESION_PATTERNS for path in anat.glob(pattern)}
    return tuple(sorted(masks))


def build_inventory(
    layout: BIDSLayout,
    participant_label: Sequence[str] = (),
    session_label: Sequence[str] = (),
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

    Returns
    -------
    list of SessionInputs
        Sorted by subject then session.

    Raises
    ------
    NoMatchError
        If a requested subject does not exist, or the filters leave nothing (exit 18).
    """
    bids_dir = Path(layout.root)
    subjects = sorted(layout.get_subjects())
    if participant_label:
        unknown = sorted(set(participant_label) - set(subjects))
        if unknown:
            raise NoMatchError(
                f"participant label(s) {unknown} not found in {bids_dir} "
                f"(it has {len(subjects)} subjects, e.g. {subjects[:3]})"
            )
        subjects = [s for s in subjects if s in participant_label]
    inventory = []
    for subject in subjects:
        sessions = sorted(layout.get_sessions(subject=subject)) or [None]
        if session_label:
            sessions = [s for s in sessions if s in session_label]
        for session in sessions:
            inventory.append(
                SessionInputs(
                    subject=subject,
                    session=session,
                    t1w=_files(layout, subject, session, "T1w"),
                    flair=_files(layout, subject, session, "FLAIR"),
                    t2w=_files(layout, subject, session, "T2w"),
                    lesion_masks=_lesion_masks(bids_dir, subject, session),
                )
            )
    if not inventory:
        raise NoMatchError(
            f"no subject/session of {bids_dir} matches participant label(s) "
            f"{list(participant_label) or 'any'} and session label(s) {list(session_label)}"
        )
    return inventory


def inventory_table(inventory: Sequence[SessionInputs]) -> pd.DataFrame:
    """Tabulate the inventory: one row per subject and session.

    Parameters
    ----------
    inventory : sequence of SessionInputs
        From :func:`build_inventory`.

    Returns
    -------
    pandas.DataFrame
        Columns ``subject, session, T1w, FLAIR, T2w, lesion_mask, usable, missing`` (counts of
        files per contrast).
    """
    rows = [
        {
            "subject": item.subject,
            "session": item.session,
            "T1w": len(item.t1w),
            "FLAIR": len(item.flair),
            "T2w": len(item.t2w),
            "lesion_mask": len(item.lesion_masks),
            "usable": item.usable,
            "missing": ", ".join(item.missing),
        }
        for item in inventory
    ]
    return pd.DataFrame(rows)

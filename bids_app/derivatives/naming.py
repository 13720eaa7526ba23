"""BIDS entities to derivative file names.

Standard outputs use sMRIPrep's names (``desc-preproc_T1w``, ``desc-brain_mask``, ``dseg``,
``label-GM_probseg``, ``from-T1w_to-<template>_mode-image_xfm``, ``space-<template>``). Suffixes
that BIDS does not define yet are listed in :data:`CUSTOM_SUFFIXES` and go into the output's
``.bidsignore``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

#: Entity order of the BIDS specification (Appendix "Entity table"), derivative entities included.
ENTITY_ORDER = (
    "sub",
    "ses",
    "task",
    "acq",
    "ce",
    "rec",
    "run",
    "from",
    "to",
    "mode",
    "hemi",
    "space",
    "res",
    "den",
    "label",
    "desc",
)

#: Suffixes of our own, not (yet) in the BIDS specification; listed in ``.bidsignore``.
CUSTOM_SUFFIXES = (
    "morph",
    "features",
    "relevance",
    "relevanceregions",
    "predictions",
    "qc",
    "jacobian",
)

#: Template space of the standard-space outputs (nilearn's or TemplateFlow's copy).
TEMPLATE_SPACE = "MNI152NLin2009aSym"

#: Contrasts co-registered to the T1w.
OTHER_CONTRASTS = ("FLAIR", "T2w")

_MNI = {"space": TEMPLATE_SPACE}

#: Every per-subject output of NeuroStrat by name: extra entities, suffix and extension.
#: Standard names follow sMRIPrep (native T1w space carries no ``space`` entity).
OUTPUTS: dict[str, tuple[dict[str, str], str, str]] = {
    "t1w_preproc": ({"desc": "preproc"}, "T1w", ".nii.gz"),
    "brain_mask": ({"desc": "brain"}, "mask", ".nii.gz"),
    "dseg": ({}, "dseg", ".nii.gz"),
    **{
        f"probseg_{tissue.lower()}": ({"label": tissue}, "probseg", ".nii.gz")
        for tissue in ("CSF", "GM", "WM")
    },
    "xfm_t1w_to_template": (
        {"from": "T1w", "to": TEMPLATE_SPACE, "mode": "image"},
        "xfm",
        ".nii.gz",
    ),
    "xfm_template_to_t1w": (
        {"from": TEMPLATE_SPACE, "to": "T1w", "mode": "image"},
        "xfm",
        ".nii.gz",
    ),
    "t1w_mni": ({**_MNI, "desc": "preproc"}, "T1w", ".nii.gz"),
    "brain_mask_mni": ({**_MNI, "desc": "brain"}, "mask", ".nii.gz"),
    "dseg_mni": (_MNI, "dseg", ".nii.gz"),
    "logjacobian_mni": ({**_MNI, "desc": "log"}, "jacobian", ".nii.gz"),
    "lesion_mni": ({**_MNI, "label": "lesion"}, "roi", ".nii.gz"),
    "t1w_cnn": ({**_MNI, "desc": "cnn"}, "T1w", ".nii.gz"),
    "qc_metrics": ({"desc": "preproc"}, "qc", ".json"),
    # features: Desikan-Killiany (brain stem split) on the T1w grid, then one table per family
    "aparcaseg": ({"desc": "aparcaseg"}, "dseg", ".nii.gz"),
    "thickness_map": ({"label": "GM", "desc": "thickness"}, "morph", ".nii.gz"),
    "volumes": ({"desc": "volumes"}, "morph", ".tsv"),
    "thickness": ({"desc": "thickness"}, "morph", ".tsv"),
    "radiomics": ({"desc": "radiomics"}, "features", ".tsv"),
    "histogram": ({"desc": "histogram"}, "features", ".tsv"),
    # deep-learning inference (``--models``): ``desc`` names the network
    "predictions": ({}, "predictions", ".tsv"),
    "relevance_mni": (_MNI, "relevance", ".nii.gz"),
    "relevance_t1w": ({}, "relevance", ".nii.gz"),
    "relevance_regions": (_MNI, "relevanceregions", ".tsv"),
    **{
        name: spec
        for contrast in OTHER_CONTRASTS
        for name, spec in {
            f"{contrast.lower()}_t1w": ({"space": "T1w", "desc": "preproc"}, contrast, ".nii.gz"),
            f"{contrast.lower()}_mni": ({**_MNI, "desc": "preproc"}, contrast, ".nii.gz"),
            f"{contrast.lower()}_cnn": ({**_MNI, "desc": "cnn"}, contrast, ".nii.gz"),
            f"xfm_{contrast.lower()}_to_t1w": (
                {"from": contrast, "to": "T1w", "mode": "image"},
                "xfm",
                ".mat",
            ),
        }.items()
    },
}

#: Folders of the output dataset that are not BIDS data.
NON_BIDS_FOLDERS = ("logs", "group", "figures")


def build_name(entities: Mapping[str, str | int], suffix: str, extension: str) -> str:
    """Return a BIDS file name from entities, a suffix and an extension.

    Parameters
    ----------
    entities : mapping
        Entity key (short form, e.g. ``"sub"``) to label; ``None`` values are skipped.
    suffix : str
        The suffix, e.g. ``"T1w"`` or ``"mask"``.
    extension : str
        The extension with its leading dot, e.g. ``".nii.gz"``.

    Returns
    -------
    str
        The file name, entities in the specification's order.

    Raises
    ------
    ValueError
        If an entity is unknown, ``sub`` is missing, or a label is not alphanumeric.

    Examples
    --------
    >>> build_name({"sub": "01", "desc": "preproc"}, "T1w", ".nii.gz")
    'sub-01_desc-preproc_T1w.nii.gz'
    >>> build_name({"desc": "brain", "ses": "1", "sub": "01"}, "mask", ".nii.gz")
    'sub-01_ses-1_desc-brain_mask.nii.gz'
    >>> build_name({"sub": "01", "from": "T1w", "to": "MNI152NLin2009aSym", "mode": "image"},
    ...            "xfm", ".h5")
    'sub-01_from-T1w_to-MNI152NLin2009aSym_mode-image_xfm.h5'
    >>> build_name({"sub": "01", "space": "MNI152NLin2009aSym", "label": "GM"}, "probseg",
    ...            ".nii.gz")
    'sub-01_space-MNI152NLin2009aSym_label-GM_probseg.nii.gz'
    >>> build_name({"sub": "01", "foo": "x"}, "T1w", ".nii.gz")
    Traceback (most recent call last):
    ...
    ValueError: unknown BIDS entities ['foo']
    """
    present = {key: value for key, value in entities.items() if value is not None}
    unknown = sorted(set(present) - set(ENTITY_ORDER))
    if unknown:
        raise ValueError(f"unknown BIDS entities {unknown}")
    if "sub" not in present:
        raise ValueError("the 'sub' entity is required")
    parts = []
    for key in ENTITY_ORDER:
        if key in present:
            label = str(present[key])
            if not label.isalnum():
                raise ValueError(f"entity {key}-{label}: labels must be alphanumeric")
            parts.append(f"{key}-{label}")
    if not suffix.isalnum() or not extension.startswith("."):
        raise ValueError(f"invalid suffix {suffix!r} or extension {extension!r}")
    return "_".join([*parts, suffix]) + extension


def build_path(
    entities: Mapping[str, str | int], suffix: str, extension: str, datatype: str = "anat"
) -> Path:
    """Return the path of a derivative, relative to the dataset root.

    Parameters
    ----------
    entities : mapping
        Entities, see :func:`build_name`.
    suffix : str
        The suffix.
    extension : str
        The extension with its leading dot.
    datatype : str
        The datatype folder, e.g. ``"anat"``.

    Returns
    -------
    Path
        ``sub-<label>/[ses-<label>/]<datatype>/<name>``.

    Examples
    --------
    >>> build_path({"sub": "01", "ses": "2", "desc": "brain"}, "mask", ".json").as_posix()
    'sub-01/ses-2/anat/sub-01_ses-2_desc-brain_mask.json'
    >>> build_path({"sub": "01"}, "dseg", ".nii.gz").as_posix()
    'sub-01/anat/sub-01_dseg.nii.gz'
    """
    folder = Path(f"sub-{entities['sub']}")
    if entities.get("ses") is not None:
        folder /= f"ses-{entities['ses']}"
    return folder / datatype / build_name(entities, suffix, extension)


def output_path(name: str, entities: Mapping[str, str | int]) -> Path:
    """Return the path of a named output (see :data:`OUTPUTS`) for a subject/session.

    Parameters
    ----------
    name : str
        A key of :data:`OUTPUTS`.
    entities : mapping
        The subject/session entities.

    Returns
    -------
    Path
        Path relative to the dataset root.

    Examples
    --------
    >>> output_path("t1w_preproc", {"sub": "01", "ses": "1"}).as_posix()
    'sub-01/ses-1/anat/sub-01_ses-1_desc-preproc_T1w.nii.gz'
    >>> output_path("flair_mni", {"sub": "01"}).name
    'sub-01_space-MNI152NLin2009aSym_desc-preproc_FLAIR.nii.gz'
    """
    extra, suffix, extension = OUTPUTS[name]
    return build_path({**entities, **extra}, suffix, extension)


def report_path(entities: Mapping[str, str | int]) -> Path:
    """Return the path of the HTML QC report of a subject/session (at the root, as fMRIPrep).

    Parameters
    ----------
    entities : mapping
        The subject/session entities.

    Returns
    -------
    Path
        ``sub-<label>[_ses-<label>].html``.

    Examples
    --------
    >>> report_path({"sub": "01", "ses": "2"}).as_posix()
    'sub-01_ses-2.html'
    """
    name = f"sub-{entities['sub']}"
    if entities.get("ses") is not None:
        name += f"_ses-{entities['ses']}"
    return Path(name + ".html")


def sidecar_path(path: Path) -> Path:
    """Return the JSON sidecar of a data file.

    Parameters
    ----------
    path : Path
        A data file such as ``sub-01_T1w.nii.gz``.

    Returns
    -------
    Path
        The same name with the extension replaced by ``.json``.

    Examples
    --------
    >>> sidecar_path(Path("sub-01/anat/sub-01_desc-preproc_T1w.nii.gz")).as_posix()
    'sub-01/anat/sub-01_desc-preproc_T1w.json'
    """
    name = path.name.split(".", 1)[0]
    return path.with_name(name + ".json")


def group_path(name: str, extension: str) -> Path:
    """Return the path of a group-level output, relative to the dataset root.

    Parameters
    ----------
    name : str
        What the file holds, e.g. ``"demographics"``.
    extension : str
        The extension with its leading dot.

    Returns
    -------
    Path
        ``group/<name><extension>``.

    Examples
    --------
    >>> group_path("demographics", ".tsv").as_posix()
    'group/demographics.tsv'
    """
    return Path("group") / f"{name}{extension}"


def log_path(run_id: str, kind: str, extension: str) -> Path:
    """Return the path of a run's log or inventory, relative to the dataset root.

    Parameters
    ----------
    run_id : str
        The run identifier, e.g. ``"20261121-101010_ab12cd34"``.
    kind : str
        ``"log"``, ``"inventory"`` or ``"summary"``.
    extension : str
        The extension with its leading dot.

    Returns
    -------
    Path
        ``logs/<kind>_<run_id><extension>``.

    Examples
    --------
    >>> log_path("20261121-101010_ab12cd34", "inventory", ".tsv").as_posix()
    'logs/inventory_20261121-101010_ab12cd34.tsv'
    """
    return Path("logs") / f"{kind}_{run_id}{extension}"


def bidsignore_lines() -> list[str]:
    """Return the ``.bidsignore`` patterns of the output dataset.

    Returns
    -------
    list of str
        Patterns for our own suffixes and the non-BIDS folders.

    Examples
    --------
    >>> bidsignore_lines()[:2]
    ['*_morph.*', '*_features.*']
    """
    return [f"*_{suffix}.*" for suffix in CUSTOM_SUFFIXES] + [
        f"{folder}/" for folder in NON_BIDS_FOLDERS
    ]

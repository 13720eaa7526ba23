"""BIDS entities to derivative file names.

Standard outputs use sMRIPrep's names (``desc-preproc_T1w``, ``desc-brain_mask``, ``dseg``,
``label-GM_probseg``, ``from-T1w_to-<template>_mode-image_xfm``, ``space-<template>``). Suffixes
that BIDS does not define yet are listed in :data:`CUSTOM_SUFFIXES` and go into the output's
``.bidsignore``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
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

#: Contrasts co-registered to the T1w whenever a session has them; their outputs are keys of
#: :data:`OUTPUTS` (``flair_cnn``). Any other contrast (a quantitative map of ``--dl-contrasts``
#: such as ``T1map``) has the same outputs under :func:`contrast_output` names (``T1map_cnn``).
OTHER_CONTRASTS = ("FLAIR", "T2w")

#: Outputs of a co-registered contrast, by kind.
CONTRAST_KINDS = ("t1w", "mni", "cnn", "xfm")

_MNI = {"space": TEMPLATE_SPACE}
_CONTRAST_OUTPUT = re.compile(r"^(?P<contrast>[A-Za-z0-9]+)_(?P<kind>t1w|mni|cnn)$")
_CONTRAST_XFM = re.compile(r"^xfm_(?P<contrast>[A-Za-z0-9]+)_to_t1w$")


def contrast_spec(contrast: str, kind: str) -> tuple[dict[str, str], str, str]:
    """Return the extra entities, suffix and extension of a co-registered contrast's output.

    Parameters
    ----------
    contrast : str
        Its BIDS suffix (``FLAIR``, ``T1map``...), also the suffix of its images.
    kind : {"t1w", "mni", "cnn", "xfm"}
        In T1w space, in template space, the CNN-ready crop, or the rigid transform.

    Returns
    -------
    tuple
        As the values of :data:`OUTPUTS`.
    """
    if kind == "xfm":
        return {"from": contrast, "to": "T1w", "mode": "image"}, "xfm", ".mat"
    extra = {
        "t1w": {"space": "T1w", "desc": "preproc"},
        "mni": {**_MNI, "desc": "preproc"},
        "cnn": {**_MNI, "desc": "cnn"},
    }[kind]
    return extra, contrast, ".nii.gz"


def contrast_output(contrast: str, kind: str) -> str:
    """Return the output name of a co-registered contrast (for the writer's methods).

    Parameters
    ----------
    contrast : str
        Its BIDS suffix; ``T1w`` names the T1w's own crop.
    kind : {"t1w", "mni", "cnn", "xfm"}
        See :func:`contrast_spec`.

    Returns
    -------
    str
        The key of :data:`OUTPUTS` for the T1w, FLAIR and T2w (``flair_cnn``), else
        ``<contrast>_<kind>`` or ``xfm_<contrast>_to_t1w`` with the suffix's case kept.

    Examples
    --------
    >>> contrast_output("FLAIR", "cnn"), contrast_output("T1map", "cnn")
    ('flair_cnn', 'T1map_cnn')
    >>> output_path(contrast_output("T1map", "cnn"), {"sub": "01"}).name
    'sub-01_space-MNI152NLin2009aSym_desc-cnn_T1map.nii.gz'
    """
    label = contrast.lower() if contrast in ("T1w", *OTHER_CONTRASTS) else contrast
    return f"xfm_{label}_to_t1w" if kind == "xfm" else f"{label}_{kind}"


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
    # the affine stage alone (what ``--cnn-space affine`` crops through)
    "xfm_t1w_to_template_affine": (
        {"from": "T1w", "to": TEMPLATE_SPACE, "mode": "image", "desc": "affine"},
        "xfm",
        ".mat",
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
    # MeshNet parcellation (``--segmentation meshnet``): labels, their table (BIDS dseg.tsv,
    # no sidecar: it would share the image's), and the ``meshnet`` feature family's volumes
    "meshnet_dseg": ({"desc": "meshnet"}, "dseg", ".nii.gz"),
    "meshnet_dseg_labels": ({"desc": "meshnet"}, "dseg", ".tsv"),
    "meshnet": ({"desc": "meshnetvolumes"}, "morph", ".tsv"),
    # deep-learning inference (``--models``): ``desc`` names the network
    "predictions": ({}, "predictions", ".tsv"),
    "relevance_mni": (_MNI, "relevance", ".nii.gz"),
    "relevance_t1w": ({}, "relevance", ".nii.gz"),
    "relevance_regions": (_MNI, "relevanceregions", ".tsv"),
    **{
        contrast_output(contrast, kind): contrast_spec(contrast, kind)
        for contrast in OTHER_CONTRASTS
        for kind in CONTRAST_KINDS
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
        A key of :data:`OUTPUTS`, or a :func:`contrast_output` name of another contrast.
    entities : mapping
        The subject/session entities.

    Returns
    -------
    Path
        Path relative to the dataset root.

    Raises
    ------
    KeyError
        If the name is neither.

    Examples
    --------
    >>> output_path("t1w_preproc", {"sub": "01", "ses": "1"}).as_posix()
    'sub-01/ses-1/anat/sub-01_ses-1_desc-preproc_T1w.nii.gz'
    >>> output_path("flair_mni", {"sub": "01"}).name
    'sub-01_space-MNI152NLin2009aSym_desc-preproc_FLAIR.nii.gz'
    """
    extra, suffix, extension = OUTPUTS[name] if name in OUTPUTS else _contrast_output_spec(name)
    return build_path({**entities, **extra}, suffix, extension)


def _contrast_output_spec(name: str) -> tuple[dict[str, str], str, str]:
    """Return the spec of a :func:`contrast_output` name outside :data:`OUTPUTS`."""
    xfm, match = _CONTRAST_XFM.match(name), _CONTRAST_OUTPUT.match(name)
    if xfm:
        contrast, kind = xfm["contrast"], "xfm"
    elif match:
        contrast, kind = match["contrast"], match["kind"]
    else:
        raise KeyError(f"{name!r} is not an output of NeuroStrat")
    if contrast_output(contrast, kind) != name:
        raise KeyError(f"{name!r} is not an output of NeuroStrat")
    return contrast_spec(contrast, kind)


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


@dataclass(frozen=True)
class GroupOutput:
    """One group-level output: where it goes, its format and what it holds.

    Parameters
    ----------
    pattern : str
        Path relative to ``group/``, with ``{field}`` placeholders (e.g. ``{network}``).
    format : str
        ``tsv`` (with a JSON data dictionary), ``png``, ``nii.gz``, ``html``, ``json``,
        ``joblib`` or ``pt``.
    description : str
        One line for the outputs reference of the documentation.
    """

    pattern: str
    format: str
    description: str


def _tsv(pattern: str, description: str) -> GroupOutput:
    return GroupOutput(f"{pattern}.tsv", "tsv", description)


def _png(name: str, description: str) -> GroupOutput:
    return GroupOutput(f"figures/{name}.png", "png", description)


def _nifti(pattern: str, description: str) -> GroupOutput:
    return GroupOutput(f"{pattern}.nii.gz", "nii.gz", description)


#: Folders of the model bundles under ``group/``, written and replaced as a whole.
BUNDLES = ("models", "deep_models")

#: Every group-level output of NeuroStrat by name (paths under ``<output_dir>/group/``).
GROUP: dict[str, GroupOutput] = {
    # the cohort
    "participants": _tsv("participants", "one row per subject: participants.tsv and imaging"),
    "demographics": _tsv("demographics", "age and sex by diagnostic group"),
    "demographics_tests": _tsv("demographics_tests", "age and sex compared between groups"),
    "demographics_characteristics": _tsv(
        "demographics_characteristics", "subjects per sex and age band in each group, with %"
    ),
    "features": _tsv("features_{family}", "every session's features of one family, stacked"),
    "report": GroupOutput("report.html", "html", "the group report (self-contained HTML)"),
    # statistics
    "ancova": _tsv("ancova_{family}", "ANCOVA of every feature of a family between groups"),
    "histograms_by_group": _tsv("histograms_by_group", "mean intensity histogram per group"),
    "figure_histograms_by_group": _png("histograms_by_group", "mean histogram per group"),
    # clustering and survival (Milella 2023)
    "clusters": _tsv("clusters", "cluster, metrics and silhouette of every clustered patient"),
    "clustering_bic": _tsv("clustering_bic", "BIC of the Gaussian mixture for every k"),
    "clustering_silhouette": _tsv("clustering_silhouette", "mean silhouette per cluster"),
    "clustering_exclusions": _tsv("clustering_exclusions", "patients left out of clustering"),
    "cluster_profiles": _tsv("cluster_profiles", "clinical profile of every cluster"),
    "cluster_ancova": _tsv("cluster_ancova", "ANCOVA of the metrics between clusters"),
    "figure_clusters_emm": _png("clusters_emm", "estimated marginal means ± SD by cluster"),
    "survival_km": _tsv("survival_km", "Kaplan-Meier curves by cluster"),
    "survival_median": _tsv("survival_median", "median survival by cluster"),
    "survival_logrank": _tsv("survival_logrank", "log-rank tests between clusters"),
    "survival_odds_ratios": _tsv("survival_odds_ratios", "odds of short survival by cluster"),
    "figure_survival_km": _png("survival_km", "Kaplan-Meier curves by cluster"),
    # classification (Turrisi 2024 Tables 1, 3 and 4)
    **{
        f"classification_{name}": _tsv(f"classification_{name}", description)
        for name, description in (
            ("folds", "metrics of every model on every outer fold"),
            ("summary", "metrics of every model, mean and SD over folds"),
            ("f1", "F1 (%) by feature set and classifier"),
            ("best", "best model per feature set with its summed confusion matrix"),
            ("parameters", "hyper-parameters the inner grid search chose"),
            ("predictions", "out-of-fold predictions of every model"),
            ("exclusions", "sessions or subjects left out of the classification"),
            ("dropped_features", "feature columns left out of the classification"),
            ("confusion", "confusion matrix of every model (multi-class target)"),
        )
    },
    # longitudinal feature family (--feature-sets rates; brain-stem PhD proposal)
    "longitudinal_rates": _tsv(
        "longitudinal_rates", "annualised rate of change of every feature, per subject"
    ),
    "figure_classification_roc_pr": _png("classification_roc_pr", "ROC and PR curves"),
    "figure_classification_confusion": _png("classification_confusion", "confusion matrices"),
    "model": GroupOutput(
        "models/{model}/{fold}.joblib", "joblib", "a fitted pipeline (fold model or full refit)"
    ),
    "model_manifest": GroupOutput(
        "models/manifest.json", "json", "what every saved model needs, with file digests"
    ),
    # external validation (--apply-models)
    "external_predictions": _tsv("external_predictions", "saved models' predictions"),
    "external_exclusions": _tsv("external_exclusions", "sessions the saved models could not use"),
    "external_metrics": _tsv("external_metrics", "saved models' metrics on this dataset"),
    "deep_external_predictions": _tsv(
        "deep_external_predictions", "the networks' votes (participant --models) with the labels"
    ),
    "deep_external_metrics": _tsv(
        "deep_external_metrics", "the networks' majority-vote metrics on this dataset"
    ),
    # deep learning (--dl-models)
    "deep_folds": _tsv("deep_folds", "metrics of every network on every outer fold"),
    "deep_summary": _tsv("deep_summary", "metrics of every network, mean and SD over folds"),
    "deep_history": _tsv("deep_history", "training curves of every fold"),
    "deep_exclusions": _tsv("deep_exclusions", "sessions left out of the deep learning"),
    "deep_predictions": _tsv("deep_{network}_predictions", "out-of-fold predictions"),
    "deep_confusion": _tsv(
        "deep_{network}_confusion", "out-of-fold confusion matrix of a multi-class target"
    ),
    "deep_relevance": _nifti("deep_{network}_relevance", "out-of-fold relevance maps (4D)"),
    "deep_checkpoint": GroupOutput(
        "deep_models/{network}/{fold}.pt", "pt", "a fold checkpoint of a network"
    ),
    "deep_model_card": GroupOutput(
        "deep_models/model_card.json", "json", "the networks' model card, with file digests"
    ),
    # attention maps (Coll 2023 §2.6, Lu 2023 §II.G)
    "deep_relevance_average": _nifti(
        "deep_{network}_relevance_{group}", "class-average relevance of a prediction group"
    ),
    "deep_relevance_top": _nifti(
        "deep_{network}_relevance_{group}_top5", "the class average's top 5 % of voxels"
    ),
    "deep_relevance_counts": _tsv(
        "deep_{network}_relevance_counts",
        "voxels of each group's binarised class-average map per atlas region (Coll 2023 Fig. 4c)",
    ),
    "figure_deep_relevance_groups": _png(
        "deep_{network}_relevance_groups",
        "binarised class-average maps and voxels per region by prediction group",
    ),
    "figure_deep_group_maps": _png(
        "deep_{network}_group_maps",
        "mean T1w, lesion, Jacobian, relevance and R² maps per prediction group (Coll 2023 Fig. 5)",
    ),
    "deep_relevance_regions": _tsv(
        "deep_{network}_relevance_regions", "atlas regions ranked by class-average relevance"
    ),
    "deep_regression": _tsv("deep_{network}_regression", "voxel-wise regression summary"),
    "deep_regression_map": _nifti(
        "deep_{network}_regression_{group}_{stat}", "R², partial R² or standardised beta map"
    ),
    "deep_inversion": _tsv("deep_{network}_inversion", "AUC after the voxel-inversion test"),
    "deep_spearman": _tsv("deep_{network}_spearman", "relevant-voxel intensity vs the score"),
    # GAMER-MRIL (Lu 2023 §II.F-G, §III): attention weights, per-contrast LRP, combined maps
    "deep_attention_weights": _tsv(
        "deep_{network}_attention_weights", "out-of-fold attention weight of every contrast"
    ),
    "deep_attention_summary": _tsv(
        "deep_{network}_attention_summary", "mean attention weights of the correctly classified"
    ),
    "deep_contrast_relevance": _nifti(
        "deep_{network}_contrast_relevance_{contrast}", "one contrast's out-of-fold LRP maps (4D)"
    ),
    "deep_combined_map": _nifti(
        "deep_{network}_combined_map", "combined maps of Lu 2023 eq. (8), relevance x image (4D)"
    ),
    "deep_lrp_scenarios": _tsv(
        "deep_{network}_lrp_scenarios", "voxel-inversion AUC of the LRP scenarios of Lu 2023"
    ),
    "deep_contrast_spearman": _tsv(
        "deep_{network}_contrast_spearman", "per-contrast mean in the relevant mask vs the score"
    ),
    "figure_deep_relevance_regions": _png(
        "deep_{network}_relevance_regions", "the most relevant regions"
    ),
    "figure_deep_relevance_example": _png(
        "deep_{network}_relevance_example", "one subject's relevance map"
    ),
    "figure_deep_relevance_average": _png(
        "deep_{network}_relevance_{group}", "a class-average relevance map"
    ),
}

#: The run's log files under ``logs/`` by kind, with their extension.
LOGS = {"log": ".txt", "inventory": ".tsv", "summary": ".txt"}

#: What ``--submit slurm`` writes under ``logs/slurm/``: the job scripts and the settings they
#: run with (named after the submission's run id), and the jobs' output files (named by SLURM:
#: ``%A`` the array's job id, ``%a`` the task, ``%j`` the job id).
SLURM = {
    "participant_script": "participant_{run_id}.sh",
    "group_script": "group_{run_id}.sh",
    "settings": "settings_{run_id}.yaml",
    "participant_output": "participant_%A_%a.txt",
    "group_output": "group_%j.txt",
}


def group_path(output: str, /, **fields: str) -> Path:
    """Return the path of a group-level output, relative to the dataset root.

    Parameters
    ----------
    output : str
        A key of :data:`GROUP`.
    **fields : str
        Values of the pattern's placeholders.

    Returns
    -------
    Path
        ``group/<pattern>``.

    Raises
    ------
    KeyError
        If the output is unknown or a placeholder has no value.

    Examples
    --------
    >>> group_path("demographics").as_posix()
    'group/demographics.tsv'
    >>> group_path("deep_relevance_top", network="resnet3d", group="TP").as_posix()
    'group/deep_resnet3d_relevance_TP_top5.nii.gz'
    >>> group_path("model", model="volumes__svm", fold="full").as_posix()
    'group/models/volumes__svm/full.joblib'
    """
    return Path("group") / GROUP[output].pattern.format(**fields)


def bundle_path(directory: Path, output: str, /, **fields: str) -> Path:
    """Return the path of a file of a model bundle (a ``models`` or ``deep_models`` folder).

    Parameters
    ----------
    directory : Path
        The bundle folder (the one being written, or one given with ``--apply-models`` or
        ``--models``).
    output : str
        A key of :data:`GROUP` whose pattern lies in one of :data:`BUNDLES`.
    **fields : str
        Values of the pattern's placeholders.

    Returns
    -------
    Path
        The file inside ``directory``.

    Examples
    --------
    >>> bundle_path(Path("/old/models"), "model_manifest").as_posix()
    '/old/models/manifest.json'
    >>> bundle_path(Path("d"), "deep_checkpoint", network="cnn8", fold="fold-1").as_posix()
    'd/cnn8/fold-1.pt'
    """
    folder, _, inside = GROUP[output].pattern.partition("/")
    if folder not in BUNDLES:
        raise ValueError(f"{output!r} is not a file of a model bundle")
    return directory / inside.format(**fields)


def log_path(run_id: str, kind: str) -> Path:
    """Return the path of a run's log, inventory or summary, relative to the dataset root.

    Parameters
    ----------
    run_id : str
        The run identifier, e.g. ``"20261121-101010_ab12cd34"``.
    kind : str
        A key of :data:`LOGS`.

    Returns
    -------
    Path
        ``logs/<kind>_<run_id><extension>``.

    Examples
    --------
    >>> log_path("20261121-101010_ab12cd34", "inventory").as_posix()
    'logs/inventory_20261121-101010_ab12cd34.tsv'
    """
    return Path("logs") / f"{kind}_{run_id}{LOGS[kind]}"


def log_run_id(name: str, kind: str) -> str | None:
    """Return the run id in the name of a run's log file of a kind, None for another file.

    Parameters
    ----------
    name : str
        A file name under ``logs/``.
    kind : str
        A key of :data:`LOGS`.

    Returns
    -------
    str or None
        The run id that :func:`log_path` put in the name.

    Examples
    --------
    >>> log_run_id(log_path("20261121-101010_ab12cd34", "summary").name, "summary")
    '20261121-101010_ab12cd34'
    >>> log_run_id("inventory_20261121-101010_ab12cd34.tsv", "summary") is None
    True
    """
    prefix, suffix = f"{kind}_", LOGS[kind]
    if name.startswith(prefix) and name.endswith(suffix) and len(name) > len(prefix + suffix):
        return name[len(prefix) : -len(suffix)]
    return None


def slurm_path(output: str, run_id: str = "") -> Path:
    """Return the path of a file of a SLURM submission, relative to the dataset root.

    Parameters
    ----------
    output : str
        A key of :data:`SLURM`.
    run_id : str
        The submission's run id (the scripts and settings are named after it).

    Returns
    -------
    Path
        ``logs/slurm/<name>``.

    Examples
    --------
    >>> slurm_path("participant_script", "20261121-101010_ab12cd34").as_posix()
    'logs/slurm/participant_20261121-101010_ab12cd34.sh'
    >>> slurm_path("participant_output").as_posix()
    'logs/slurm/participant_%A_%a.txt'
    """
    return Path("logs") / "slurm" / SLURM[output].format(run_id=run_id)


def profile_path(run_id: str, entities: Mapping[str, str | int]) -> Path:
    """Return the path of a subject/session's step times (``--profile``), relative to the root.

    Parameters
    ----------
    run_id : str
        The run identifier.
    entities : mapping
        The subject/session entities.

    Returns
    -------
    Path
        ``logs/profile_<run_id>_sub-<label>[_ses-<label>].tsv``.

    Examples
    --------
    >>> profile_path("20261121-101010_ab12cd34", {"sub": "01", "ses": "2"}).as_posix()
    'logs/profile_20261121-101010_ab12cd34_sub-01_ses-2.tsv'
    """
    session = report_path(entities).name.removesuffix(".html")
    return Path("logs") / f"profile_{run_id}_{session}.tsv"


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

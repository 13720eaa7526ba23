"""The one frozen configuration object of a run.

The CLI builds a :class:`Config` from the command line and an optional TOML or YAML file (the
command line wins) and passes it down; nothing below the CLI reads ``sys.argv`` or globals.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bids_app.errors import UsageError

ANALYSIS_LEVELS = ("participant", "group")
DEVICES = ("auto", "cpu", "cuda")
SKULL_STRIP_MODES = ("auto", "hdbet", "template", "none")
CNN_NORMALISATIONS = ("minmax", "zscore")
#: ``--atlas`` choices (regional grey-matter volumes; see :mod:`bids_app.features.atlases`).
ATLASES = ("desikan-killiany", "harvard-oxford", "aal", "neuromorphometrics")
#: Feature families of the participant level.
FEATURE_FAMILIES = ("volumes", "thickness", "radiomics", "histogram")
#: Regions of interest PyRadiomics can describe (seed 000 used the whole brain).
RADIOMICS_ROIS = ("brain", "brainstem", "precentral", "lesion")
#: ``--thickness-preset`` choices (:data:`bids_app.features.thickness.THICKNESS_PRESETS`).
THICKNESS_PRESET_NAMES = ("fast", "coarse", "antspy-default")
#: Classifiers of the group level (seed 000 Table 3 and the logistic regression of seed 001).
CLASSIFIER_NAMES = (
    "svm_linear",
    "svm_poly",
    "svm_rbf",
    "svm_sigmoid",
    "knn",
    "random_forest",
    "dnn_t",
    "dnn_v",
    "logistic_regression",
)
#: ``--cluster-method`` choices.
CLUSTER_METHODS = ("gmm", "kmeans", "agglomerative")
#: ``--harmonization`` choices.
HARMONIZATIONS = ("combat", "none")
#: ``--unseen-site`` choices (ComBat applied to a site it was not fitted on).
UNSEEN_SITE_POLICIES = ("error", "reference")
#: ``--dl-models`` choices (:data:`bids_app.deep.networks.NETWORKS`).
DL_MODEL_NAMES = ("resnet3d", "cnn8", "gamer")
#: Contrasts whose CNN-ready crops the networks may take.
DL_CONTRASTS = ("T1w", "FLAIR", "T2w")
#: ``--dl-preset`` choices: training and augmentation of seed 001 or seed 004.
DL_PRESETS = ("seed001", "seed004")
#: ``--lrp-rule`` choices (:func:`bids_app.deep.lrp.relevance`).
LRP_RULES = ("composite", "alpha1beta0", "epsilon")


@dataclass(frozen=True)
class Config:
    """Everything a run needs to know, fixed once at start-up.

    Parameters
    ----------
    bids_dir : Path
        Root of the input BIDS dataset.
    output_dir : Path
        Root of the output BIDS-Derivatives dataset.
    analysis_level : {"participant", "group"}
        Which level to run.
    participant_label : tuple of str
        Subject labels without the ``sub-`` prefix; empty means all subjects.
    session_label : tuple of str
        Session labels without the ``ses-`` prefix; empty means all sessions.
    skip_bids_validation : bool
        Do not validate the input dataset.
    work_dir : Path
        Folder for intermediate results (nipype's cache); the CLI's default is ``./work``, as in
        fMRIPrep.
    nprocs : int
        Processes for the participant workflow.
    omp_nthreads : int
        Threads per process for multi-threaded tools (ITK, BLAS, torch); the CLI's default is
        ``nprocs``.
    mem_gb : float or None
        Memory the run may use; ``None`` means no limit is set.
    device : {"auto", "cpu", "cuda"}
        Where torch runs.
    seed : int
        Seed for every random choice of the run.
    sloppy : bool
        Fast, low-resolution processing for tests and demonstrations.
    force : bool
        Recompute outputs that already exist for the same configuration.
    verbosity : int
        Logging verbosity: 0 is INFO, positive is more (DEBUG), negative is less.
    group_column : str
        Column of ``participants.tsv`` that holds the diagnostic group.
    skull_strip : {"auto", "hdbet", "template", "none"}
        Brain extraction: ``auto`` uses a mask found in ``derivatives``, else ``none`` for
        skull-stripped input, else HD-BET when its weights are found, else the template method.
    hdbet_weights : Path or None
        Folder of HD-BET's model (default: HD-BET's own location).
    derivatives : tuple of Path
        Derivatives datasets searched for user-supplied ``desc-brain_mask`` files.
    cnn_normalisation : {"minmax", "zscore"}
        Intensity normalisation of the CNN-ready images (seed 001 uses min-max).
    features : tuple of str
        Feature families computed per session (:data:`FEATURE_FAMILIES`).
    atlas : str
        Atlas of the regional grey-matter volumes (:data:`ATLASES`).
    radiomics_rois : tuple of str
        Regions described by PyRadiomics (:data:`RADIOMICS_ROIS`).
    thickness_preset : str
        DiReCT settings (:data:`THICKNESS_PRESET_NAMES`).
    templateflow_home : Path or None
        TemplateFlow's folder (the CLI takes ``TEMPLATEFLOW_HOME``); None uses nilearn's template.
    container : str or None
        ``"docker"`` or ``"singularity"`` when the run is in a container (set by the CLI).
    target : str or None
        Column of participants.tsv or sessions.tsv the classifiers predict; None runs no
        classification.
    positive_label : str or None
        The positive class of a categorical ``target``.
    threshold : float or None
        A numeric ``target`` is positive at or above it (EDSS >= 3.0 in seed 001).
    covariates : tuple of str
        Covariates of ComBat and the ANCOVA; empty means ``age`` and ``sex`` where present.
    site_column : str or None
        Column of the acquisition site; None means ``site`` where present.
    harmonization : {"combat", "none"}
        ComBat inside the folds when there are several sites.
    unseen_site : {"error", "reference"}
        What ComBat does with a site it was not fitted on.
    classifiers : tuple of str
        Classifiers compared (:data:`CLASSIFIER_NAMES`).
    feature_sets : tuple of str
        Feature families, or families joined with ``+``; empty means every family found
        (except the histograms) and all of them together.
    cv_folds : int
        Outer and inner folds (seed 000: 3).
    cv_repeats : int
        Repeats of the outer cross-validation with other shuffles.
    smote_k : int
        SMOTE's neighbours (seed 000: 5); 0 turns SMOTE off.
    apply_models : Path or None
        Folder of saved models (``group/models`` of an earlier run) to apply to this dataset.
    cluster_features : tuple of str
        Metrics the patients are clustered on, or the recipe ``("002",)``; empty: no clustering.
    cluster_method : {"gmm", "kmeans", "agglomerative"}
        Clustering method (k from the Gaussian mixture's BIC).
    control_label : str
        Value of ``group_column`` that marks the controls (kept aside as the reference).
    survival_time, survival_event : str
        Columns of the survival time and the event indicator.
    dl_models : tuple of str
        Networks trained at the group level (:data:`DL_MODEL_NAMES`); empty trains none.
    dl_contrasts : tuple of str
        Contrasts of the networks' input channels (:data:`DL_CONTRASTS`), T1w first.
    dl_preset : {"seed001", "seed004"}
        Training and augmentation settings of seed 001 §2.3.2 or seed 004 §II.D.
    dl_epochs, dl_batch_size : int or None
        Override the preset's maximum epochs and batch size.
    dl_base_width : int
        Kernels of the first convolutions (16 in seeds 001 and 004; smaller for CPU runs).
    dl_validation : bool
        Hold out a validation fold of the training participants for early stopping and the
        learning-rate decay (seed 001 §2.3.2).
    lrp_rule : {"composite", "alpha1beta0", "epsilon"}
        LRP rules of the attention maps.
    models : Path or None
        Folder of trained networks (``group/deep_models`` of an earlier run) applied at the
        participant level.
    feature_extractor : Path or None
        A pretrained network checkpoint whose penultimate features become a feature family.
    config_file : Path or None
        The configuration file the values came from, if any.
    """

    bids_dir: Path
    output_dir: Path
    analysis_level: str
    participant_label: tuple[str, ...] = ()
    session_label: tuple[str, ...] = ()
    skip_bids_validation: bool = False
    work_dir: Path = Path("work")
    nprocs: int = 1
    omp_nthreads: int = 1
    mem_gb: float | None = None
    device: str = "auto"
    seed: int = 42
    sloppy: bool = False
    force: bool = False
    verbosity: int = 0
    group_column: str = "diagnosis"
    skull_strip: str = "auto"
    hdbet_weights: Path | None = None
    derivatives: tuple[Path, ...] = ()
    cnn_normalisation: str = "minmax"
    features: tuple[str, ...] = FEATURE_FAMILIES
    atlas: str = "desikan-killiany"
    radiomics_rois: tuple[str, ...] = RADIOMICS_ROIS
    thickness_preset: str = "fast"
    templateflow_home: Path | None = None
    container: str | None = None
    target: str | None = None
    positive_label: str | None = None
    threshold: float | None = None
    covariates: tuple[str, ...] = ()
    site_column: str | None = None
    harmonization: str = "combat"
    unseen_site: str = "error"
    classifiers: tuple[str, ...] = CLASSIFIER_NAMES
    feature_sets: tuple[str, ...] = ()
    cv_folds: int = 3
    cv_repeats: int = 1
    smote_k: int = 5
    apply_models: Path | None = None
    cluster_features: tuple[str, ...] = ()
    cluster_method: str = "gmm"
    control_label: str = "CN"
    survival_time: str = "survival_months"
    survival_event: str = "event"
    dl_models: tuple[str, ...] = ()
    dl_contrasts: tuple[str, ...] = ("T1w",)
    dl_preset: str = "seed001"
    dl_epochs: int | None = None
    dl_batch_size: int | None = None
    dl_base_width: int = 16
    dl_validation: bool = True
    lrp_rule: str = "composite"
    models: Path | None = None
    feature_extractor: Path | None = None
    config_file: Path | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration as JSON-serialisable values.

        Returns
        -------
        dict
            Field name to value; paths become strings and tuples lists.
        """
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    def processing_hash(self) -> str:
        """Hash of the settings that change what the processing computes.

        Paths, verbosity and resources are left out: moving a dataset or running with more
        processes must not invalidate finished outputs.

        Returns
        -------
        str
            The first 12 hexadecimal digits of a SHA-256 digest.
        """
        relevant = {
            "seed": self.seed,
            "sloppy": self.sloppy,
            "skull_strip": self.skull_strip,
            "cnn_normalisation": self.cnn_normalisation,
        }
        digest = hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()
        return digest[:12]


def strip_prefix(labels: list[str] | tuple[str, ...] | str | None, prefix: str) -> tuple[str, ...]:
    """Remove a BIDS entity prefix such as ``sub-`` from labels.

    Parameters
    ----------
    labels : list of str, str or None
        Labels as a user typed them.
    prefix : str
        The prefix to remove, e.g. ``"sub-"``.

    Returns
    -------
    tuple of str
        Unique labels without prefix, in the order given.

    Examples
    --------
    >>> strip_prefix(["sub-01", "02", "sub-01"], "sub-")
    ('01', '02')
    """
    if labels is None:
        return ()
    if isinstance(labels, str):
        labels = [labels]
    cleaned = [label.removeprefix(prefix).strip() for label in labels]
    bad = [label for label in cleaned if not label or not label.isalnum()]
    if bad:
        raise UsageError(
            f"invalid label(s) {bad!r} for {prefix!r}: BIDS labels are alphanumeric "
            f"(e.g. {prefix}01)"
        )
    return tuple(dict.fromkeys(cleaned))


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a TOML or YAML configuration file (safe-loaded).

    Keys may be written with ``-`` or ``_`` (``participant-label`` or ``participant_label``).

    Parameters
    ----------
    path : Path
        A ``.toml``, ``.yaml`` or ``.yml`` file whose top level is a table of options.

    Returns
    -------
    dict
        Option name (with ``_``) to value.

    Raises
    ------
    UsageError
        If the file is missing, unparsable, not a table, or names an unknown option.
    """
    if not path.is_file():
        raise UsageError(f"configuration file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        else:
            raise UsageError(f"configuration file {path}: use a .toml, .yaml or .yml file")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise UsageError(f"configuration file {path} cannot be parsed: {exc}") from exc
    if not isinstance(data, dict):
        raise UsageError(f"configuration file {path}: the top level must be a table of options")
    options = {str(key).replace("-", "_"): value for key, value in data.items()}
    known = {f.name for f in dataclasses.fields(Config)} - {
        "bids_dir",
        "output_dir",
        "analysis_level",
        "config_file",
        "container",
        "templateflow_home",
    }
    unknown = sorted(set(options) - known)
    if unknown:
        raise UsageError(
            f"configuration file {path}: unknown option(s) {unknown}; known: {sorted(known)}"
        )
    return options


_COERCE = {
    "participant_label": lambda v: strip_prefix(v, "sub-"),
    "session_label": lambda v: strip_prefix(v, "ses-"),
    "work_dir": lambda v: Path(v).expanduser().resolve(),
    "nprocs": int,
    "omp_nthreads": int,
    "mem_gb": lambda v: None if v is None else float(v),
    "seed": int,
    "verbosity": int,
    "hdbet_weights": lambda v: None if v is None else Path(v).expanduser().resolve(),
    "derivatives": lambda v: tuple(
        Path(p).expanduser().resolve() for p in ([v] if isinstance(v, str) else v)
    ),
    "templateflow_home": lambda v: None if not v else Path(v).expanduser().resolve(),
    "features": lambda v: tuple([v] if isinstance(v, str) else v),
    "radiomics_rois": lambda v: tuple([v] if isinstance(v, str) else v),
    "threshold": lambda v: None if v is None else float(v),
    "positive_label": lambda v: None if v is None else str(v),
    "covariates": lambda v: tuple([v] if isinstance(v, str) else v),
    "classifiers": lambda v: tuple([v] if isinstance(v, str) else v),
    "feature_sets": lambda v: tuple([v] if isinstance(v, str) else v),
    "cv_folds": int,
    "cv_repeats": int,
    "smote_k": int,
    "cluster_features": lambda v: tuple([v] if isinstance(v, str) else v),
    "apply_models": lambda v: None if v is None else Path(v).expanduser().resolve(),
    "dl_models": lambda v: tuple([v] if isinstance(v, str) else v),
    "dl_contrasts": lambda v: tuple([v] if isinstance(v, str) else v),
    "dl_epochs": lambda v: None if v is None else int(v),
    "dl_batch_size": lambda v: None if v is None else int(v),
    "dl_base_width": int,
    "models": lambda v: None if v is None else Path(v).expanduser().resolve(),
    "feature_extractor": lambda v: None if v is None else Path(v).expanduser().resolve(),
}


def build_config(cli_options: dict[str, Any], file_options: dict[str, Any]) -> Config:
    """Merge file options and command-line options (the command line wins) into a Config.

    Parameters
    ----------
    cli_options : dict
        Options given on the command line (only those the user typed).
    file_options : dict
        Options read from a configuration file.

    Returns
    -------
    Config
        The frozen configuration.

    Raises
    ------
    UsageError
        If a value has the wrong type or is out of range.
    """
    merged = {**file_options, **cli_options}
    values: dict[str, Any] = {}
    for name, value in merged.items():
        coerce = _COERCE.get(name)
        try:
            values[name] = coerce(value) if coerce else value
        except (TypeError, ValueError) as exc:
            raise UsageError(f"option {name!r}: invalid value {value!r} ({exc})") from exc
    for name in ("skip_bids_validation", "sloppy", "force", "dl_validation"):
        if name in values and not isinstance(values[name], bool):
            raise UsageError(f"option {name!r} must be true or false, not {values[name]!r}")
    values.setdefault("omp_nthreads", values.get("nprocs", 1))
    for name, choices in (
        ("skull_strip", SKULL_STRIP_MODES),
        ("cnn_normalisation", CNN_NORMALISATIONS),
        ("atlas", ATLASES),
        ("harmonization", HARMONIZATIONS),
        ("thickness_preset", THICKNESS_PRESET_NAMES),
        ("cluster_method", CLUSTER_METHODS),
        ("unseen_site", UNSEEN_SITE_POLICIES),
        ("dl_preset", DL_PRESETS),
        ("lrp_rule", LRP_RULES),
    ):
        if name in values and values[name] not in choices:
            raise UsageError(f"option {name!r} must be one of {choices}, not {values[name]!r}")
    for name, choices in (
        ("features", FEATURE_FAMILIES),
        ("radiomics_rois", RADIOMICS_ROIS),
        ("classifiers", CLASSIFIER_NAMES),
        ("dl_models", DL_MODEL_NAMES),
        ("dl_contrasts", DL_CONTRASTS),
    ):
        unknown = sorted(set(values.get(name, ())) - set(choices))
        if unknown:
            raise UsageError(f"option {name!r}: unknown {unknown}; choose from {choices}")
    if values.get("device", "auto") not in DEVICES:
        raise UsageError(f"option 'device' must be one of {DEVICES}, not {values['device']!r}")
    for name in ("nprocs", "omp_nthreads"):
        if values.get(name, 1) < 1:
            raise UsageError(f"option {name!r} must be at least 1, not {values[name]}")
    if values.get("cv_folds", 3) < 2 or values.get("cv_repeats", 1) < 1:
        raise UsageError("--cv-folds must be at least 2 and --cv-repeats at least 1")
    for name in ("dl_epochs", "dl_batch_size", "dl_base_width"):
        if values.get(name) is not None and values[name] < 1:
            raise UsageError(f"option {name!r} must be at least 1, not {values[name]}")
    if values.get("dl_contrasts", ("T1w",))[:1] != ("T1w",):
        raise UsageError("--dl-contrasts must start with T1w (the crops are placed by the T1w)")
    if values.get("smote_k", 5) < 0:
        raise UsageError(f"--smote-k must be 0 (no SMOTE) or positive, not {values['smote_k']}")
    if values.get("positive_label") is not None and values.get("threshold") is not None:
        raise UsageError("give --positive-label (categorical target) or --threshold, not both")
    if values.get("mem_gb") is not None and values["mem_gb"] <= 0:
        raise UsageError(f"option 'mem_gb' must be positive, not {values['mem_gb']}")
    return Config(**values)

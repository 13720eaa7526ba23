"""Synthetic multi-site BIDS cohort with planted regional atrophy and exact ground truth.

The generator follows the SynthSeg generative model (Billot et al. 2023, Medical Image Analysis
86:102789): a whole-head label map is deformed, every label receives a Gaussian intensity, and
the image is degraded by a smooth bias field, a point-spread function, a voxel size and noise.
On top of it sit the parts needed to test a stratification pipeline: a scanner per site (own
contrast, bias, noise, resolution, array orientation and DICOM-like metadata), a diagnostic group
per subject with planted atrophy of named regions, age-related atrophy, white-matter lesions,
follow-up sessions and clinical columns, plus the exact ground truth of every planted effect.

This module holds the parameters (:class:`CohortSpec`), :func:`make_cohort` and the command
line; the parts live in their own modules:

- :mod:`~bids_app.synthetic.anatomy`: label maps (MNI152 or SynthSeg) and the regions;
- :mod:`~bids_app.synthetic.atrophy`: calibrated planted and age-related atrophy;
- :mod:`~bids_app.synthetic.lesions`: white-matter lesions;
- :mod:`~bids_app.synthetic.tissues`: tissue classes and intensity priors;
- :mod:`~bids_app.synthetic.sites`: scanners, their grids and sidecars;
- :mod:`~bids_app.synthetic.design` and :mod:`~bids_app.synthetic.clinical`: who is scanned
  where and when, with which clinical values;
- :mod:`~bids_app.synthetic.sessions`: simulating each session's labels and images;
- :mod:`~bids_app.synthetic.writing`: the BIDS files.

Usage::

    python -m bids_app.synthetic OUT_DIR --n-subjects 40 --n-sites 3 --n-jobs 2
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bids_app.synthetic.anatomy import REGIONS, check_regions, synthseg_maps
from bids_app.synthetic.atrophy import age_fractions, prepare_regions
from bids_app.synthetic.clinical import participants_columns
from bids_app.synthetic.design import plan_cohort
from bids_app.synthetic.sessions import simulate_subjects
from bids_app.synthetic.sites import draw_sites
from bids_app.synthetic.writing import (
    dataset_description,
    generation_record,
    prepare_output,
    write_ground_truth,
    write_json,
    write_readme_files,
    write_tsv,
)

# Diagnostic groups: group -> {region: weight}; planted fraction = effect_size * weight * severity
# (times the region's direction).  The first group without regions is the control group.
PRESETS: dict[str, dict[str, dict[str, float]]] = {
    "als": {"CN": {}, "ALS": {"precentral": 1.0, "paracentral": 1.0, "medulla": 1.0}},
    "als-bulbar": {"CN": {}, "ALS": {"medulla": 1.0, "pons": 0.5, "midbrain": 0.25}},
    "ms": {
        "CN": {},
        "MS_mild": {"thalamus": 0.5, "lateral_ventricles": 0.5},
        "MS_severe": {"thalamus": 1.0, "lateral_ventricles": 1.0, "cerebellum": 0.3},
    },
}


@dataclass(frozen=True)
class CohortSpec:
    """Parameters of a synthetic cohort; together with the seed they determine every byte.

    Attributes
    ----------
    n_subjects : int
        Number of subjects (``sub-001`` ...).
    n_sites : int
        Number of sites/scanners (``siteA`` ...); subjects are spread evenly.
    seed : int
        Seed of the ``numpy.random.SeedSequence`` from which all randomness is spawned.
    voxel_size : float
        Nominal isotropic voxel size in mm (one site has a 1.2x thicker slice axis).
    effect_size : float
        Fraction of a region's volume removed for weight 1 and average severity; 0 gives a
        null cohort (no planted deformation at all).
    disease : str
        ``"als"``, ``"als-bulbar"`` or ``"ms"``: the group preset and the clinical columns.
    groups : mapping or None
        Override of the preset's groups: ``{group: {region: weight}}``; the first group
        without regions is the control group.
    anatomy : str
        ``"mni"`` (bundled template and atlas) or ``"synthseg"`` (label maps in
        ``anatomy_dir``).
    anatomy_dir : str or None
        Folder of ``*.nii.gz`` label maps for ``anatomy="synthseg"``.
    age_range : tuple of float
        Uniform range of baseline age in years (independent of group).
    longitudinal_fraction : float
        Fraction of subjects with a second session about 12 months after the first.
    flair_fraction : float
        Fraction of subjects with a FLAIR and white-matter lesions (all patients for ``ms``).
    progression : float
        Factor applied to the planted fractions at the second session.
    severity_sd : float
        Standard deviation of the per-patient severity multiplier (mean 1); 0 makes every
        patient's planted fraction exactly ``effect_size * weight``.
    """

    n_subjects: int = 40
    n_sites: int = 3
    seed: int = 0
    voxel_size: float = 2.0
    effect_size: float = 0.15
    disease: str = "als"
    groups: Mapping[str, Mapping[str, float]] | None = None
    anatomy: str = "mni"
    anatomy_dir: str | None = None
    age_range: tuple[float, float] = (45.0, 80.0)
    longitudinal_fraction: float = 0.25
    flair_fraction: float = 0.30
    progression: float = 1.3
    severity_sd: float = 0.25

    def resolved_groups(self) -> dict[str, dict[str, float]]:
        """Return the groups in use: ``groups`` if given, else the ``disease`` preset.

        Returns
        -------
        dict
            ``{group: {region: weight}}`` with plain dicts.
        """
        if self.disease not in PRESETS:
            raise ValueError(f"unknown disease {self.disease!r}; choose from {sorted(PRESETS)}")
        groups = PRESETS[self.disease] if self.groups is None else self.groups
        return {
            str(g): {str(r): float(w) for r, w in regions.items()} for g, regions in groups.items()
        }

    def validate(self) -> None:
        """Raise ``ValueError`` for parameters outside their meaningful range."""
        if self.n_subjects < 1 or self.n_sites < 1:
            raise ValueError("n_subjects and n_sites must be at least 1")
        if not 0.5 <= self.voxel_size <= 8.0:
            raise ValueError(f"voxel_size must be within 0.5..8 mm, got {self.voxel_size}")
        if not 0.0 <= self.effect_size < 0.6:
            raise ValueError(f"effect_size must be within [0, 0.6), got {self.effect_size}")
        if self.anatomy not in ("mni", "synthseg"):
            raise ValueError(f"anatomy must be 'mni' or 'synthseg', got {self.anatomy!r}")
        if self.anatomy == "synthseg" and not self.anatomy_dir:
            raise ValueError("anatomy='synthseg' needs anatomy_dir (a folder of label maps)")
        for name in ("longitudinal_fraction", "flair_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
        if self.progression < 1.0 or self.severity_sd < 0.0:
            raise ValueError("progression must be >= 1 and severity_sd >= 0")
        groups = self.resolved_groups()
        if not any(not regions for regions in groups.values()):
            raise ValueError("one group must have no regions (the control group)")
        for group, regions in groups.items():
            for region in regions:
                if region not in REGIONS:
                    raise ValueError(
                        f"group {group!r}: unknown region {region!r}; "
                        f"known regions: {sorted(REGIONS)}"
                    )


def make_cohort(
    bids_dir: str | os.PathLike[str], spec: CohortSpec | None = None, *, n_jobs: int = 1
) -> Path:
    """Generate a synthetic multi-site BIDS cohort with planted atrophy and ground truth.

    Parameters
    ----------
    bids_dir : path-like
        Output folder: new, empty, or a previous synthetic cohort (whose generated files are
        replaced; other folders such as ``derivatives/`` are kept).
    spec : CohortSpec, optional
        Generation parameters (defaults: 40 subjects, 3 sites, 2 mm, ALS preset).
    n_jobs : int
        Worker processes; results do not depend on it.

    Returns
    -------
    pathlib.Path
        ``bids_dir``.

    Raises
    ------
    ValueError
        Invalid parameters, or a region absent from the anatomy source.
    FileExistsError
        ``bids_dir`` is not empty and not a previous synthetic cohort.
    """
    spec = spec or CohortSpec()
    spec.validate()
    bids_dir = Path(bids_dir)
    groups = spec.resolved_groups()
    regions = sorted({r for regs in groups.values() for r in regs} | set(age_fractions(60)))
    keys = (
        ["mni"]
        if spec.anatomy == "mni"
        else [str(p) for p in synthseg_maps(spec.anatomy_dir or "")]
    )
    if spec.anatomy == "mni":
        prepare_regions("mni", regions)
    else:  # every SynthSeg map has the same label set; workers check the others anyway
        check_regions(keys[0], regions)
    prepare_output(bids_dir)

    cohort_ss, site_ss, subjects_ss = np.random.SeedSequence(spec.seed).spawn(3)
    sites = draw_sites(spec.n_sites, spec.voxel_size, np.random.default_rng(site_ss))
    plans = plan_cohort(
        spec, sites, keys, np.random.default_rng(cohort_ss), subjects_ss.spawn(spec.n_subjects)
    )
    write_json(bids_dir / "dataset_description.json", dataset_description())
    results = simulate_subjects(plans, bids_dir, n_jobs)
    columns = participants_columns(spec.disease, sites, groups)
    write_tsv(bids_dir / "participants.tsv", list(columns), [p.participant for p in plans])
    write_json(bids_dir / "participants.json", columns)
    write_readme_files(bids_dir, spec, groups)
    write_ground_truth(
        bids_dir,
        [row for rows, _ in results for row in rows],
        set().union(*(codes for _, codes in results)),
        generation_record(spec, groups, sites),
    )
    return bids_dir


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: ``python -m bids_app.synthetic OUT_DIR [options]``.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status (0 on success, 1 on a refused or invalid request).
    """
    parser = argparse.ArgumentParser(
        prog="python -m bids_app.synthetic",
        description="Generate a synthetic multi-site BIDS cohort with planted atrophy.",
    )
    parser.add_argument("out_dir", type=Path, help="output BIDS folder (new or empty)")
    parser.add_argument("--n-subjects", type=int, default=40)
    parser.add_argument("--n-sites", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--voxel-size", type=float, default=2.0, help="mm")
    parser.add_argument("--effect-size", type=float, default=0.15)
    parser.add_argument("--disease", choices=sorted(PRESETS), default="als")
    parser.add_argument("--anatomy", choices=("mni", "synthseg"), default="mni")
    parser.add_argument(
        "--anatomy-dir", default=None, help="folder of SynthSeg label maps (for --anatomy synthseg)"
    )
    parser.add_argument("--n-jobs", type=int, default=2)
    args = parser.parse_args(argv)
    spec = CohortSpec(
        n_subjects=args.n_subjects,
        n_sites=args.n_sites,
        seed=args.seed,
        voxel_size=args.voxel_size,
        effect_size=args.effect_size,
        disease=args.disease,
        anatomy=args.anatomy,
        anatomy_dir=args.anatomy_dir,
    )
    try:
        out = make_cohort(args.out_dir, spec, n_jobs=args.n_jobs)
    except (ValueError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(out)
    return 0

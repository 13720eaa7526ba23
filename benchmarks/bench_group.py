"""Benchmark of the group-level classification: the full Turrisi 2024 grid on a 654 × 400 table.

Issue target: 3 feature sets × 9 classifiers, nested 3-fold cross-validation, on a 654 × 400
table in at most 3 minutes on 2 cores. The table is drawn by
:func:`bids_app.synthetic.features.make_feature_cohort` (654 subjects as in Turrisi 2024, 3 sites,
planted group, age and site effects); the feature sets mimic Turrisi 2024's: 107 columns (the
radiomic set), 256 columns (a deep-feature layer) and all 400. Every classifier runs in the
product's pipeline (scaler → ComBat → SMOTE k=5 → classifier) with the inner grid search on
2 processes, as ``group --nprocs 2`` runs it.

Writes ``benchmarks/results/group.tsv`` (seconds and mean AUC per feature set and classifier, the
total, the peak RSS) and ``benchmarks/results/group_machine.json``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(REPO))

from bench_preprocessing import machine  # noqa: E402

from bids_app.config import CLASSIFIER_NAMES  # noqa: E402
from bids_app.models.classifiers import CLASSIFIERS, build_pipeline  # noqa: E402
from bids_app.models.crossval import nested_cross_validate, outer_splits  # noqa: E402
from bids_app.models.design import SITE, Target, build_design, join_families  # noqa: E402
from bids_app.runtime import limit_threads  # noqa: E402
from bids_app.synthetic.features import make_feature_cohort  # noqa: E402

#: Issue target for the whole grid (seconds, 2 cores).
TARGET_S = 180.0


def cohort_design(n_subjects: int, n_features: int, seed: int):
    """Draw the cohort and build its design with three Turrisi 2024-like feature sets."""
    cohort = make_feature_cohort(
        n_subjects=n_subjects,
        n_features=n_features,
        n_informative=20,
        effect_size=0.6,
        n_sites=3,
        site_shift=0.5,
        site_scale=0.2,
        prevalence=548 / 654,  # Turrisi 2024: 548 ALS, 106 mimics
        seed=seed,
    )
    features, _ = join_families({"table": cohort.features})
    columns = [c for c in features.columns if c.startswith("f")]
    families = {"radiomic107": columns[:107], "deep256": columns[107:363], "all400": columns}
    participants = cohort.participants.set_index(
        cohort.participants.participant_id.str.removeprefix("sub-")
    )
    clinical = participants.reindex(features["participant_id"].str.removeprefix("sub-"))
    clinical.index = features.index
    return build_design(
        features,
        families,
        clinical,
        Target("diagnosis", "ALS"),
        list(families),
        covariates=("age", "sex"),
        site_column="site",
    )


def main(argv: list[str] | None = None) -> None:
    """Run the grid and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=654)
    parser.add_argument("--features", type=int, default=400)
    parser.add_argument("--classifiers", nargs="+", default=list(CLASSIFIER_NAMES))
    parser.add_argument("--n-jobs", type=int, default=2)
    args = parser.parse_args(argv)
    limit_threads(1)
    design = cohort_design(args.subjects, args.features, seed=0)
    splits = outer_splits(design.y, design.groups, 3, 1, 42)
    rows = []
    start_all = time.perf_counter()
    for feature_set, columns in design.feature_sets.items():
        X = design.X(feature_set)  # noqa: N806
        for name in args.classifiers:
            spec = CLASSIFIERS[name]
            pipeline = build_pipeline(
                spec, columns, 42, site_column=SITE, covariates=design.covariates
            )
            start = time.perf_counter()
            result = nested_cross_validate(
                X, design.y, design.groups, spec, pipeline, splits, feature_set, n_jobs=args.n_jobs
            )
            seconds = time.perf_counter() - start
            rows.append(
                {
                    "feature_set": feature_set,
                    "n_features": len(columns),
                    "classifier": name,
                    "seconds": round(seconds, 1),
                    "auc_mean": round(result.folds["auc"].mean(), 3),
                    "f1_mean": round(result.folds["f1"].mean(), 3),
                }
            )
            print(f"{feature_set:12s} {name:20s} {seconds:7.1f} s", flush=True)
    total = time.perf_counter() - start_all
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows.append(
        {
            "feature_set": "total",
            "n_features": args.features,
            "classifier": f"{len(args.classifiers)} classifiers",
            "seconds": round(total, 1),
            "auc_mean": float("nan"),
            "f1_mean": float("nan"),
        }
    )
    table = pd.DataFrame(rows)
    table["rows"] = len(design.y)
    table["target_s"] = TARGET_S
    table["peak_rss_mb_parent"] = round(peak)
    RESULTS.mkdir(exist_ok=True)
    table.to_csv(RESULTS / "group.tsv", sep="\t", index=False)
    (RESULTS / "group_machine.json").write_text(json.dumps(machine(), indent=2) + "\n")
    print(table.to_string(index=False))
    print(f"total {total:.0f} s (target {TARGET_S:.0f} s)")


if __name__ == "__main__":
    main()

"""Compare two NeuroStrat output folders: the same files, and the same volumes within 1e-6.

Used by ``container/test.sh`` to check that the image computes what the virtual environment
computes on the same input::

    python container/compare_outputs.py OUT_A OUT_B [--tolerance 1e-6]

The run logs (``logs/``) are named by run and are left out of the file lists.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

#: Files whose names hold a run identifier.
_RUN_SPECIFIC = ("logs",)


def output_files(folder: Path) -> set[str]:
    """Relative paths of the files under ``folder``, run logs excepted."""
    return {
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file() and path.relative_to(folder).parts[0] not in _RUN_SPECIFIC
    }


def largest_difference(first: Path, second: Path) -> float:
    """Largest absolute difference between the numeric columns of two TSV tables."""
    a, b = (pd.read_csv(path, sep="\t") for path in (first, second))
    if list(a.columns) != list(b.columns) or a.shape != b.shape:
        return float("inf")
    numeric = a.select_dtypes("number").columns
    if not a.drop(columns=numeric).equals(b.drop(columns=numeric)):
        return float("inf")
    values = (a[numeric].to_numpy(float), b[numeric].to_numpy(float))
    if not np.array_equal(np.isnan(values[0]), np.isnan(values[1])):
        return float("inf")
    return float(np.nanmax(np.abs(values[0] - values[1]), initial=0.0))


def main() -> int:
    """Print the differences; 0 when the folders agree, 1 otherwise."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("--tolerance", type=float, default=1e-6)
    options = parser.parse_args()
    first, second = output_files(options.first), output_files(options.second)
    problems = [f"only in {options.first}: {name}" for name in sorted(first - second)]
    problems += [f"only in {options.second}: {name}" for name in sorted(second - first)]
    volumes = sorted(name for name in first & second if name.endswith("volumes_morph.tsv"))
    if not volumes:
        problems.append("no volumes table to compare")
    for name in volumes:
        difference = largest_difference(options.first / name, options.second / name)
        if difference > options.tolerance:
            problems.append(f"{name}: values differ by {difference:.3g}")
    print(f"{len(first)} files and {len(second)} files; {len(volumes)} volumes tables compared")
    print("\n".join(problems) or "the outputs agree")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""The README's performance table, generated from ``benchmarks/results/``.

``python benchmarks/readme_table.py --write`` (the last step of ``make bench``) replaces the
lines between the README's ``<!-- performance-table -->`` markers with the table rendered from
the benchmark results; without ``--write`` it prints the table. ``tests/test_readme_table.py``
checks that the README holds exactly what the results give, so no number there is typed by hand.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
START, END = "<!-- performance-table -->", "<!-- /performance-table -->"


def _read(name: str) -> pd.DataFrame:
    return pd.read_csv(RESULTS / name, sep="\t", keep_default_na=False, na_values=[""])


def _one(table: pd.DataFrame, **where: str) -> pd.Series:
    """Return the single row of ``table`` whose columns equal ``where``."""
    rows = table
    for column, value in where.items():
        rows = rows[rows[column].astype(str) == value]
    if len(rows) != 1:
        raise ValueError(f"expected one row where {where}, found {len(rows)}")
    return rows.iloc[0]


def _seconds(value: float) -> str:
    return f"{float(value):.0f} s"


def _preprocessing() -> str:
    row = _one(_read("preprocessing_summary.tsv"), scan="colin27")
    return f"{_seconds(row['ours_whole_s'])} (brain-mask Dice {float(row['dice_ours']):.3f})"


def _brain_extraction() -> str:
    table = _read("brain_extraction.tsv")
    hdbet = _one(table, scan="colin27", method="hdbet_v1_fast")
    deepbet = _one(table, scan="colin27", method="deepbet")
    return (
        f"{_seconds(hdbet['wall_s'])} (Dice {float(hdbet['dice']):.3f} with `ch2bet`; "
        f"deepbet {_seconds(deepbet['wall_s'])}, {float(deepbet['dice']):.3f})"
    )


def _parcellation() -> str:
    table = _read("parcellation.tsv")
    models = ("model30chan18cls", "model30chan50cls")
    times = [_one(table, method=m, kind="summary")["wall_s"] for m in models]
    stems = [_one(table, method=m, kind="volume", structure="brainstem") for m in models]
    diffs = " / ".join(f"{float(row['volume_diff_pct']):+.0f} %" for row in stems)
    seconds = " / ".join(f"{float(t):.0f}" for t in times)
    return f"{seconds} s (brain stem {diffs.replace('-', '−')})"


def _features() -> str:
    table = _read("features.tsv")
    total = _one(table, scan="colin", step="all")
    thickness = _one(table, scan="colin", step="thickness")
    return f"{_seconds(total['wall_s'])} (thickness {_seconds(thickness['wall_s'])})"


def _group() -> str:
    return _seconds(_one(_read("group.tsv"), feature_set="total")["seconds"])


def _deep() -> str:
    return _seconds(_one(_read("deep_cpu.tsv"), task="inference+lrp")["value"])


def _demo() -> str:
    return _seconds(_one(_read("demo.tsv"), phase="total")["wall_s"])


@dataclass(frozen=True)
class Row:
    """One line of the table: what was measured, how its cell is read, from which file."""

    step: str
    cell: Callable[[], str]
    source: str


ROWS = (
    Row(
        "participant level, preprocessing, Colin27 at 1 mm",
        _preprocessing,
        "preprocessing_summary.tsv",
    ),
    Row(
        "brain extraction, HD-BET v1 fast, Colin27 at 1 mm",
        _brain_extraction,
        "brain_extraction.tsv",
    ),
    Row(
        "MeshNet parcellation, 18 / 50 classes, FreeSurfer brain",
        _parcellation,
        "parcellation.tsv",
    ),
    Row("participant level, all features, Colin27 at 1 mm", _features, "features.tsv"),
    Row(
        "group level, 3 feature sets × 9 classifiers, 654 × 400 synthetic table",
        _group,
        "group.tsv",
    ),
    Row("ResNet3D inference + LRP, one 1 mm subject", _deep, "deep_cpu.tsv"),
    Row(
        "`make demo` (24 subjects at 3 mm, participant + group), after the install",
        _demo,
        "demo.tsv",
    ),
)


def render_table() -> str:
    """Return the Markdown table of :data:`ROWS`, one line per row, read from the results.

    Returns
    -------
    str
        The header, the rule and one line per row, newline-terminated.
    """
    lines = ["| step | time | source |", "|---|---|---|"]
    lines += [f"| {row.step} | {row.cell()} | `{row.source}` |" for row in ROWS]
    return "\n".join(lines) + "\n"


def readme_table(text: str) -> str:
    """Return the table between the markers of the README's ``text``.

    Raises
    ------
    ValueError
        If the markers are missing or out of order.
    """
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"README.md needs the markers {START} and {END}, in this order")
    return text[start + len(START) : end].strip("\n") + "\n"


def write_readme(readme: Path = README) -> None:
    """Replace the README's table between the markers by :func:`render_table`."""
    text = readme.read_text(encoding="utf-8")
    old = readme_table(text)
    readme.write_text(text.replace(old, render_table(), 1), encoding="utf-8")


def main() -> None:
    """Print the table, or write it into README.md with ``--write``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update README.md in place")
    if parser.parse_args().write:
        write_readme()
    else:
        print(render_table(), end="")


if __name__ == "__main__":
    main()

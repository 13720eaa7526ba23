"""The README's performance table is the one the benchmark results give (no hand-typed number)."""

from __future__ import annotations

import pytest

from benchmarks.readme_table import README, readme_table, render_table


def test_readme_table_is_generated_from_the_results():
    assert readme_table(README.read_text(encoding="utf-8")) == render_table(), (
        "README.md's performance table differs from benchmarks/results/: "
        "run `python benchmarks/readme_table.py --write`"
    )


def test_markers_are_required():
    with pytest.raises(ValueError, match="performance-table"):
        readme_table("| step | time | source |\n")

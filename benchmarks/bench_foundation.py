"""Benchmark of the foundation: synthetic cohort generation and the participant/group levels.

Writes ``benchmarks/results/foundation.tsv`` (step, wall seconds, peak RSS) and
``benchmarks/results/foundation_machine.json`` (the machine). Run with ``make bench``.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"


def _timed(step: str, command: list[str]) -> dict:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"step": step, "wall_s": round(wall, 1), "peak_rss_mb_so_far": round(peak_mb)}


def main() -> None:
    """Run the benchmark and write the results."""
    python = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        bids, out, work = Path(tmp) / "bids", Path(tmp) / "out", Path(tmp) / "work"
        common = ["-w", str(work), "--seed", "0", "-q"]
        rows = [
            _timed(
                "synthetic cohort: 40 subjects, 3 sites, 2 mm, 2 processes",
                [
                    python,
                    "-m",
                    "bids_app.synthetic",
                    str(bids),
                    "--n-subjects",
                    "40",
                    "--n-jobs",
                    "2",
                ],
            ),
            _timed(
                "participant level (conform), all sessions, --nprocs 2",
                [
                    python,
                    "-m",
                    "bids_app",
                    str(bids),
                    str(out),
                    "participant",
                    "--nprocs",
                    "2",
                    "--sloppy",
                    *common,
                ],
            ),
            _timed(
                "participant level re-run (everything skipped)",
                [python, "-m", "bids_app", str(bids), str(out), "participant", "--sloppy", *common],
            ),
            _timed(
                "group level", [python, "-m", "bids_app", str(bids), str(out), "group", *common]
            ),
        ]
    RESULTS.mkdir(exist_ok=True)
    pd.DataFrame(rows).to_csv(RESULTS / "foundation.tsv", sep="\t", index=False)
    machine = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor(),
        "python": platform.python_version(),
    }
    (RESULTS / "foundation_machine.json").write_text(json.dumps(machine, indent=2) + "\n")
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()

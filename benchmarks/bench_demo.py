"""Benchmark of ``make demo``: the demonstration from nothing, as a new user runs it.

Runs ``python -m bids_app.cli.demo`` (the cohort, the participant level, the group level) into
a temporary folder with ``make demo``'s settings, and writes ``benchmarks/results/demo.tsv``: the
wall and CPU seconds of each phase and of the whole, the settings, the machine, and the load
average at the start, during the run (mean of samples every 15 s) and at the end. Issue target:
under 10 minutes on 2 idle cores; on a shared machine compare the CPU seconds. The rows are
written after each phase, so a run cut short keeps the phases it finished. Then opens the
group report in headless Chromium (as ``tests/test_demo.py`` does), checks that no image is
broken and no section empty, and saves a screenshot as ``benchmarks/results/demo_report.png``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(REPO))

from bench_preprocessing import machine  # noqa: E402

from bids_app.cli.demo import DemoResult, DemoSettings, run_demo  # noqa: E402

#: Issue target for the whole demonstration (seconds, 2 idle cores).
TARGET_S = 600.0


class LoadSampler:
    """Sample the 1-minute load average every ``interval`` seconds in a background thread."""

    def __init__(self, interval: float = 15.0) -> None:
        self.interval = interval
        self.samples = [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(os.getloadavg()[0])


def main(argv: list[str] | None = None) -> int:
    """Run the demonstration into a temporary folder and write the results."""
    defaults = DemoSettings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=defaults.subjects)
    parser.add_argument("--sites", type=int, default=defaults.sites)
    parser.add_argument("--voxel-size", type=float, default=defaults.voxel_size)
    parser.add_argument("--dl-epochs", type=int, default=defaults.dl_epochs)
    parser.add_argument("--nprocs", type=int, default=defaults.nprocs)
    parser.add_argument("--output", type=Path, default=RESULTS / "demo.tsv")
    parser.add_argument("--screenshot", type=Path, default=RESULTS / "demo_report.png")
    parser.add_argument("--note", default="", help="e.g. 'shared machine: five other jobs'")
    options = parser.parse_args(argv)
    settings = DemoSettings(
        subjects=options.subjects,
        sites=options.sites,
        voxel_size=options.voxel_size,
        dl_epochs=options.dl_epochs,
        nprocs=options.nprocs,
    )
    description = machine()
    load_start = os.getloadavg()

    def write(result: DemoResult, checked: str = "") -> None:
        """Write the rows of the phases done so far (a run cut short keeps them)."""
        rows = [
            {
                "phase": phase,
                "wall_s": round(seconds, 1),
                "cpu_s": round(result.cpu_seconds[phase], 1),
                "target_s": TARGET_S if phase == "total" else None,
                "subjects": settings.subjects,
                "sessions": "first" if settings.first_session_only else "all",
                "sites": settings.sites,
                "voxel_mm": settings.voxel_size,
                "skull_strip": settings.skull_strip,
                "dl_epochs": settings.dl_epochs,
                "nprocs": settings.nprocs,
                "load1_start": round(load_start[0], 2),
                "load5_start": round(load_start[1], 2),
                "load1_mean": round(sum(load.samples) / len(load.samples), 2),
                "load1_now": round(os.getloadavg()[0], 2),
                "report_check": checked,
                "date": description["date"],
                "cpu_model": description["cpu_model"],
                "cpus": description["cpus"],
                "ram_gb": description["ram_gb"],
                "neurostrat": description["neurostrat"],
                "note": options.note,
            }
            for phase, seconds in result.seconds.items()
        ]
        options.output.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(options.output, sep="\t", index=False)

    with tempfile.TemporaryDirectory(prefix="neurostrat-demo-") as folder, LoadSampler() as load:
        result = run_demo(Path(folder) / "demo", settings, on_phase=write)
        if result.exit_code:
            print(f"the demonstration failed (exit {result.exit_code})", file=sys.stderr)
            return result.exit_code
        write(result, _check_report(result.group_report, options.screenshot))
    table = pd.read_csv(options.output, sep="\t")
    print(table[["phase", "wall_s", "cpu_s", "load1_start", "load1_mean"]].to_string(index=False))
    print(f"results: {options.output}")
    return 0


def _check_report(report: Path | None, screenshot: Path) -> str:
    """Open the group report in headless Chromium; save a screenshot; describe what was found."""
    if report is None or shutil.which("chromium") is None:
        return "not checked (no chromium)"
    from tests.test_demo import inspect_report

    found = inspect_report(report, screenshot)
    problems = [f"broken image {name}" for name in found["broken"]]
    problems += [f"empty section {name}" for name in found["empty"]]
    summary = f"{found['images']} images, {found['headings']} sections"
    return f"{summary}: {'; '.join(problems)}" if problems else f"{summary}, all rendered"


if __name__ == "__main__":
    raise SystemExit(main())

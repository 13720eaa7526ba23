"""``python -m bids_app.cli.demo DEMO_DIR``: the demonstration, with one progress bar and an ETA.

Builds the synthetic cohort when ``DEMO_DIR/bids`` is missing, then runs the participant level
and the group level (each ``python -m bids_app`` in a subprocess, whose log lines are read for the
progress; each level keeps its own log under ``DEMO_DIR/derivatives/logs``), and shows one bar
for the whole demonstration (a tqdm bar on a terminal, otherwise a plain line every few per
cent). The phases are weighted by the CPU times measured (``benchmarks/NOTES.md``); the ETA
follows the actual pace. The last lines name the reports and what they show. Every analysis
family runs: volumes, thickness, radiomics, histograms, classification, clustering, and a CNN
explained with LRP.
"""

from __future__ import annotations

import argparse
import io
import queue
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

from bids_app.config import CLASSIFIER_NAMES
from bids_app.derivatives.naming import NON_BIDS_FOLDERS, group_path, report_path
from bids_app.errors import NeuroStratError
from bids_app.inputs.layout import check_dataset_root
from bids_app.inputs.participants import read_participants
from bids_app.utils.logs import format_seconds, progress_line

#: Lines of a participant-level run that mark a finished session.
_SESSION_DONE = re.compile(r"^(?:INFO|ERROR): (sub-\S+): (?:done|skipped|failed)\b")
_GROUP_REPORT = re.compile(r"^Group report: (.+\.html)\s*$")
#: Patients the clustering needs (up to 6 clusters of 2, :mod:`bids_app.statistics.clustering`).
MIN_PATIENTS_TO_CLUSTER = 12
#: The plain-line progress is printed at every ``_STEP`` per cent.
_STEP = 5


#: The demonstration's classifiers: a linear model, a kernel machine and a neighbour vote, the
#: three of the comparison with the smallest grids (the random forest's 500 trees and the DNNs'
#: five trials cost most of the group level's time on a cohort this small).
DEMO_CLASSIFIERS = ("logistic_regression", "svm_linear", "knn")


@dataclass(frozen=True)
class DemoSettings:
    """The demonstration's cohort and its cheap settings.

    The defaults (24 subjects, 2 sites, 3 mm voxels, brain extraction by template registration,
    3 CNN epochs) make ``make demo`` fit in 10 minutes on 2 cores: HD-BET, which ``auto`` picks,
    costs about 35 CPU seconds a session whatever the voxel size. Only the first session of each
    subject is processed (a quarter of them have a second one). 24 subjects give the 12
    patients the clustering needs; three classifiers with small grids (:data:`DEMO_CLASSIFIERS`)
    instead of the nine; SMOTE takes 3 neighbours (an inner training fold of 24 subjects holds
    5 of a class, too few for the default 5); the planted atrophy is twice the synthetic
    cohort's default (30 % instead of 15 %), to give so small a cohort a chance to show it.
    ``make demo-full`` passes 40 subjects, all sessions, 3 sites, 2 mm, ``auto``, 6 epochs, 15 %,
    the nine classifiers and SMOTE's default 5 neighbours.
    """

    subjects: int = 24
    sites: int = 2
    voxel_size: float = 3.0
    nprocs: int = 2
    dl_epochs: int = 3
    dl_base_width: int = 4
    seed: int = 0
    skull_strip: str = "template"
    first_session_only: bool = True
    smote_k: int = 3
    effect_size: float = 0.3
    classifiers: tuple[str, ...] = DEMO_CLASSIFIERS
    group_options: tuple[str, ...] = ()


@dataclass(frozen=True)
class Phase:
    """One step of the demonstration: a command and its expected duration on 2 idle cores."""

    name: str
    command: tuple[str, ...]
    expected_s: float
    units: int = 0  # sessions of the participant level (0: progress by time only)


@dataclass
class DemoResult:
    """What a demonstration did: the exit code, each phase's wall and CPU seconds, the reports."""

    exit_code: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    group_report: Path | None = None
    participant_report: Path | None = None


def what_it_shows(clustered: bool) -> str:
    """Describe what the group report and a participant report show (printed at the end).

    Examples
    --------
    >>> "clusters the patients" in what_it_shows(True), "clusters" in what_it_shows(False)
    (True, False)
    """
    clusters = "clusters the patients (Milella et al. 2023), " if clustered else ""
    return (
        "The group report compares ALS with CN (demographics, ANCOVA of the volumes, cortical "
        "thickness and radiomics, intensity histograms; the synthetic cohort plants atrophy of "
        f"the medulla and the precentral and paracentral cortex), {clusters}and gives the "
        "cross-validated classification of ALS vs CN (AUC per feature set and classifier) and "
        "the CNN's LRP attention maps. Each participant report shows that session's quality "
        "checks (brain mask, spatial normalisation, tissue segmentation, quality metrics)."
    )


def expected_seconds(settings: DemoSettings, sessions: int) -> dict[str, float]:
    """Estimate the phases' durations on 2 idle cores, from the CPU times measured here.

    A session costs about 34 CPU seconds with ``--sloppy`` (its registration works on a 2 mm
    template grid whatever the voxel size) and the sessions run ``nprocs`` at a time; the
    cohort costs about one CPU second per subject at 3 mm; the group level has a fixed part and
    a part per session and epoch (the CNN). Only the ratios matter: they weight the phases of
    the progress bar, whose ETA then follows the actual pace.

    Examples
    --------
    >>> times = expected_seconds(DemoSettings(), 24)
    >>> times["participant"] > times["group"] > times["cohort"]
    True
    """
    voxels = (3.0 / settings.voxel_size) ** 3
    workers = max(min(settings.nprocs, sessions), 1)
    return {
        "cohort": 5.0 + 0.5 * settings.subjects * voxels,
        "participant": 10.0 + 34.0 * sessions / workers,
        "group": 40.0 + 1.5 * sessions * settings.dl_epochs * voxels,
    }


def count_sessions(bids_dir: Path) -> int:
    """Count the subject/sessions of a BIDS dataset that have a T1w image."""
    return len({path.parent.parent for path in bids_dir.glob("sub-*/**/anat/*_T1w.nii*")})


def can_cluster(bids_dir: Path, settings: DemoSettings) -> bool:
    """Tell whether the cohort has the patients that the clustering needs.

    The clustering tries up to 6 clusters of at least 2 patients (Milella et al. 2023's BIC
    choice), so it needs 12 ALS subjects; the synthetic cohort is half ALS.
    """
    if have_cohort(bids_dir):
        patients = int((read_participants(bids_dir)["diagnosis"] == "ALS").sum())
    else:
        patients = settings.subjects // 2
    return patients >= MIN_PATIENTS_TO_CLUSTER


def have_cohort(bids_dir: Path) -> bool:
    """Tell whether ``bids_dir`` holds a dataset already (its ``dataset_description.json``)."""
    try:
        check_dataset_root(bids_dir)
    except NeuroStratError:
        return False
    return True


def demo_phases(demo_dir: Path, settings: DemoSettings) -> list[Phase]:
    """List the demonstration's commands, in order (the cohort only when it is missing)."""
    bids, derivatives, work = demo_dir / "bids", demo_dir / "derivatives", demo_dir / "work"
    python = (sys.executable, "-m")
    common = ("-w", str(work), "--nprocs", str(settings.nprocs), "--seed", str(settings.seed))
    if settings.first_session_only:  # a quarter of the subjects have a second session
        common += ("--session-label", "01")
    app = (*python, "bids_app", str(bids), str(derivatives))
    cohort_exists = have_cohort(bids)
    if settings.first_session_only:
        sessions = settings.subjects
    else:
        sessions = count_sessions(bids) if cohort_exists else round(settings.subjects * 1.25)
    expected = expected_seconds(settings, sessions)
    phases = (
        []
        if cohort_exists
        else [
            Phase(
                "cohort",
                (
                    *python,
                    "bids_app.synthetic",
                    str(bids),
                    "--n-subjects",
                    str(settings.subjects),
                    "--n-sites",
                    str(settings.sites),
                    "--seed",
                    str(settings.seed),
                    "--voxel-size",
                    str(settings.voxel_size),
                    "--effect-size",
                    str(settings.effect_size),
                    "--n-jobs",
                    str(settings.nprocs),
                ),
                expected["cohort"],
            )
        ]
    )
    participant = (*app, "participant", *common, "--sloppy", "--skull-strip", settings.skull_strip)
    group = (
        *app,
        "group",
        *common,
        "--target",
        "diagnosis",
        "--positive-label",
        "ALS",
        *(("--cluster-features", "milella2023") if can_cluster(bids, settings) else ()),
        "--dl-models",
        "resnet3d",
        "--dl-base-width",
        str(settings.dl_base_width),
        "--dl-epochs",
        str(settings.dl_epochs),
        "--dl-batch-size",
        "4",
        "--smote-k",
        str(settings.smote_k),
        "--classifiers",
        *settings.classifiers,
        *settings.group_options,
    )
    return [
        *phases,
        Phase("participant", participant, expected["participant"], units=sessions),
        Phase("group", group, expected["group"]),
    ]


class Progress:
    """One progress display over weighted phases: a tqdm bar on a terminal, else plain lines."""

    def __init__(self, phases: Sequence[Phase], stream: TextIO) -> None:
        self.weights = {phase.name: phase.expected_s for phase in phases}
        self.total = sum(self.weights.values())
        self.stream = stream
        self.start = time.monotonic()
        self.done_before = 0.0  # expected seconds of the finished phases
        self.phase: Phase | None = None
        self.phase_start = self.unit_start = self.start
        self.units_done = 0
        self.printed = -_STEP
        self.printed_phase = ""
        self.bar = (
            tqdm(total=100, file=stream, bar_format="demo: {percentage:3.0f} % |{bar}| {postfix}")
            if stream.isatty()
            else None
        )

    def begin(self, phase: Phase) -> None:
        """Start a phase."""
        self.phase = phase
        self.phase_start = self.unit_start = time.monotonic()
        self.units_done = 0
        self.show()

    def unit_done(self) -> None:
        """Count one finished unit (a session) of the current phase."""
        self.units_done += 1
        self.unit_start = time.monotonic()
        self.show()

    def end(self) -> None:
        """Finish the current phase."""
        if self.phase is not None:
            self.done_before += self.weights[self.phase.name]
        self.phase = None
        self.show()

    def fraction(self) -> float:
        """Return the part done: the finished phases, and the current one's share.

        Within a phase the share grows with time at the expected pace, up to 95 %; a phase of
        sessions counts its finished sessions and interpolates within the running ones.
        """
        now = time.monotonic()
        current = 0.0
        if self.phase is not None:
            if self.phase.units:
                per_unit = self.phase.expected_s / self.phase.units
                running = min((now - self.unit_start) / per_unit, 0.95)
                current = min((self.units_done + running) / self.phase.units, 0.99)
            else:
                current = min((now - self.phase_start) / self.phase.expected_s, 0.95)
            current *= self.weights[self.phase.name]
        return min((self.done_before + current) / self.total, 1.0)

    def eta(self, fraction: float) -> float:
        """Return the seconds left: the expected ones, scaled by the pace so far.

        The pace (actual over expected seconds of the work done) is 1 until 10 expected seconds
        of work are done, so the first estimate is the expected duration.
        """
        done = fraction * self.total
        pace = (time.monotonic() - self.start) / done if done >= 10 else 1.0
        return (self.total - done) * pace

    def show(self) -> None:
        """Update the bar, or print a line at each step of per cent and at each phase."""
        fraction = self.fraction()
        eta = self.eta(fraction)
        detail = self._detail()
        eta_text = f"ETA {format_seconds(eta)}"
        if self.bar is not None:
            self.bar.n = round(100 * fraction)
            self.bar.set_postfix_str(f"{eta_text}, {detail}" if detail else eta_text)
            return
        percent = int(100 * fraction)
        if self.phase is None and percent < 100:  # between phases: the next one prints
            return
        phase = self.phase.name if self.phase else ""
        if percent - self.printed >= _STEP or phase != self.printed_phase or percent == 100:
            self.printed = percent - percent % _STEP if percent < 100 else 100
            self.printed_phase = phase
            print(progress_line("demo", fraction, eta, detail), file=self.stream, flush=True)

    def _detail(self) -> str:
        """Describe what runs now, e.g. ``participant level 7/20 sessions``."""
        if self.phase is None:
            return ""
        if self.phase.units:
            return f"participant level {self.units_done}/{self.phase.units} sessions"
        return {"cohort": "building the synthetic cohort", "group": "group level"}.get(
            self.phase.name, self.phase.name
        )

    def close(self) -> None:
        """Close the bar (on a terminal)."""
        if self.bar is not None:
            self.bar.close()


def run_phase(phase: Phase, log: TextIO, progress: Progress, on_line: Callable[[str], None]) -> int:
    """Run one phase's command, its output into ``log``, updating the progress every second."""
    lines: queue.Queue[str | None] = queue.Queue()
    process = subprocess.Popen(
        phase.command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
    )

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    progress.begin(phase)
    log.write(f"$ {' '.join(phase.command)}\n")
    try:
        while (line := _next_line(lines, progress)) is not None:
            log.write(line)
            on_line(line)
            if phase.units and _SESSION_DONE.match(line):
                progress.unit_done()
            else:
                progress.show()
    except BaseException:  # Ctrl-C or an error here: the level stops too (it resumes later)
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        raise
    log.flush()
    return process.wait()


def _next_line(lines: queue.Queue[str | None], progress: Progress) -> str | None:
    """Return the command's next line (None at its end), updating the progress every second."""
    while True:
        try:
            return lines.get(timeout=1.0)
        except queue.Empty:
            progress.show()


def run_demo(
    demo_dir: Path,
    settings: DemoSettings,
    stream: TextIO = sys.stderr,
    on_phase: Callable[[DemoResult], None] | None = None,
) -> DemoResult:
    """Run the demonstration into ``demo_dir`` (resuming what exists), with one progress bar.

    Parameters
    ----------
    demo_dir : Path
        Folder of ``bids``, ``derivatives`` and ``work``.
    settings : DemoSettings
        The cohort and the settings.
    stream : file
        Where the progress goes.
    on_phase : callable, optional
        Called with the result so far after each phase (the benchmark writes its rows).

    Returns
    -------
    DemoResult
        The exit code, each phase's seconds and the reports' paths.
    """
    demo_dir = demo_dir.resolve()
    demo_dir.mkdir(parents=True, exist_ok=True)
    phases = demo_phases(demo_dir, settings)
    progress = Progress(phases, stream)
    result = DemoResult()

    def on_line(line: str) -> None:
        match = _GROUP_REPORT.match(line)
        if match:
            result.group_report = Path(match.group(1))

    start = time.monotonic()
    logs = demo_dir / "derivatives" / NON_BIDS_FOLDERS[0]  # each level's own log files
    with io.StringIO() as log:  # the commands' output, shown when one fails
        for phase in phases:
            phase_start, cpu_start = time.monotonic(), _children_cpu()
            code = run_phase(phase, log, progress, on_line)
            result.seconds[phase.name] = time.monotonic() - phase_start
            result.cpu_seconds[phase.name] = _children_cpu() - cpu_start
            if on_phase is not None:
                on_phase(result)
            if code == 1 and phase.name == "participant":  # some sessions failed: go on
                print(
                    f"demo: some sessions failed (see the logs in {logs}); "
                    "the group level uses the others",
                    file=stream,
                )
            elif code != 0:
                progress.close()
                print(
                    f"demo: the {phase.name} step failed (exit {code}); its last lines:",
                    file=stream,
                )
                print("\n".join(log.getvalue().splitlines()[-15:]), file=stream)
                print(f"demo: the levels' logs: {logs}", file=stream)
                result.exit_code = code
                return result
            progress.end()
    progress.close()
    result.seconds["total"] = time.monotonic() - start
    result.cpu_seconds["total"] = sum(result.cpu_seconds.values())
    result.participant_report = _first_participant_report(demo_dir)
    result.group_report = result.group_report or demo_dir / "derivatives" / group_path("report")
    return result


def _first_participant_report(demo_dir: Path) -> Path | None:
    """Return the report of the first subject's first session, if it was written."""
    subjects = sorted(path.name for path in (demo_dir / "bids").glob("sub-*") if path.is_dir())
    if not subjects:
        return None
    sessions = sorted((demo_dir / "bids" / subjects[0]).glob("ses-*"))
    entities = {"sub": subjects[0].removeprefix("sub-")}
    if sessions:
        entities["ses"] = sessions[0].name.removeprefix("ses-")
    path = demo_dir / "derivatives" / report_path(entities)
    return path if path.exists() else None


def _children_cpu() -> float:
    """Return the CPU seconds (user and system) of the finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def build_parser() -> argparse.ArgumentParser:
    """Build the demonstration's command line."""
    defaults = DemoSettings()
    parser = argparse.ArgumentParser(
        prog="python -m bids_app.cli.demo",
        description="Run NeuroStrat's demonstration on a synthetic ALS/CN cohort "
        "(built when DEMO_DIR/bids is missing), with one progress bar for all of it.",
    )
    parser.add_argument("demo_dir", type=Path, help="folder of bids/, derivatives/ and work/")
    parser.add_argument("--subjects", type=int, default=defaults.subjects)
    parser.add_argument("--sites", type=int, default=defaults.sites)
    parser.add_argument("--voxel-size", type=float, default=defaults.voxel_size, help="mm")
    parser.add_argument("--nprocs", type=int, default=defaults.nprocs)
    parser.add_argument("--dl-epochs", type=int, default=defaults.dl_epochs)
    parser.add_argument("--dl-base-width", type=int, default=defaults.dl_base_width)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--effect-size",
        type=float,
        default=defaults.effect_size,
        help="planted atrophy of the ALS subjects (fraction of the regions' volume)",
    )
    parser.add_argument(
        "--smote-k",
        type=int,
        default=defaults.smote_k,
        help="SMOTE's neighbours at the group level (0: no SMOTE)",
    )
    parser.add_argument(
        "--classifiers",
        nargs="+",
        default=list(defaults.classifiers),
        help="classifiers of the group level ('all': the nine of the comparison)",
    )
    parser.add_argument(
        "--all-sessions",
        action="store_true",
        help="process every session (default: the first one of each subject)",
    )
    parser.add_argument(
        "--group-options",
        default="",
        help="further options of the group level, e.g. '--smote-k 1' for a cohort this small",
    )
    parser.add_argument(
        "--skull-strip",
        default=defaults.skull_strip,
        help="brain extraction of the participant level (auto: HD-BET where installed)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demonstration; print where the reports are and what they show.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name.

    Returns
    -------
    int
        The exit code of the step that failed, else 0.
    """
    options = build_parser().parse_args(argv)
    settings = DemoSettings(
        subjects=options.subjects,
        sites=options.sites,
        voxel_size=options.voxel_size,
        nprocs=options.nprocs,
        dl_epochs=options.dl_epochs,
        dl_base_width=options.dl_base_width,
        seed=options.seed,
        skull_strip=options.skull_strip,
        effect_size=options.effect_size,
        group_options=tuple(options.group_options.split()),
        first_session_only=not options.all_sessions,
        smote_k=options.smote_k,
        classifiers=CLASSIFIER_NAMES
        if options.classifiers == ["all"]
        else tuple(options.classifiers),
    )
    try:
        result = run_demo(options.demo_dir, settings)
    except KeyboardInterrupt:
        print("demo: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    if result.exit_code:
        return result.exit_code
    print(f"demo: finished in {format_seconds(result.seconds['total'])}")
    print(f"Group report:       {result.group_report}")
    if result.participant_report is not None:
        print(f"Participant report: {result.participant_report}")
    clustered = can_cluster(options.demo_dir / "bids", settings)
    print(what_it_shows(clustered))
    if not clustered:
        print(f"(No clustering: it needs {MIN_PATIENTS_TO_CLUSTER} patients, 24 subjects.)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark of the participant preprocessing on real scans, against ANTsPy's defaults.

For each real T1w scan in ``../shared/data`` (Colin27 with its skull-stripped reference, a
Philips MPRAGE at 1 mm, a Siemens MPRAGE at 2 mm), in the same run on the same machine:

* **ours**: the whole participant level through the CLI (``--nprocs 2``, full quality) on a
  one-scan BIDS dataset with a fresh work folder; Colin27 and the 2 mm scan also with
  ``--sloppy``. Per-step seconds come from nipype's node reports.
* **baseline**: ANTsPy with its defaults, in a child process: N4, SyN to the 1 mm MNI152
  template at full resolution, and the template brain mask warped back (linear, > 0.5).

Each run is a fresh subprocess: its wall time, its peak RSS (``ru_maxrss`` of the largest
process, from ``wait4``) and the peak summed RSS of its process tree (sampled from ``/proc``).
Dice of the brain mask against ``ch2bet > 0`` is computed for Colin27.

Writes ``benchmarks/results/preprocessing.tsv`` (scan, pipeline, step, wall seconds, peak RSS,
Dice), ``benchmarks/results/preprocessing_summary.tsv`` (speed-up and Dice per scan) and
``benchmarks/results/preprocessing_machine.json`` (the machine, and the load average at the start
and end of each run). Run with ``make bench``; skipped when ``../shared/data`` is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
DATA = REPO.parent / "shared" / "data"

#: Threads of ITK (ANTsPy) in both pipelines.
ITK_THREADS = "2"

#: Nodes of our workflow that do what the baseline's three steps do (N4 on the head,
#: registration, template brain mask in T1w space).
EQUIVALENT_NODES = ("n4_head", "register", "warp_template_mask")

#: The baseline's timed steps, in order (reading the scan is timed but not compared).
BASELINE_STEPS = ("n4", "registration", "brain_mask")

_DURATION = re.compile(r"^\* duration : ([0-9.eE+-]+)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Scan:
    """A real T1w scan and, where one exists, its reference brain image.

    Parameters
    ----------
    name : str
        BIDS subject label (alphanumeric).
    path : Path
        The T1w image.
    reference : Path or None
        A skull-stripped image on the same grid; its nonzero voxels are the reference mask.
    sloppy : bool
        Whether to also run ``--sloppy``.
    """

    name: str
    path: Path
    reference: Path | None
    sloppy: bool


SCANS = (
    Scan("colin27", DATA / "colin27" / "ch2.nii.gz", DATA / "colin27" / "ch2bet.nii.gz", True),
    Scan("philips", DATA / "t1w" / "philips_mprage_1mm.nii.gz", None, False),
    Scan("siemens", DATA / "t1w" / "siemens_mprage_2mm.nii.gz", None, True),
)


@dataclass
class Measure:
    """What one subprocess cost.

    Parameters
    ----------
    returncode : int
        Exit status.
    wall_s : float
        Wall-clock seconds.
    cpu_s : float
        User + system CPU seconds of the run's processes (less sensitive than the wall time to
        other load on the machine).
    peak_rss_mb : float
        Largest resident set of any single process of the run (``ru_maxrss``).
    peak_tree_rss_mb : float
        Largest summed resident set of the run's process tree (sampled every 0.2 s).
    load_start, load_end : tuple of float
        ``os.getloadavg()`` just before and just after the run.
    """

    returncode: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    peak_tree_rss_mb: float
    load_start: tuple[float, float, float]
    load_end: tuple[float, float, float]


def _tree_rss_mb(root: int) -> float:
    """Return the summed RSS (MB) of ``root`` and its descendants, from ``/proc``."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, [root]
    page = os.sysconf("SC_PAGE_SIZE")
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
    return total / 2**20


def measure(command: list[str], log: Path, env: dict[str, str], cwd: Path) -> Measure:
    """Run a command in a fresh subprocess and measure its wall time and memory.

    Parameters
    ----------
    command : list of str
        The command.
    log : Path
        File receiving its stdout and stderr.
    env : dict of str to str
        Its environment.
    cwd : Path
        Its working folder.

    Returns
    -------
    Measure
        Exit status, wall seconds, peak RSS of the largest process and of the process tree.
    """
    load_start = os.getloadavg()
    peak_tree = [0.0]
    with log.open("w") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.2):
                peak_tree[0] = max(peak_tree[0], _tree_rss_mb(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    result = Measure(
        returncode=proc.returncode,
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=usage.ru_maxrss / 1024,  # kB on Linux
        peak_tree_rss_mb=peak_tree[0],
        load_start=load_start,
        load_end=os.getloadavg(),
    )
    return result


def dice(mask_path: Path, reference_path: Path) -> float:
    """Dice overlap of a binary mask with the nonzero voxels of a reference image.

    Both are reoriented to RAS first; a mask on another grid is resampled (nearest neighbour)
    onto the reference's.

    Parameters
    ----------
    mask_path : Path
        The brain mask (nonzero is brain).
    reference_path : Path
        The reference (skull-stripped) image.

    Returns
    -------
    float
        ``2 |A ∩ B| / (|A| + |B|)``.

    Examples
    --------
    >>> import tempfile
    >>> data = np.zeros((4, 4, 4), dtype=np.uint8)
    >>> data[:2] = 1
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     nib.save(nib.Nifti1Image(data, np.eye(4)), Path(tmp) / "a.nii.gz")
    ...     round(dice(Path(tmp) / "a.nii.gz", Path(tmp) / "a.nii.gz"), 3)
    1.0
    """
    reference = nib.as_closest_canonical(nib.load(reference_path))
    mask = nib.as_closest_canonical(nib.load(mask_path))
    if mask.shape != reference.shape or not np.allclose(mask.affine, reference.affine, atol=1e-3):
        from nibabel.processing import resample_from_to

        mask = resample_from_to(mask, reference, order=0)
    a = np.asanyarray(mask.dataobj) > 0
    b = np.asanyarray(reference.dataobj) > 0
    return float(2 * np.logical_and(a, b).sum() / (a.sum() + b.sum()))


def node_durations(work: Path) -> dict[str, float]:
    """Seconds of each node of the participant workflow, from nipype's node reports.

    Parameters
    ----------
    work : Path
        The run's work folder.

    Returns
    -------
    dict of str to float
        Node name to its ``duration`` (seconds).
    """
    durations = {}
    for report in sorted(work.glob("sub_*_wf/*_wf/*/_report/report.rst")):
        match = _DURATION.search(report.read_text(encoding="utf-8", errors="replace"))
        if match:
            durations[report.parent.parent.name] = float(match.group(1))
    return durations


def _env(code: Path) -> dict[str, str]:
    path = os.pathsep.join(filter(None, (str(code), os.environ.get("PYTHONPATH"))))
    return {**os.environ, "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": ITK_THREADS, "PYTHONPATH": path}


def snapshot_code(dest: Path) -> Path:
    """Copy the product's package, so that every run uses the code as it was at the start.

    Others may edit the repository during a benchmark that takes most of an hour; the runs
    import ``bids_app`` from this copy (``PYTHONPATH``, working folder) instead of the checkout.

    Parameters
    ----------
    dest : Path
        An empty folder.

    Returns
    -------
    Path
        ``dest``, holding ``bids_app/`` and the ``version`` file.

    Raises
    ------
    RuntimeError
        When a child process would not import ``bids_app`` from the copy.
    """
    shutil.copytree(
        REPO / "bids_app", dest / "bids_app", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(REPO / "version", dest / "version")
    where = subprocess.run(
        [sys.executable, "-c", "import bids_app; print(bids_app.__file__)"],
        cwd=dest,
        env=_env(dest),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not Path(where).resolve().is_relative_to(dest.resolve()):
        raise RuntimeError(f"the runs would import bids_app from {where}, not from {dest}")
    return dest


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def run_ours(scan: Scan, tmp: Path, code: Path, sloppy: bool) -> tuple[list[dict], dict]:
    """Run our participant level on one scan through the CLI and collect its costs.

    Parameters
    ----------
    scan : Scan
        The scan.
    tmp : Path
        A scratch folder (the BIDS dataset, outputs and work folder go in a new subfolder).
    code : Path
        The copy of the product's code (:func:`snapshot_code`).
    sloppy : bool
        Add ``--sloppy``.

    Returns
    -------
    rows : list of dict
        One row per workflow node and one for the whole run.
    run : dict
        The run's record for the machine JSON (load averages, exit status).
    """
    pipeline = "ours --sloppy" if sloppy else "ours"
    root = Path(tempfile.mkdtemp(prefix=f"{scan.name}_{'sloppy' if sloppy else 'full'}_", dir=tmp))
    bids, out, work = root / "bids", root / "out", root / "work"
    anat = bids / f"sub-{scan.name}" / "anat"
    anat.mkdir(parents=True)
    shutil.copy(scan.path, anat / f"sub-{scan.name}_T1w.nii.gz")
    (bids / "dataset_description.json").write_text(
        json.dumps({"Name": f"benchmark {scan.name}", "BIDSVersion": "1.9.0"}) + "\n"
    )
    command = [
        *(sys.executable, "-m", "bids_app", str(bids), str(out), "participant"),
        *("-w", str(work), "--nprocs", "2", "--skip-bids-validation", "-q"),
        *(["--sloppy"] if sloppy else []),
    ]
    print(f"[{time.strftime('%H:%M:%S')}] {scan.name}: {pipeline} ...", flush=True)
    cost = measure(command, root / "log.txt", _env(code), code)
    mask = out / f"sub-{scan.name}" / "anat" / f"sub-{scan.name}_desc-brain_mask.nii.gz"
    ok = cost.returncode == 0 and mask.is_file()
    if not ok:
        print(f"  failed (exit {cost.returncode}); log tail:", flush=True)
        print("\n".join((root / "log.txt").read_text().splitlines()[-20:]), flush=True)
    durations = node_durations(work)
    template_masks = list(work.glob("sub_*_wf/registration_wf/warp_template_mask/tpl_mask.nii.gz"))
    rows = []
    for node, seconds in durations.items():
        node_dice = None
        if node == "warp_template_mask" and scan.reference and template_masks:
            node_dice = dice(template_masks[0], scan.reference)
        rows.append(
            _row(scan.name, pipeline, f"node {node}", seconds, dice_value=node_dice, kind="node")
        )
    equivalent = [durations.get(node) for node in EQUIVALENT_NODES]
    rows.append(
        _row(
            scan.name,
            pipeline,
            "N4 + registration + brain mask (" + " + ".join(EQUIVALENT_NODES) + ")",
            sum(equivalent) if None not in equivalent else None,
            kind="equivalent",
        )
    )
    rows.append(
        _row(
            scan.name,
            pipeline,
            "whole participant run (CLI, --nprocs 2)" + ("" if ok else " FAILED"),
            cost.wall_s,
            cost,
            dice(mask, scan.reference) if ok and scan.reference else None,
            kind="total",
        )
    )
    print(f"  {cost.wall_s:.1f} s, peak RSS {cost.peak_rss_mb:.0f} MB", flush=True)
    return rows, _run_record(scan.name, pipeline, cost)


def run_baseline(scan: Scan, tmp: Path, code: Path) -> tuple[list[dict], dict]:
    """Run the ANTsPy-defaults baseline on one scan in a child process.

    Parameters
    ----------
    scan : Scan
        The scan.
    tmp : Path
        A scratch folder.
    code : Path
        The copy of the product's code (:func:`snapshot_code`).

    Returns
    -------
    rows : list of dict
        One row per step and one for the whole child process.
    run : dict
        The run's record for the machine JSON.
    """
    pipeline = "baseline (ANTsPy defaults)"
    root = Path(tempfile.mkdtemp(prefix=f"{scan.name}_baseline_", dir=tmp))
    timings, mask = root / "timings.json", root / "mask.nii.gz"
    command = [
        *(sys.executable, str(Path(__file__).resolve()), "--baseline-child"),
        *(str(scan.path), str(timings), str(mask)),
    ]
    print(f"[{time.strftime('%H:%M:%S')}] {scan.name}: {pipeline} ...", flush=True)
    cost = measure(command, root / "log.txt", _env(code), code)
    ok = cost.returncode == 0 and timings.is_file()
    if not ok:
        print(f"  failed (exit {cost.returncode}); log tail:", flush=True)
        print("\n".join((root / "log.txt").read_text().splitlines()[-20:]), flush=True)
    steps = json.loads(timings.read_text()) if ok else {}
    mask_dice = dice(mask, scan.reference) if ok and scan.reference else None
    rows = [
        _row(scan.name, pipeline, step, steps.get(step), kind="node")
        for step in ("read", "template (load, convert)", *BASELINE_STEPS)
    ]
    rows[-1]["dice"] = _round(mask_dice, 4)
    total = [steps.get(step) for step in BASELINE_STEPS]
    rows.append(
        _row(
            scan.name,
            pipeline,
            "N4 + registration + brain mask (" + " + ".join(BASELINE_STEPS) + ")",
            sum(total) if ok else None,
            dice_value=mask_dice,
            kind="equivalent",
        )
    )
    rows.append(
        _row(
            scan.name,
            pipeline,
            "whole child process (imports, template, writing)" + ("" if ok else " FAILED"),
            cost.wall_s,
            cost,
            mask_dice,
            kind="total",
        )
    )
    print(f"  {cost.wall_s:.1f} s, peak RSS {cost.peak_rss_mb:.0f} MB", flush=True)
    return rows, _run_record(scan.name, pipeline, cost)


def _row(
    scan: str,
    pipeline: str,
    step: str,
    wall_s: float | None,
    cost: Measure | None = None,
    dice_value: float | None = None,
    kind: str = "node",
) -> dict:
    return {
        "scan": scan,
        "pipeline": pipeline,
        "step": step,
        "kind": kind,
        "wall_s": _round(wall_s),
        "cpu_s": _round(cost.cpu_s) if cost else None,
        "peak_rss_mb": _round(cost.peak_rss_mb, 0) if cost else None,
        "peak_tree_rss_mb": _round(cost.peak_tree_rss_mb, 0) if cost else None,
        "dice": _round(dice_value, 4),
    }


def code_state() -> dict:
    """Describe the product's code: the commit, local changes and the newest source file.

    Recorded when the code is copied for the benchmark (see :func:`snapshot_code`).

    Returns
    -------
    dict
        ``commit`` (short hash, empty outside git), ``dirty`` (uncommitted changes under
        ``bids_app``) and ``newest_source`` (modification time of the newest ``.py`` file).
    """
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--", "bids_app"],
                cwd=REPO,
                capture_output=True,
                text=True,
            ).stdout.strip()
        )
    except OSError:
        commit, dirty = "", False
    newest = max(path.stat().st_mtime for path in (REPO / "bids_app").rglob("*.py"))
    return {
        "commit": commit,
        "dirty": dirty,
        "newest_source": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(newest)),
    }


def _run_record(scan: str, pipeline: str, cost: Measure) -> dict:
    return {
        "scan": scan,
        "pipeline": pipeline,
        "returncode": cost.returncode,
        "wall_s": round(cost.wall_s, 1),
        "cpu_s": round(cost.cpu_s, 1),
        "loadavg_start": [round(x, 2) for x in cost.load_start],
        "loadavg_end": [round(x, 2) for x in cost.load_end],
    }


def baseline_child(scan: Path, timings: Path, mask_out: Path) -> None:
    """Run the baseline, ANTsPy defaults, timing each step (in a child process).

    Parameters
    ----------
    scan : Path
        The T1w image.
    timings : Path
        JSON file receiving the seconds of each step.
    mask_out : Path
        Where the brain mask is written.
    """
    import ants

    from bids_app.preprocessing.antsio import to_ants
    from bids_app.preprocessing.templates import load_template

    seconds = {}
    start = time.perf_counter()
    img = ants.image_read(str(scan))
    seconds["read"] = time.perf_counter() - start

    start = time.perf_counter()
    template = load_template(1)
    fixed, template_mask = to_ants(template.t1w), to_ants(template.brain_mask)
    seconds["template (load, convert)"] = time.perf_counter() - start

    start = time.perf_counter()
    n4 = ants.n4_bias_field_correction(img)
    seconds["n4"] = time.perf_counter() - start

    start = time.perf_counter()
    reg = ants.registration(fixed=fixed, moving=n4, type_of_transform="SyN")
    seconds["registration"] = time.perf_counter() - start

    start = time.perf_counter()
    # invtransforms = [affine .mat, inverse warp]: apply_transforms inverts the matrix itself
    # (whichtoinvert defaults to (True, False) for this pair).
    warped = ants.apply_transforms(
        fixed=n4, moving=template_mask, transformlist=reg["invtransforms"], interpolator="linear"
    )
    mask = ants.threshold_image(warped, 0.5, 1e9)
    seconds["brain_mask"] = time.perf_counter() - start

    ants.image_write(mask, str(mask_out))
    timings.write_text(json.dumps(seconds, indent=2) + "\n")


def summarise(rows: list[dict]) -> pd.DataFrame:
    """One row per scan: speed-ups against the baseline and the Dice of each pipeline.

    Parameters
    ----------
    rows : list of dict
        The rows of the results table.

    Returns
    -------
    pandas.DataFrame
        Per scan: the baseline's three steps, ours for the same steps and for the whole run,
        the speed-ups (baseline / ours), peak RSS and Dice.
    """
    table = pd.DataFrame(rows)
    summary = []
    for scan, group in table.groupby("scan", sort=False):

        def pick(pipeline: str, kind: str, column: str, group: pd.DataFrame = group) -> float:
            found = group[(group.pipeline == pipeline) & (group.kind == kind)][column]
            return float(found.iloc[0]) if len(found) and pd.notna(found.iloc[0]) else np.nan

        base = "baseline (ANTsPy defaults)"
        baseline_s = pick(base, "equivalent", "wall_s")
        ours_equivalent = pick("ours", "equivalent", "wall_s")
        ours_whole = pick("ours", "total", "wall_s")
        summary.append(
            {
                "scan": scan,
                "baseline_n4_reg_mask_s": baseline_s,
                "ours_n4_reg_mask_s": ours_equivalent,
                "speedup_equivalent_steps": round(baseline_s / ours_equivalent, 1),
                "ours_whole_s": ours_whole,
                "speedup_whole_vs_baseline": round(baseline_s / ours_whole, 1),
                "ours_whole_cpu_s": pick("ours", "total", "cpu_s"),
                "baseline_whole_cpu_s": pick(base, "total", "cpu_s"),
                "speedup_whole_cpu": round(
                    pick(base, "total", "cpu_s") / pick("ours", "total", "cpu_s"), 1
                ),
                "ours_sloppy_whole_s": pick("ours --sloppy", "total", "wall_s"),
                "ours_peak_rss_mb": pick("ours", "total", "peak_rss_mb"),
                "ours_peak_tree_rss_mb": pick("ours", "total", "peak_tree_rss_mb"),
                "baseline_peak_rss_mb": pick(base, "total", "peak_rss_mb"),
                "dice_ours": pick("ours", "total", "dice"),
                "dice_ours_sloppy": pick("ours --sloppy", "total", "dice"),
                "dice_baseline": pick(base, "total", "dice"),
            }
        )
    return pd.DataFrame(summary)


def machine() -> dict:
    """Describe the machine and the software versions.

    Returns
    -------
    dict
        CPU model, cores, RAM, OS, Python, antspyx/nipype/NeuroStrat versions and the date.
    """
    cpu_model = platform.processor()
    ram_gb = None
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        cpu_model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE).group(1)
        meminfo = Path("/proc/meminfo").read_text()
        ram_gb = int(re.search(r"^MemTotal:\s*(\d+) kB", meminfo, re.MULTILINE).group(1)) / 2**20
    except (OSError, AttributeError):
        pass
    os_name = platform.platform()
    try:
        release = Path("/etc/os-release").read_text()
        os_name = re.search(r'^PRETTY_NAME="?([^"\n]+)', release, re.MULTILINE).group(1)
        os_name += f" ({platform.platform()})"
    except (OSError, AttributeError):
        pass
    from bids_app import __version__

    return {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "cpu_model": cpu_model,
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "ram_gb": round(ram_gb, 1) if ram_gb else None,
        "os": os_name,
        "python": platform.python_version(),
        "antspyx": metadata.version("antspyx"),
        "nipype": metadata.version("nipype"),
        "neurostrat": __version__,
        "itk_threads": int(ITK_THREADS),
    }


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and write the results.

    Parameters
    ----------
    argv : list of str or None
        Command-line arguments (``--scans`` restricts the scans, e.g. for a quick check).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", nargs="+", choices=[s.name for s in SCANS])
    parser.add_argument("--no-baseline", action="store_true", help="run ours only")
    parser.add_argument("--baseline-child", nargs=3, metavar=("SCAN", "TIMINGS", "MASK"))
    args = parser.parse_args(argv)
    if args.baseline_child:
        baseline_child(*map(Path, args.baseline_child))
        return
    missing = [str(s.path) for s in SCANS if not s.path.is_file()]
    if not DATA.is_dir() or missing:
        print(f"bench_preprocessing: skipped, the real scans are absent ({DATA}: {missing or ''})")
        return
    scans = [s for s in SCANS if not args.scans or s.name in args.scans]
    rows: list[dict] = []
    info = {**machine(), "runs": []}
    RESULTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench_preprocessing_") as tmp:
        info["code"] = {**code_state(), "snapshot": True}
        code = snapshot_code(Path(tmp) / "code")
        for scan in scans:
            runs = [lambda s=scan: run_ours(s, Path(tmp), code, sloppy=False)]
            if scan.sloppy:
                runs.append(lambda s=scan: run_ours(s, Path(tmp), code, sloppy=True))
            if not args.no_baseline:
                runs.append(lambda s=scan: run_baseline(s, Path(tmp), code))
            for run in runs:
                new_rows, record = run()
                rows.extend(new_rows)
                info["runs"].append(record)
                # written after every run, so that a long benchmark keeps what it measured
                pd.DataFrame(rows).to_csv(RESULTS / "preprocessing.tsv", sep="\t", index=False)
                (RESULTS / "preprocessing_machine.json").write_text(
                    json.dumps(info, indent=2) + "\n"
                )
    summary = summarise(rows)
    summary.to_csv(RESULTS / "preprocessing_summary.tsv", sep="\t", index=False)
    with pd.option_context("display.width", 200, "display.max_colwidth", 60):
        print(pd.DataFrame(rows).drop(columns="kind").to_string(index=False))
        print()
        print(summary.to_string(index=False))


if __name__ == "__main__":
    main()

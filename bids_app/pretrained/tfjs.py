"""Read a TensorFlow.js "layers-model" (``model.json`` + binary weight shards), no TensorFlow.

A layers-model folder holds ``model.json`` (the Keras topology under
``modelTopology.model_config`` and a ``weightsManifest``) and one or more binary shards
(``model.bin``, or ``group1-shard1of2.bin`` ...). The manifest lists, group by group, the shard
files and the weights stored in them: the shards of a group are one byte stream, cut into files,
and the weights follow each other in it in manifest order (little-endian, C order).

This reader supports what brainchop's MeshNet models use (Fedorov et al. 2017; Masoud et al.
2023): ``InputLayer``, ``Conv3D`` and ``Activation`` layers, float32 weights. Anything else is
refused with a :class:`TFJSModelError` naming the file, never guessed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bids_app.errors import DataError, NoInputError

#: Layer classes the reader knows (and :mod:`bids_app.pretrained.meshnet` builds).
KNOWN_LAYERS = ("InputLayer", "Conv3D", "Activation")
#: Activations the reader knows, as Keras names them.
KNOWN_ACTIVATIONS = ("linear", "relu", "elu", "gelu", "sigmoid", "tanh", "softmax")
#: Bytes per value of the weight dtypes the reader knows.
_DTYPES = {"float32": np.dtype("<f4")}
#: Appended to every message about a damaged model folder.
_FIX = "replace the folder with an intact copy of the model (model.json and its weight files)"


class TFJSModelError(DataError):
    """A TF.js model folder that cannot be read: bad JSON, short weights, unknown layer..."""


class TFJSModelMissingError(NoInputError):
    """A TF.js model file (``model.json`` or a weight shard) does not exist."""


@dataclass(frozen=True)
class Layer:
    """One layer of a layers-model.

    Parameters
    ----------
    class_name : str
        Keras class (one of :data:`KNOWN_LAYERS`).
    name : str
        Layer name (the prefix of its weights' names).
    config : dict
        Its Keras configuration.
    """

    class_name: str
    name: str
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TFJSModel:
    """A layers-model read from disk.

    Parameters
    ----------
    path : Path
        The ``model.json`` it was read from.
    layers : tuple of Layer
        The layers in topology order (the input layer included).
    weights : dict of str to numpy.ndarray
        Weight name (``<layer>/kernel``, ``<layer>/bias``) to its array, TF layout.
    """

    path: Path
    layers: tuple[Layer, ...]
    weights: dict[str, np.ndarray]

    def weight(self, name: str) -> np.ndarray:
        """Return a weight by name.

        Parameters
        ----------
        name : str
            E.g. ``"conv3d_0/kernel"``.

        Returns
        -------
        numpy.ndarray
            The array.

        Raises
        ------
        TFJSModelError
            If the manifest has no weight of that name.
        """
        if name not in self.weights:
            raise TFJSModelError(
                f"{self.path}: the weights manifest has no weight {name!r} that the topology "
                f"needs; {_FIX}"
            )
        return self.weights[name]


def read_tfjs_model(path: Path) -> TFJSModel:
    """Read a TF.js layers-model: its layers and its weights.

    Parameters
    ----------
    path : Path
        ``model.json``, or the folder holding it.

    Returns
    -------
    TFJSModel
        The layers and the weights by name; every weight that a layer needs is checked present
        with the shape the layer implies.

    Raises
    ------
    TFJSModelMissingError
        If ``model.json`` or a weight shard does not exist.
    TFJSModelError
        If the JSON is invalid, the format is not a layers-model, a layer class or activation
        is unknown, a weight is missing, has an unknown dtype or a wrong shape, or the shards
        are shorter (or longer) than the manifest says.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "model.json"
    document = _read_json(path)
    if document.get("format", "layers-model") != "layers-model":
        raise TFJSModelError(
            f"{path}: format {document.get('format')!r} is not a TF.js layers-model "
            "(a graph-model cannot be read); convert the Keras model with "
            "tensorflowjs_converter --output_format tfjs_layers_model"
        )
    layers = _layers(path, document)
    weights = _weights(path, document)
    model = TFJSModel(path=path, layers=layers, weights=weights)
    _check_layer_weights(model)
    return model


def _read_json(path: Path) -> dict[str, Any]:
    """Return the parsed ``model.json``, or raise an error naming the file."""
    if not path.is_file():
        raise TFJSModelMissingError(f"{path}: no such model file; {_FIX}")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise TFJSModelError(f"{path}: not valid JSON ({error}); {_FIX}") from error
    if not isinstance(document, dict):
        raise TFJSModelError(f"{path}: not a TF.js model (a JSON object expected); {_FIX}")
    return document


def _layers(path: Path, document: dict[str, Any]) -> tuple[Layer, ...]:
    """Return the topology's layers, every class and activation checked known."""
    try:
        config = document["modelTopology"]["model_config"]["config"]
        entries = config["layers"] if isinstance(config, dict) else config
        layers = tuple(
            Layer(entry["class_name"], entry["config"]["name"], entry["config"])
            for entry in entries
        )
    except (KeyError, TypeError) as error:
        raise TFJSModelError(
            f"{path}: no layer list under modelTopology.model_config ({error!r}); {_FIX}"
        ) from error
    for layer in layers:
        if layer.class_name not in KNOWN_LAYERS:
            raise TFJSModelError(
                f"{path}: layer {layer.name!r} has class {layer.class_name!r}, which this reader "
                f"does not know (known: {', '.join(KNOWN_LAYERS)}); use a MeshNet model of "
                "brainchop (mindgrab, model30chan18cls, model30chan50cls)"
            )
        activation = layer.config.get("activation", "linear")
        if layer.class_name != "InputLayer" and activation not in KNOWN_ACTIVATIONS:
            raise TFJSModelError(
                f"{path}: layer {layer.name!r} has activation {activation!r}, which this reader "
                f"does not know (known: {', '.join(KNOWN_ACTIVATIONS)})"
            )
    return layers


def _weights(path: Path, document: dict[str, Any]) -> dict[str, np.ndarray]:
    """Read every weight group of the manifest from its shards."""
    try:
        groups = document["weightsManifest"]
        specs = [(list(group["paths"]), list(group["weights"])) for group in groups]
    except (KeyError, TypeError) as error:
        raise TFJSModelError(f"{path}: no valid weightsManifest ({error!r}); {_FIX}") from error
    weights: dict[str, np.ndarray] = {}
    for shards, entries in specs:
        buffer = _read_shards(path, shards)
        offset = 0
        for entry in entries:
            name, shape, dtype = entry["name"], tuple(entry["shape"]), entry.get("dtype")
            if dtype not in _DTYPES or "quantization" in entry:
                raise TFJSModelError(
                    f"{path}: weight {name!r} is stored as {dtype!r}"
                    f"{' (quantised)' if 'quantization' in entry else ''}; only float32 "
                    "weights are supported: convert the model without quantisation"
                )
            size = int(np.prod(shape, dtype=np.int64)) * _DTYPES[dtype].itemsize
            if offset + size > len(buffer):
                raise TFJSModelError(
                    f"{path}: the weight files {shards} hold {len(buffer)} bytes, fewer than the "
                    f"manifest's weights need (weight {name!r} ends at byte {offset + size}): "
                    f"truncated download or copy; {_FIX}"
                )
            count = size // _DTYPES[dtype].itemsize
            array = np.frombuffer(buffer, dtype=_DTYPES[dtype], count=count, offset=offset)
            weights[name] = array.reshape(shape).astype(np.float32)
            offset += size
        if offset != len(buffer):
            raise TFJSModelError(
                f"{path}: the weight files {shards} hold {len(buffer)} bytes but the manifest's "
                f"weights take {offset}: they do not belong to this model.json; {_FIX}"
            )
    return weights


def _read_shards(path: Path, shards: list[str]) -> bytes:
    """Return the bytes of one weight group (its shards, concatenated in manifest order)."""
    parts = []
    for shard in shards:
        file = path.parent / shard
        if not file.is_file():
            raise TFJSModelMissingError(
                f"{file}: weight file named in {path.name}'s manifest does not exist; {_FIX}"
            )
        parts.append(file.read_bytes())
    return b"".join(parts)


def _check_layer_weights(model: TFJSModel) -> None:
    """Check that every Conv3D layer finds its kernel (and bias) with consistent shapes."""
    channels = None
    for layer in model.layers:
        if layer.class_name == "InputLayer":
            channels = layer.config.get("batch_input_shape", [None])[-1]
        if layer.class_name != "Conv3D":
            continue
        kernel = model.weight(f"{layer.name}/kernel")
        expected = (*layer.config["kernel_size"], channels, layer.config["filters"])
        if channels is not None and kernel.shape != expected:
            raise TFJSModelError(
                f"{model.path}: weight {layer.name + '/kernel'!r} has shape {kernel.shape}, but "
                f"layer {layer.name!r} needs {expected}; {_FIX}"
            )
        if layer.config.get("use_bias", True):
            bias = model.weight(f"{layer.name}/bias")
            if bias.shape != (layer.config["filters"],):
                raise TFJSModelError(
                    f"{model.path}: weight {layer.name + '/bias'!r} has shape {bias.shape}, but "
                    f"layer {layer.name!r} has {layer.config['filters']} filters; {_FIX}"
                )
        channels = layer.config["filters"]

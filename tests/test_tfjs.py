"""The TF.js layers-model reader: a tiny model written here, and brainchop's three models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bids_app.errors import DataError, NoInputError
from bids_app.pretrained.meshnet import build_meshnet
from bids_app.pretrained.tfjs import read_tfjs_model

from .conftest import SHARED_DATA

BRAINCHOP = SHARED_DATA / "models" / "brainchop"
#: Layers in each model.json (the input layer included), as brainchop ships them.
STORED_LAYERS = {"mindgrab": 52, "model30chan18cls": 20, "model30chan50cls": 20}
#: Output channels (classes, background included).
CLASSES = {"mindgrab": 2, "model30chan18cls": 18, "model30chan50cls": 50}


def _layer(class_name: str, **config) -> dict:
    return {"class_name": class_name, "config": config, "name": config["name"]}


def write_tiny_model(folder: Path, *, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Write a 2-layer Conv3D model (3 channels, dilation 2, ELU; then 1x1x1 to 2 classes)."""
    weights = {
        "conv_a_gn/kernel": rng.normal(size=(3, 3, 3, 1, 3)).astype(np.float32),
        "output/kernel": rng.normal(size=(1, 1, 1, 3, 2)).astype(np.float32),
        "output/bias": rng.normal(size=(2,)).astype(np.float32),
    }
    conv = {"strides": [1, 1, 1], "padding": "same", "data_format": "channels_last"}
    layers = [
        _layer("InputLayer", name="input", batch_input_shape=[None, 8, 8, 8, 1]),
        _layer(
            "Conv3D",
            name="conv_a_gn",
            filters=3,
            kernel_size=[3, 3, 3],
            dilation_rate=[2, 2, 2],
            activation="linear",
            use_bias=False,
            **conv,
        ),
        _layer("Activation", name="act", activation="elu"),
        _layer(
            "Conv3D",
            name="output",
            filters=2,
            kernel_size=[1, 1, 1],
            dilation_rate=[1, 1, 1],
            activation="linear",
            use_bias=True,
            **conv,
        ),
    ]
    document = {
        "format": "layers-model",
        "modelTopology": {
            "model_config": {"class_name": "Functional", "config": {"layers": layers}}
        },
        "weightsManifest": [
            {
                "paths": ["group1-shard1of2.bin", "group1-shard2of2.bin"],
                "weights": [
                    {"name": name, "shape": list(array.shape), "dtype": "float32"}
                    for name, array in weights.items()
                ],
            }
        ],
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.json").write_text(json.dumps(document), encoding="utf-8")
    stream = b"".join(array.astype("<f4").tobytes() for array in weights.values())
    (folder / "group1-shard1of2.bin").write_bytes(stream[:100])  # two shards, cut mid-weight
    (folder / "group1-shard2of2.bin").write_bytes(stream[100:])
    return weights


def test_reader_reads_sharded_weights_and_builds_the_network(tmp_path):
    weights = write_tiny_model(tmp_path, rng=np.random.default_rng(0))
    model = read_tfjs_model(tmp_path)
    assert [layer.class_name for layer in model.layers] == [
        "InputLayer",
        "Conv3D",
        "Activation",
        "Conv3D",
    ]
    for name, array in weights.items():
        np.testing.assert_array_equal(model.weight(name), array)
    network = build_meshnet(model)
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(1, 1, 8, 8, 8)).astype(np.float32))
    with torch.no_grad():
        out = network(x).numpy()
    # the same computation in numpy, kernels in TF's layout: dilated 'same' conv, instance
    # norm (the ``_gn`` suffix), ELU, 1x1x1 conv with bias
    padded = np.pad(x[0, 0].numpy(), 2)
    kernel = weights["conv_a_gn/kernel"][..., 0, :]
    hidden = np.zeros((3, 8, 8, 8), np.float32)
    for a in range(3):
        for b in range(3):
            for c in range(3):
                window = padded[2 * a : 2 * a + 8, 2 * b : 2 * b + 8, 2 * c : 2 * c + 8]
                hidden += kernel[a, b, c][:, None, None, None] * window
    mean, std = (
        hidden.mean(axis=(1, 2, 3), keepdims=True),
        hidden.std(axis=(1, 2, 3), keepdims=True),
    )
    hidden = (hidden - mean) / np.sqrt(std**2 + 1e-5)
    hidden = np.where(hidden > 0, hidden, np.expm1(hidden))
    expected = np.einsum("cxyz,ck->kxyz", hidden, weights["output/kernel"][0, 0, 0])
    expected += weights["output/bias"][:, None, None, None]
    np.testing.assert_allclose(out[0], expected, rtol=1e-4, atol=1e-4)


def test_reader_refuses_a_truncated_weight_file(tmp_path):
    write_tiny_model(tmp_path, rng=np.random.default_rng(0))
    shard = tmp_path / "group1-shard2of2.bin"
    shard.write_bytes(shard.read_bytes()[:-8])
    with pytest.raises(DataError, match=r"group1-shard2of2\.bin.*fewer.*truncated"):
        read_tfjs_model(tmp_path)


def test_reader_refuses_an_unknown_layer(tmp_path):
    write_tiny_model(tmp_path, rng=np.random.default_rng(0))
    path = tmp_path / "model.json"
    document = json.loads(path.read_text(encoding="utf-8"))
    document["modelTopology"]["model_config"]["config"]["layers"][2]["class_name"] = "LSTM"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(DataError, match=r"model\.json: layer 'act' has class 'LSTM'.*not know"):
        read_tfjs_model(tmp_path)


def test_reader_refuses_bad_json_a_missing_weight_and_a_missing_shard(tmp_path):
    write_tiny_model(tmp_path, rng=np.random.default_rng(0))
    path = tmp_path / "model.json"
    document = json.loads(path.read_text(encoding="utf-8"))
    document["weightsManifest"][0]["weights"].pop()  # output/bias: bytes left over
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(DataError, match=r"do not belong to this model\.json"):
        read_tfjs_model(tmp_path)
    shard = tmp_path / "group1-shard2of2.bin"
    shard.write_bytes(shard.read_bytes()[:-8])  # the bias gone from both
    with pytest.raises(DataError, match="no weight 'output/bias'"):
        read_tfjs_model(tmp_path)
    (tmp_path / "group1-shard1of2.bin").unlink()
    with pytest.raises(NoInputError, match=r"group1-shard1of2\.bin"):
        read_tfjs_model(tmp_path)
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match="not valid JSON"):
        read_tfjs_model(tmp_path)


@pytest.mark.skipif(not BRAINCHOP.is_dir(), reason=f"needs brainchop's models in {BRAINCHOP}")
@pytest.mark.parametrize("name", sorted(STORED_LAYERS))
def test_brainchop_models_load_with_their_stored_layers(name):
    model = read_tfjs_model(BRAINCHOP / name)
    assert len(model.layers) == STORED_LAYERS[name]
    network = build_meshnet(model)
    convs = [m for m in network if isinstance(m, torch.nn.Conv3d)]
    assert len(convs) == sum(layer.class_name == "Conv3D" for layer in model.layers)
    assert convs[-1].out_channels == CLASSES[name]
    if name == "mindgrab":  # 25 dilated layers, each normalised (the ``_gn`` names)
        norms = [m for m in network if type(m).__name__ == "InstanceNorm"]
        assert len(norms) == 25 and convs[0].dilation == (16, 16, 16)

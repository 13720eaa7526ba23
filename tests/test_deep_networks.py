"""Tests of the 3D networks of bids_app.deep.networks (tiny volumes, CPU)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bids_app.deep.networks import (
    CNN8,
    GAMER,
    NETWORKS,
    ResNet3D,
    build_network,
    positive_probability,
)

NARROW = (4, 8, 8, 16)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _volumes(n: int, channels: int, shape=(16, 16, 16), seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, channels, *shape, generator=generator)


@pytest.mark.parametrize(
    ("network", "channels", "n_outputs"),
    [
        (ResNet3D(2, widths=NARROW), 2, 2),
        (CNN8(1, widths=(4, 4, 8, 8, 8, 8, 16, 16)), 1, 2),
        (GAMER(3), 3, 1),
    ],
)
@pytest.mark.parametrize("shape", [(16, 16, 16), (33, 40, 35)])
def test_output_shapes(network, channels, n_outputs, shape):
    torch.manual_seed(0)
    x = _volumes(2, channels, shape)
    logits = network.eval()(x, torch.tensor([40.0, 70.0]))
    assert logits.shape == (2, n_outputs) == (2, network.n_outputs)
    assert torch.isfinite(logits).all()
    probability = positive_probability(logits)
    assert probability.shape == (2,)
    assert ((probability > 0) & (probability < 1)).all()


def test_embed_sizes():
    torch.manual_seed(0)
    x = _volumes(2, 2)
    assert ResNet3D(2, widths=NARROW).eval().embed(x).shape == (2, 64)
    cnn = CNN8(2).eval()
    features = cnn.conv_features(x)
    assert set(features) == {"dl7", "dl8"}
    assert features["dl7"].shape == features["dl8"].shape == (2, 256)
    torch.testing.assert_close(cnn.embed(x), features["dl7"])
    assert not torch.allclose(features["dl7"], features["dl8"])
    assert GAMER(2).eval().embed(x).shape == (2, 32)


def test_resnet_embed_is_input_of_last_layer():
    torch.manual_seed(0)
    net = ResNet3D(1, widths=NARROW, head=(8, 6)).eval()
    x = _volumes(3, 1)
    embedding = net.embed(x)
    assert embedding.shape == (3, 6)
    assert (embedding >= 0).all()  # after ReLU
    last = net.classifier
    expected = embedding @ last.weight.flatten(1).T + last.bias
    torch.testing.assert_close(net(x), expected)


def test_gamer_attention_sums_to_one_and_age_matters():
    torch.manual_seed(0)
    net = GAMER(3).eval()
    x = _volumes(4, 3)
    young, weights = net.forward_with_attention(x, torch.full((4,), 20.0))
    old, weights_old = net.forward_with_attention(x, torch.full((4,), 80.0))
    assert weights.shape == (4, 3)
    torch.testing.assert_close(weights.sum(1), torch.ones(4))
    assert (weights > 0).all()
    torch.testing.assert_close(weights, weights_old)  # attention does not see the age
    # The age enters linearly: f(80) - f(20) = 0.6 * classifier weight of the age.
    torch.testing.assert_close(old - young, (0.6 * net.classifier.weight[0, -1]).expand(4, 1))
    assert not torch.allclose(old, young)
    with pytest.raises(ValueError, match="age"):
        net(x)


def test_gamer_paths_are_per_contrast():
    torch.manual_seed(0)
    net = GAMER(2).eval()
    x = _volumes(1, 2)
    changed = x.clone()
    changed[:, 1] = 1 - changed[:, 1]
    m_before = net.encoders[0](x[:, :1])
    m_after = net.encoders[0](changed[:, :1])
    torch.testing.assert_close(m_before, m_after)
    assert not torch.allclose(net.embed(x), net.embed(changed))


def test_narrow_resnet_overfits_planted_volumes():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    x = 0.2 * torch.rand(8, 1, 16, 16, 16, generator=generator)
    labels = torch.tensor([0, 1] * 4)
    for index in range(1, 8, 2):  # class 1: a bright 4^3 cube at a varying place
        corner = torch.randint(0, 12, (3,), generator=generator).tolist()
        i, j, k = corner
        x[index, 0, i : i + 4, j : j + 4, k : k + 4] = 1.0
    net = ResNet3D(1, widths=NARROW, head=(16, 8))
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        optimiser.zero_grad()
        loss = nn.functional.cross_entropy(net(x), labels)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0]
    with torch.no_grad():  # batch statistics: 30 steps are too few for the running ones
        assert (net(x).argmax(1) == labels).all()


def test_float16_input_is_cast():
    torch.manual_seed(0)
    for net in (ResNet3D(1, widths=NARROW), CNN8(1, widths=(4,) * 8), GAMER(1)):
        net.eval()
        x = _volumes(2, 1).half()
        age = torch.tensor([30.0, 60.0])
        out = net(x, age)
        assert out.dtype == torch.float32
        torch.testing.assert_close(out, net(x.float(), age))


def test_training_step_runs_without_compile():
    torch.manual_seed(0)
    net = GAMER(2)
    x = _volumes(4, 2)
    age = torch.tensor([30.0, 40.0, 50.0, 60.0])
    loss = nn.functional.binary_cross_entropy_with_logits(net(x, age)[:, 0], torch.ones(4))
    loss.backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert net.encoders[1].fc.weight.grad.abs().sum() > 0


def test_bad_inputs_are_refused():
    net = ResNet3D(2, widths=NARROW)
    with pytest.raises(ValueError, match=r"\[B, 2, D, H, W\]"):
        net(torch.rand(1, 1, 16, 16, 16))
    with pytest.raises(ValueError, match="at least 16"):
        net(torch.rand(1, 2, 8, 16, 16))
    with pytest.raises(ValueError, match="8 widths"):
        CNN8(1, widths=(4, 4))
    with pytest.raises(ValueError, match=r"\[B, 1\] or \[B, 2\]"):
        positive_probability(torch.zeros(2, 3))


def test_positive_probability():
    two = torch.tensor([[0.0, 0.0], [0.0, 2.0]])
    torch.testing.assert_close(
        positive_probability(two), torch.tensor([0.5, torch.sigmoid(torch.tensor(2.0))])
    )
    one = torch.tensor([[0.0], [-3.0]])
    torch.testing.assert_close(positive_probability(one), torch.sigmoid(one[:, 0]))


def test_build_network():
    assert set(NETWORKS) == {"resnet3d", "cnn8", "gamer"}
    net = build_network("resnet3d", 3, widths=NARROW)
    assert isinstance(net, ResNet3D) and net.in_channels == 3 and not net.uses_age
    gamer = build_network("gamer", 4, hidden=8)
    assert isinstance(gamer, GAMER) and gamer.n_contrasts == 4 and gamer.uses_age
    assert gamer.eval().embed(_volumes(1, 4)).shape == (1, 8)
    assert isinstance(build_network("cnn8", 1), CNN8)
    with pytest.raises(ValueError, match="unknown network"):
        build_network("vgg", 1)

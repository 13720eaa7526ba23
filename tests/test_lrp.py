"""Tests of the LRP engine of bids_app.deep.lrp (tiny volumes, narrow networks, CPU)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from bids_app.deep.lrp import PRESETS, combined_map, fold_batchnorm, relevance
from bids_app.deep.networks import CNN8, GAMER, Multiply, ResNet3D

SIZE = (16, 16, 16)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _volumes(n: int, channels: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, channels, *SIZE, generator=torch.Generator().manual_seed(seed))


def _conservative(net: nn.Module) -> nn.Module:
    """He-initialised weights (logits of order 1), zero biases, BN with random scale, no shift."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.Conv3d | nn.Linear):
                fan_in = module.weight[0].numel()
                module.weight.copy_(
                    torch.randn(module.weight.shape, generator=generator) * (2 / fan_in) ** 0.5
                )
                if module.bias is not None:
                    module.bias.zero_()
            if isinstance(module, nn.BatchNorm3d):
                module.running_var.copy_(0.5 + torch.rand(module.num_features, generator=generator))
                module.weight.copy_(0.5 + torch.rand(module.num_features, generator=generator))
    return net.eval()


def _randomise_batchnorm(net: nn.Module) -> nn.Module:
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.BatchNorm3d):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
                module.running_var.copy_(0.5 + torch.rand(n, generator=generator))
                module.weight.copy_(0.5 + torch.rand(n, generator=generator))
                module.bias.copy_(torch.randn(n, generator=generator) * 0.1)
    return net


def _networks():
    torch.manual_seed(0)
    return {
        "resnet3d": (_conservative(ResNet3D(2, widths=(4, 8, 8, 16), head=(16, 8))), 2),
        "cnn8": (_conservative(CNN8(1, widths=(4, 4, 8, 8, 8, 8, 16, 16))), 1),
        "gamer": (_conservative(GAMER(2)), 2),
    }


NETWORKS = _networks()


def _start(net, x, age, target=None):
    with torch.no_grad():
        logits = net(x, age)
    if logits.shape[1] == 1:
        return logits[:, 0]
    if target is None:
        target = logits.argmax(1)
    return logits.gather(1, torch.as_tensor(target).expand(len(x)).unsqueeze(1))[:, 0]


@pytest.mark.parametrize("name", sorted(NETWORKS))
@pytest.mark.parametrize("rule", sorted(PRESETS))
def test_relevance_sums_to_logit(name, rule):
    net, channels = NETWORKS[name]
    x = _volumes(3, channels)
    age = torch.zeros(3)  # age / 100 = 0 takes no relevance
    result = relevance(net, x, age if net.uses_age else None, rule=rule)
    assert result.shape == x.shape
    start = _start(net, x, age)
    assert start.abs().min() > 1e-3
    torch.testing.assert_close(result.flatten(1).sum(1), start, rtol=1e-4, atol=0)


@pytest.mark.parametrize("target", [0, 1])
def test_relevance_of_each_target(target):
    net, channels = NETWORKS["resnet3d"]
    x = _volumes(2, channels)
    result = relevance(net, x, target=target, rule="epsilon")
    start = _start(net, x, None, target)
    torch.testing.assert_close(result.flatten(1).sum(1), start, rtol=1e-4, atol=0)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_alpha1beta0_keeps_the_sign_of_the_start(name):
    net, channels = NETWORKS[name]
    net = _randomise_batchnorm(copy.deepcopy(net))  # non-zero biases too
    x = _volumes(2, channels)
    age = torch.tensor([30.0, 70.0]) if net.uses_age else None
    result = relevance(net, x, age, rule="alpha1beta0")
    signed = result.flatten(1) * _start(net, x, age).sign().unsqueeze(1)
    assert signed.min() >= 0
    assert (signed > 0).float().mean() > 0.05
    # epsilon maps of the same network do have both signs (the test can fail)
    eps_map = relevance(net, x, age, rule="epsilon").flatten(1)
    assert (eps_map > 0).any() and (eps_map < 0).any()


def test_epsilon_equals_gradient_times_input():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv3d(2, 4, 3, padding=1, bias=False),
        nn.ReLU(),
        nn.MaxPool3d(2),
        nn.Conv3d(4, 6, 3, bias=False),
        nn.ReLU(),
        nn.AdaptiveMaxPool3d(2),
        nn.Flatten(),
        nn.Linear(48, 2, bias=False),
    )
    x = _volumes(3, 2) - 0.3  # signs of both kinds
    target = torch.tensor([0, 1, 1])
    leaf = x.clone().requires_grad_()
    net(leaf).gather(1, target.unsqueeze(1)).sum().backward()
    expected = leaf.grad * x
    result = relevance(net, x, target=target, rule="epsilon")
    scale = expected.abs().max()
    torch.testing.assert_close(result / scale, expected / scale, rtol=1e-5, atol=1e-5)
    # alpha1beta0 is a different rule on the same network
    other = relevance(net, x, target=target, rule="alpha1beta0")
    assert not torch.allclose(other / scale, expected / scale, atol=1e-3)


class _Gated(nn.Module):
    """Input layer of identity weights, then the product of the two units."""

    def __init__(self):
        super().__init__()
        self.read = nn.Linear(2, 2, bias=False)
        nn.init.eye_(self.read.weight)
        self.product = Multiply()

    def forward(self, x):
        h = self.read(x)
        return self.product(h[:, :1], h[:, 1:])


@pytest.mark.parametrize(
    ("gated_rule", "expected"),
    [
        # eq. (6)-(7): s = 2, g = 0.5 -> R = 1 split 2/2.5 and 0.5/2.5;
        # s = -1, g = 3 -> R = -3 split 1/4 and 3/4.
        ("proportional", [[0.8, 0.2], [-0.75, -2.25]]),
        ("all", [[1.0, 0.0], [-3.0, 0.0]]),
    ],
)
def test_gated_rule_by_hand(gated_rule, expected):
    x = torch.tensor([[2.0, 0.5], [-1.0, 3.0]])
    result = relevance(_Gated(), x, rule="epsilon", gated_rule=gated_rule)
    torch.testing.assert_close(result, torch.tensor(expected))


def test_zbeta_by_hand():
    # One input layer w = (-1, 2), x = (0, 0.5), bounds (0, 1):
    # z_1 = 0 * -1 - 0 * 0 - 1 * -1 = 1 and z_2 = 0.5 * 2 - 0 * 2 - 1 * 0 = 1, f(x) = 1.
    layer = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[-1.0, 2.0]]))
    x = torch.tensor([[0.0, 0.5]])
    torch.testing.assert_close(relevance(layer, x), torch.tensor([[0.5, 0.5]]))
    # epsilon gives nothing to the zero voxel
    torch.testing.assert_close(relevance(layer, x, rule="epsilon"), torch.tensor([[0.0, 1.0]]))


def test_unfolded_batchnorm_passes_relevance_through():
    # conv (w = 1) -> ReLU -> BN (scale 1, shift 1) -> conv (w = 2): the BN cannot be folded;
    # its shift is a bias, ignored (Lu 2023 §II.E), so all of f(x) = 2 * (x + 1) reaches x.
    net = nn.Sequential(
        nn.Conv3d(1, 1, 1, bias=False), nn.ReLU(), nn.BatchNorm3d(1), nn.Conv3d(1, 1, 1, bias=False)
    )
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[2].running_var.fill_(1.0 - net[2].eps)
        net[2].bias.fill_(1.0)
        net[3].weight.fill_(2.0)
    net = nn.Sequential(net.eval(), nn.Flatten())
    x = torch.tensor([0.5, 2.0]).view(2, 1, 1, 1, 1)
    expected = torch.tensor([3.0, 6.0]).view(2, 1, 1, 1, 1)
    torch.testing.assert_close(relevance(net, x, rule="epsilon"), expected)


def test_gamer_attention_start_gives_each_contrast_its_weight():
    net, channels = NETWORKS["gamer"]
    x = _volumes(2, channels)
    age = torch.tensor([40.0, 60.0])
    with torch.no_grad():
        _, weights = net.forward_with_attention(x, age)
    for gated_rule in ("proportional", "all"):
        maps = relevance(net, x, age, rule="epsilon", start="attention", gated_rule=gated_rule)
        torch.testing.assert_close(maps.flatten(2).sum(2), weights, rtol=1e-4, atol=0)
    proportional = relevance(net, x, age, start="attention")
    everything = relevance(net, x, age, start="attention", gated_rule="all")
    assert not torch.allclose(proportional, everything)
    # starting from f(x), the gated rule matters too
    assert not torch.allclose(
        relevance(net, x, age), relevance(net, x, age, gated_rule="all"), rtol=1e-3
    )


def test_combined_map():
    net, channels = NETWORKS["gamer"]
    x = _volumes(2, channels)
    maps = relevance(net, x, torch.tensor([40.0, 60.0]), start="attention")
    combined = combined_map(maps, x)
    assert combined.shape == (2, *SIZE)
    torch.testing.assert_close(combined, maps[:, 0] * x[:, 0] + maps[:, 1] * x[:, 1])
    with pytest.raises(ValueError, match="differ in shape"):
        combined_map(maps[:, :1], x)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_batchnorm_folding_keeps_the_output(name):
    net, channels = NETWORKS[name]
    net = _randomise_batchnorm(copy.deepcopy(net))
    x = _volumes(2, channels)
    age = torch.tensor([30.0, 70.0])
    folded = fold_batchnorm(net)
    n_before = sum(isinstance(m, nn.BatchNorm3d) for m in net.modules())
    n_after = sum(isinstance(m, nn.BatchNorm3d) for m in folded.modules())
    assert n_after < n_before
    if name != "gamer":  # GAMER keeps the BN of its BN-ReLU-conv layers
        assert n_after == 0
    with torch.no_grad():
        torch.testing.assert_close(folded(x, age), net.eval()(x, age), rtol=1e-5, atol=1e-5)


def test_model_is_unchanged_and_batches_are_independent():
    net, channels = NETWORKS["resnet3d"]
    net = _randomise_batchnorm(copy.deepcopy(net)).train()
    state = copy.deepcopy(net.state_dict())
    types = [type(m) for m in net.modules()]
    x = _volumes(3, channels)
    batched = relevance(net, x)
    assert net.training
    assert [type(m) for m in net.modules()] == types
    assert all(p.requires_grad and p.grad is None for p in net.parameters())
    for key, value in net.state_dict().items():
        assert torch.equal(value, state[key]), key
    single = torch.cat([relevance(net, x[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, single)
    # float16 input and inference mode are fine
    with torch.inference_mode():
        half = relevance(net, x.half())
    assert half.dtype == torch.float32 and half.shape == x.shape


def test_refusals():
    net, channels = NETWORKS["resnet3d"]
    x = _volumes(1, channels)
    with pytest.raises(ValueError, match="unknown rule"):
        relevance(net, x, rule="gamma")
    with pytest.raises(ValueError, match="unknown start"):
        relevance(net, x, start="hidden")
    with pytest.raises(ValueError, match="unknown gated_rule"):
        relevance(net, x, gated_rule="abs")
    with pytest.raises(ValueError, match="bounds"):
        relevance(net, x, bounds=(1.0, 0.0))
    with pytest.raises(ValueError, match="attention"):
        relevance(net, x, start="attention")
    with pytest.raises(TypeError, match="GELU"):
        relevance(nn.Sequential(nn.Linear(4, 2), nn.GELU()), torch.rand(1, 4))
    with pytest.raises(ValueError, match="read by Conv3d or Linear"):
        relevance(nn.Sequential(nn.ReLU(), nn.Linear(4, 2)), torch.rand(1, 4))

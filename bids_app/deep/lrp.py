"""Layer-wise relevance propagation (LRP) for the networks of ``bids_app.deep.networks``.

LRP (Bach et al. 2015) redistributes a network output backwards, layer by layer, onto the input
voxels. ``relevance`` implements the rules of Coll 2023 §2.6 (alpha = 1, beta = 0) and of Lu 2023
§II.E-F (z^beta on the input layer, alpha1beta0 on convolutions, epsilon on fully connected
layers, biases ignored so that the relevance sums to the output, eq. (5); the gated-attention rule
of eq. (6)-(7); relevance started from the logit or from the attention weights; the combined map
of eq. (8)).

Why not ``captum.attr.LRP`` (captum 0.9): it has no rule for ``Conv3d``, ``AvgPool3d``,
``AdaptiveMaxPool3d``, ``LeakyReLU``, ``Sigmoid`` or ``Softmax``; it sees residual sums only as
its own ``Addition_Module`` and element-wise products (the gated attention) not at all; it does not
fold batch normalisation; it has no z^beta rule, and its alpha1beta0 rule clips the weights only,
which is wrong for the negative inputs that LeakyReLU and fully connected layers produce.

The engine is the "modified gradient" form of LRP (Montavon et al. 2019, "Layer-wise relevance
propagation: an overview"): each layer with a rule returns its true output in the forward pass,
but its gradient is that of the rule's bias-free pre-activation ``z`` scaled by ``out / z``. The
gradient at every activation ``a`` is then ``R_a / a``, so relevance needs one backward pass;
ReLU, LeakyReLU, max pooling (winner takes all), concatenation, slicing and reshaping need
nothing. The layers that read the network input return the relevance itself as gradient (the
z^beta rule gives relevance to zero voxels, which ``R_a / a`` cannot carry), so the gradient at the
input is the relevance map. The work happens on a deep copy of the network in eval mode (made
anew at each call; copying is cheap next to a 3D backward pass) in which every batch
normalisation that directly follows a convolution is folded into it (Lu 2023 §II.F after Binder's
canonization notes). A batch normalisation that follows anything else (DenseNet's BN-ReLU-conv)
is a per-channel linear layer whose shift, a bias, is ignored: it passes relevance through
unchanged (our reading of Lu 2023's merged BN-ReLU-conv). Tanh, sigmoid and softmax pass
relevance through unchanged, as Arras et al. (Lu 2023 ref. [13]) do for LSTM gates; the
products ``s * g`` and ``a_l * m_l`` split it by Lu 2023 eq. (6)-(7) or LRP-all. Relevance that
reaches a neuron whose value is exactly 0 (a ReLU output that a shift made matter) stays there,
like any relevance a bias takes.

Rules per layer role (``PRESETS``): *input* for Conv3d / Linear layers reading the network input,
*dense* for Linear layers, 1x1x1 convolutions over 1x1x1 maps (ResNet3D's head), average pooling
and sums (residual additions, GAMER's ``n = sum_l a_l m_l``), *conv* for the other convolutions.

- epsilon: ``R_i = sum_j a_i w_ij / (z_j + eps sign(z_j)) R_j``, ``z_j = sum_i a_i w_ij``; for
  sums and average pooling the proportional split.
- alpha1beta0: ``R_i = sum_j (a_i w_ij)^+ / sum_i (a_i w_ij)^+ R_j`` for neurons whose output is
  non-negative, as in Coll 2023. For a neuron with a negative output (LeakyReLU, fully connected
  layers, sums) the mirror rule with the negative contributions ``(a_i w_ij)^-`` is used. After a
  ReLU this is the usual rule; elsewhere it keeps the rule conservative and sign preserving (with
  a positive start, all relevance is non-negative), where the positive contributions alone would
  drop the relevance of neurons whose contributions are all negative.
- zbeta: ``z_ij = a_i w_ij - l_i w_ij^+ - h_i w_ij^-`` with bounds ``(l, h)`` (Lu 2023 §II.F:
  0 and 1 for min-max normalised images).

The network input must be read by Conv3d or Linear layers, directly or through slicing (as
GAMER's paths do); non-linearities must be modules of the supported types.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from bids_app.deep.networks import Add, Multiply

__all__ = ["PRESETS", "TARGETS", "combined_map", "explained_classes", "fold_batchnorm", "relevance"]

#: Rule per layer role. "composite": Lu 2023 §II.E-F after Montavon et al. (2019);
#: "alpha1beta0": Coll 2023 §2.6 (beta = 0 on all layers).
PRESETS: dict[str, dict[str, str]] = {
    "composite": {"input": "zbeta", "conv": "alpha1beta0", "dense": "epsilon"},
    "epsilon": {"input": "epsilon", "conv": "epsilon", "dense": "epsilon"},
    "alpha1beta0": {"input": "alpha1beta0", "conv": "alpha1beta0", "dense": "alpha1beta0"},
}
#: Which class a map explains: the predicted class (Coll 2023 §2.6: beta = 0 keeps "the positive
#: contributions that led the classification to the winning class") or always the positive one.
TARGETS = ("predicted", "positive")
_GATED_RULES = ("proportional", "all")
_STARTS = ("logit", "attention")
#: Parameter-free modules the gradient already propagates correctly (relevance / activation).
_NEUTRAL = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.MaxPool3d,
    nn.AdaptiveMaxPool3d,
    nn.Identity,
    nn.Dropout,
    nn.Dropout3d,
    nn.Flatten,
)


@dataclass
class _Settings:
    """Rules of one ``relevance`` call, shared by all wrapped layers of the prepared copy."""

    roles: dict[str, str]
    epsilon: float
    bounds: tuple[float, float]
    gated_rule: str
    network_input: Tensor | None = None
    input_layers: int = 0


def _stabilise(z: Tensor, epsilon: float) -> Tensor:
    """``z + epsilon * sign(z)``, with sign(0) = 1."""
    return z + torch.where(z >= 0, epsilon, -epsilon)


def _with_rule_gradient(out: Tensor, z: Tensor, epsilon: float) -> Tensor:
    """``out`` in value; in gradient, ``z`` scaled by ``out / z``."""
    rule = z * (out / _stabilise(z, epsilon)).detach()
    return out.detach() + (rule - rule.detach())


def _with_sign_aware_gradient(out: Tensor, z_pos: Tensor, z_neg: Tensor, epsilon: float) -> Tensor:
    """``out`` in value; in gradient, the contributions of the sign of ``out`` (alpha1beta0)."""
    rule = torch.where(
        out >= 0,
        z_pos * (out / _stabilise(z_pos, epsilon)).detach(),
        z_neg * (out / _stabilise(z_neg, epsilon)).detach(),
    )
    return out.detach() + (rule - rule.detach())


def _reads_input(a: Tensor, settings: _Settings) -> bool:
    """Whether ``a`` is the network input or a view of it."""
    x = settings.network_input
    return x is not None and a.untyped_storage().data_ptr() == x.untyped_storage().data_ptr()


class _RuleLayer(nn.Module):
    """A Conv3d or Linear layer (batch normalisation already folded in) with its LRP rule."""

    def __init__(self, layer: nn.Conv3d | nn.Linear, settings: _Settings) -> None:
        super().__init__()
        self.layer = layer
        self.settings = settings

    def _map(self, a: Tensor, weight: Tensor) -> Tensor:
        """Apply the layer's linear map with ``weight`` and no bias."""
        if isinstance(self.layer, nn.Conv3d):
            return self.layer._conv_forward(a, weight, None)
        return F.linear(a, weight)

    def _add_bias(self, z: Tensor) -> Tensor:
        bias = self.layer.bias
        if bias is None:
            return z
        return z + (bias.view(-1, 1, 1, 1) if isinstance(self.layer, nn.Conv3d) else bias)

    def _role(self, a: Tensor, reads_input: bool) -> str:
        if reads_input:
            return "input"
        if isinstance(self.layer, nn.Linear) or a.shape[2:].numel() == 1:
            return "dense"
        return "conv"

    def propagate(self, a: Tensor, reads_input: bool) -> tuple[Tensor, list[Tensor]]:
        """Return the output with the rule's gradient and the tensors whose gradient to use.

        The relevance of the layer's input is ``sum(t * t.grad for t in tensors)``.
        """
        settings = self.settings
        rule = settings.roles[self._role(a, reads_input)]
        weight = self.layer.weight
        if rule == "epsilon":
            z = self._map(a, weight)
            return _with_rule_gradient(self._add_bias(z), z, settings.epsilon), [a]
        w_pos, w_neg = weight.clamp(min=0), weight.clamp(max=0)
        if rule == "zbeta":
            low = torch.full_like(a, settings.bounds[0], requires_grad=True)
            high = torch.full_like(a, settings.bounds[1], requires_grad=True)
            z = self._map(a, weight)
            z_rule = z - self._map(low, w_pos) - self._map(high, w_neg)
            return _with_rule_gradient(self._add_bias(z), z_rule, settings.epsilon), [a, low, high]
        if bool((a < 0).any()):
            a_pos, a_neg = a.clamp(min=0), a.clamp(max=0)
            z_pos = self._map(a_pos, w_pos) + self._map(a_neg, w_neg)
            z_neg = self._map(a_pos, w_neg) + self._map(a_neg, w_pos)
        else:
            z_pos, z_neg = self._map(a, w_pos), self._map(a, w_neg)
        out = self._add_bias(z_pos + z_neg)
        return _with_sign_aware_gradient(out, z_pos, z_neg, settings.epsilon), [a]

    def forward(self, a: Tensor) -> Tensor:
        """Return the layer's output; its gradient carries the rule's relevance."""
        if _reads_input(a, self.settings):
            self.settings.input_layers += 1
            return _InputLayer.apply(a, self)
        return self.propagate(a, reads_input=False)[0]


class _InputLayer(torch.autograd.Function):
    """A layer reading the network input: its backward returns the relevance itself."""

    @staticmethod
    def forward(ctx, a: Tensor, module: _RuleLayer) -> Tensor:
        ctx.module = module
        ctx.save_for_backward(a)
        return module.layer(a)

    @staticmethod
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor, None]:
        (a,) = ctx.saved_tensors
        with torch.enable_grad():
            leaf = a.detach().requires_grad_()
            out, tensors = ctx.module.propagate(leaf, reads_input=True)
            grads = torch.autograd.grad(out, tensors, grad_out)
        return sum((t * g for t, g in zip(tensors, grads, strict=True)), torch.zeros_like(a)), None


class _RuleSum(nn.Module):
    """``Add``: proportional split (epsilon) or sign-aware split (alpha1beta0) of a sum."""

    def __init__(self, settings: _Settings) -> None:
        super().__init__()
        self.settings = settings

    def forward(self, *terms: Tensor) -> Tensor:
        """Return the sum of ``terms``."""
        out = sum(terms[1:], terms[0])
        if self.settings.roles["dense"] != "alpha1beta0":
            return out
        z_pos = sum(term.clamp(min=0) for term in terms)
        z_neg = sum(term.clamp(max=0) for term in terms)
        return _with_sign_aware_gradient(out, z_pos, z_neg, self.settings.epsilon)


class _RuleAverage(nn.Module):
    """Average pooling as a linear layer with non-negative weights (the "dense" rule)."""

    def __init__(self, pool: nn.AvgPool3d | nn.AdaptiveAvgPool3d, settings: _Settings) -> None:
        super().__init__()
        self.pool = pool
        self.settings = settings

    def forward(self, a: Tensor) -> Tensor:
        """Return the pooled ``a``."""
        out = self.pool(a)
        if self.settings.roles["dense"] != "alpha1beta0":
            return out
        return _with_sign_aware_gradient(
            out, self.pool(a.clamp(min=0)), self.pool(a.clamp(max=0)), self.settings.epsilon
        )


class _PassThrough(nn.Module):
    """An element-wise map (tanh, sigmoid, softmax, unfolded BN) that passes relevance unchanged."""

    def __init__(self, module: nn.Module, settings: _Settings) -> None:
        super().__init__()
        self.module = module
        self.settings = settings

    def forward(self, a: Tensor) -> Tensor:
        """Return ``module(a)``; the relevance of ``a`` is that of the output."""
        return _with_rule_gradient(self.module(a), a, self.settings.epsilon)


class _GatedProduct(nn.Module):
    """``Multiply``: Lu 2023 eq. (6)-(7), or LRP-all (everything to the signal)."""

    def __init__(self, settings: _Settings) -> None:
        super().__init__()
        self.settings = settings

    def forward(self, signal: Tensor, gate: Tensor) -> Tensor:
        """Return ``signal * gate``; relevance split as ``settings.gated_rule`` says."""
        if self.settings.gated_rule == "all":
            return signal * gate.detach()
        total = _stabilise(signal.abs() + gate.abs(), self.settings.epsilon)
        rule = (
            signal * (gate * signal.abs() / total).detach()
            + gate * (signal * gate.abs() / total).detach()
        )
        return (signal * gate).detach() + (rule - rule.detach())


def _fold(conv: nn.Conv3d, norm: nn.BatchNorm3d) -> None:
    """Fold ``norm`` (in eval mode) into the convolution before it, in place."""
    if norm.running_mean is None or norm.running_var is None:
        raise ValueError("cannot fold a BatchNorm3d without running statistics into its conv")
    scale = torch.rsqrt(norm.running_var + norm.eps)
    shift = -norm.running_mean * scale
    if norm.affine:
        scale = scale * norm.weight
        shift = shift * norm.weight + norm.bias
    with torch.no_grad():
        bias = shift if conv.bias is None else conv.bias * scale + shift
        conv.weight.mul_(scale.view(-1, 1, 1, 1, 1))
        conv.bias = nn.Parameter(bias.detach().clone())


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Return a copy of ``model`` in eval mode with batch normalisation folded into convolutions.

    Every ``BatchNorm3d`` that directly follows a ``Conv3d`` in an ``nn.Sequential`` is merged
    into the convolution's weights and bias and replaced by ``nn.Identity``; the output is that of
    ``model.eval()``.

    Parameters
    ----------
    model : nn.Module
        Network; not changed.

    Returns
    -------
    nn.Module
        The folded copy, in eval mode.
    """
    folded = copy.deepcopy(model).eval()
    for module in list(folded.modules()):
        if not isinstance(module, nn.Sequential):
            continue
        for (_, first), (name, second) in pairwise(list(module.named_children())):
            if isinstance(first, nn.Conv3d) and isinstance(second, nn.BatchNorm3d):
                _fold(first, second)
                setattr(module, name, nn.Identity())
    return folded


def _wrap(module: nn.Module, settings: _Settings) -> nn.Module | None:
    """Return the LRP version of a leaf module, or None if the module propagates correctly."""
    if isinstance(module, nn.Conv3d | nn.Linear):
        return _RuleLayer(module, settings)
    if isinstance(module, nn.AvgPool3d | nn.AdaptiveAvgPool3d):
        return _RuleAverage(module, settings)
    if isinstance(module, nn.BatchNorm3d | nn.Tanh | nn.Sigmoid | nn.Softmax):
        return _PassThrough(module, settings)
    if isinstance(module, Add):
        return _RuleSum(settings)
    if isinstance(module, Multiply):
        return _GatedProduct(settings)
    if isinstance(module, _NEUTRAL) or next(module.children(), None) is not None:
        return None
    raise TypeError(f"LRP has no rule for {type(module).__name__}")


def _prepare(model: nn.Module, settings: _Settings) -> nn.Module:
    """Return a folded, frozen copy of ``model`` whose leaf modules carry the LRP rules."""
    prepared = fold_batchnorm(model).requires_grad_(False)
    for parent in list(prepared.modules()):
        for name, child in list(parent.named_children()):
            wrapped = _wrap(child, settings)
            if wrapped is not None:
                setattr(parent, name, wrapped)
    return _wrap(prepared, settings) or prepared


def _start_value(logits: Tensor, target: int | Tensor | None) -> Tensor:
    """Sum over the batch of the output each sample's relevance starts from."""
    if logits.ndim != 2:
        raise ValueError(f"the network must return logits [B, K], got {tuple(logits.shape)}")
    if logits.shape[1] == 1:
        # Lu 2023 eq. (5): start from f(x); target 0 explains the negative class, -f(x).
        if target is None:
            return logits.sum()
        sign = 1.0 - 2.0 * (torch.as_tensor(target, device=logits.device) == 0).float()
        return (logits[:, 0] * sign).sum()
    if target is None:
        target = logits.argmax(dim=1)
    index = torch.as_tensor(target, device=logits.device).long().expand(logits.shape[0])
    return logits.gather(1, index.unsqueeze(1)).sum()


def relevance(
    model: nn.Module,
    x: Tensor,
    age: Tensor | None = None,
    *,
    target: int | Tensor | None = None,
    rule: str = "composite",
    start: str = "logit",
    gated_rule: str = "proportional",
    epsilon: float = 1e-8,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> Tensor:
    """LRP relevance map of a network's output on its input voxels.

    Parameters
    ----------
    model : nn.Module
        A network of ``bids_app.deep.networks`` (or one built from the same layer types). Not
        changed: LRP runs on a prepared copy in eval mode.
    x : Tensor of shape (B, C, D, H, W)
        Input volumes, on any device (moved to the model's).
    age : Tensor of shape (B,), optional
        Age in years, for networks that use it (GAMER).
    target : int or Tensor of shape (B,), optional
        Class to explain. Two-logit networks: the logit's index, by default the predicted class.
        One-logit networks: by default (or 1) ``f(x)``, 0 for ``-f(x)``. Not allowed with
        ``start="attention"``.
    rule : {"composite", "epsilon", "alpha1beta0"}
        Preset of ``PRESETS``: "composite" (Lu 2023 §II.E-F: z^beta on the input layer,
        alpha1beta0 on convolutions, epsilon on fully connected layers), or one rule everywhere
        ("alpha1beta0" is Coll 2023 §2.6).
    start : {"logit", "attention"}
        Start from the logit, or (GAMER, Lu 2023 §II.F (ii)) from each attention weight ``a_l``,
        which gives channel l its own map started from ``a_l``.
    gated_rule : {"proportional", "all"}
        Split of the element-wise products ``s * g`` and ``a_l * m_l``: Lu 2023 eq. (6)-(7), or
        LRP-all (all relevance to the signal ``s`` or ``m_l``).
    epsilon : float
        Stabiliser of the rules (Lu 2023 §II.F: 1e-8).
    bounds : pair of float
        Lowest and highest voxel value for the z^beta rule (Lu 2023 §II.F: 0 and 1).

    Returns
    -------
    Tensor of the shape of ``x``
        Relevance per voxel and channel, float32 on ``x``'s device. With all biases zero it sums
        to the start value (Lu 2023 eq. (5)); relevance given to the age is not part of it.

    Examples
    --------
    >>> from bids_app.deep.networks import ResNet3D
    >>> net = ResNet3D(widths=(4, 4, 8, 8), head=(8, 8))
    >>> relevance(net, torch.rand(2, 1, 16, 16, 16)).shape
    torch.Size([2, 1, 16, 16, 16])
    """
    if rule not in PRESETS:
        raise ValueError(f"unknown rule {rule!r}; choose one of {sorted(PRESETS)}")
    if start not in _STARTS:
        raise ValueError(f"unknown start {start!r}; choose one of {_STARTS}")
    if gated_rule not in _GATED_RULES:
        raise ValueError(f"unknown gated_rule {gated_rule!r}; choose one of {_GATED_RULES}")
    if not bounds[0] < bounds[1]:
        raise ValueError(f"bounds must be (low, high) with low < high, got {bounds}")
    has_attention = hasattr(model, "forward_with_attention")
    if start == "attention" and (target is not None or not has_attention):
        raise ValueError("start='attention' needs a network with attention (GAMER) and no target")
    settings = _Settings(dict(PRESETS[rule]), epsilon, bounds, gated_rule)
    parameter = next(model.parameters())
    with (
        torch.inference_mode(False),
        torch.enable_grad(),
        torch.autocast(parameter.device.type, enabled=False),
    ):
        prepared = _prepare(model, settings)
        leaf = x.detach().to(parameter.device, parameter.dtype).clone().requires_grad_()
        if age is not None:
            age = age.to(parameter.device)
        settings.network_input = leaf
        if start == "attention":
            value = prepared.forward_with_attention(leaf, age)[1].sum()
        else:
            logits = prepared(leaf) if age is None else prepared(leaf, age)
            value = _start_value(logits, target)
        if settings.input_layers == 0:
            raise ValueError("LRP needs the network input to be read by Conv3d or Linear layers")
        (grad,) = torch.autograd.grad(value, leaf)
    return grad.detach().to(x.device)


def explained_classes(
    predicted: np.ndarray,
    target: str = "predicted",
    n_classes: int = 2,
    named: int | None = None,
) -> np.ndarray:
    """Return the class each sample's relevance map explains (``relevance``'s ``target``).

    Parameters
    ----------
    predicted : numpy.ndarray
        The predicted class of each sample, ``0 .. n_classes - 1`` (for an ensemble, its
        decision, e.g. the majority vote of Coll 2023 §2.5, so that every fold model explains
        the same class).
    target : {"predicted", "positive"}
        ``predicted``: the winning class of each sample, as Coll 2023 §2.6 (true and false
        negatives are explained by the negative class); ``positive``: the positive class for all
        (binary targets only: a multi-class target has none).
    n_classes : int
        Classes of the target.
    named : int, optional
        A multi-class target's class that every map explains (``--lrp-class``), with
        ``target="predicted"``.

    Returns
    -------
    numpy.ndarray
        int64 class indices, one per sample.

    Raises
    ------
    ValueError
        For an unknown target, ``positive`` with more than two classes, or a named class with a
        binary target, with ``positive`` or out of range.

    Examples
    --------
    >>> explained_classes(np.array([0, 1, 1]))
    array([0, 1, 1])
    >>> explained_classes(np.array([0, 1, 1]), "positive")
    array([1, 1, 1])
    >>> explained_classes(np.array([0, 2, 1]), n_classes=3, named=2)
    array([2, 2, 2])
    """
    if target not in TARGETS:
        raise ValueError(f"unknown LRP target {target!r}; choose one of {TARGETS}")
    if target == "positive" and n_classes > 2:
        raise ValueError(
            f"LRP target 'positive' needs a binary target; this one has {n_classes} classes: "
            "explain the predicted class or a named class"
        )
    predicted = np.asarray(predicted, dtype=np.int64)
    if named is not None:
        if n_classes <= 2 or target != "predicted" or not 0 <= named < n_classes:
            raise ValueError(
                f"a named LRP class needs a multi-class target with the predicted target and a "
                f"class in 0 .. {n_classes - 1}; got class {named} of {n_classes}, {target!r}"
            )
        return np.full_like(predicted, named)
    return predicted if target == "predicted" else np.ones_like(predicted)


def combined_map(relevance: Tensor, x: Tensor) -> Tensor:
    """Return the combined map of Lu 2023 eq. (8), ``sum over contrasts of R_x * x``.

    Parameters
    ----------
    relevance : Tensor of shape (B, C, D, H, W)
        Relevance maps from ``relevance``.
    x : Tensor of shape (B, C, D, H, W)
        The input volumes.

    Returns
    -------
    Tensor of shape (B, D, H, W)
    """
    if relevance.shape != x.shape:
        raise ValueError(
            f"relevance {tuple(relevance.shape)} and x {tuple(x.shape)} differ in shape"
        )
    return (relevance * x.to(relevance)).sum(dim=1)

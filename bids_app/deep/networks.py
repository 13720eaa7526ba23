"""3D convolutional networks that classify brain MRI volumes: ResNet3D, CNN8 and GAMER.

All networks read ``x`` of shape ``[B, C, D, H, W]`` (C contrasts, min-max normalised crops) and
an optional ``age`` of shape ``[B]`` in years, and return logits of shape ``[B, n_outputs]``:
two logits (softmax outside the network) or one logit (sigmoid outside). ``positive_probability``
turns either into the probability of the positive class.

- ``ResNet3D``: the residual network of Coll 2023 §2.3.1 (Coll et al.). The paper names "3x3x3
  and 1x1x1 kernel convolution layers" per residual block; our reading is He et al.'s projection
  block: two 3x3x3 convolutions (each with batch normalisation, LeakyReLU after the first) on the
  main path, a 1x1x1 convolution with batch normalisation on the shortcut, their sum, LeakyReLU,
  then 2x2x2 max pooling.
- ``CNN8``: the 8-convolution 3D CNN that Turrisi 2024 §2.2.2 takes from Turrisi et al. (2023) to
  extract the deep features DL7 and DL8 (256 each). The exact layout is not published; our reading:
  3x3x3 convolution, batch normalisation and ReLU eight times, 2x2x2 max pooling after the 2nd, 4th
  and 6th convolution, global average pooling after the 8th (in place of a fourth max pooling) and
  a linear layer to two logits.
- ``GAMER``: the multi-path network of Lu 2023 §II.B-C (Lu et al.): one DenseNet encoder per
  contrast, a gated attention over the contrasts, the age and one logit. Where the paper is
  silent, the encoder follows MONAI's ``DenseNet`` (bottleneck of 4 x growth rate, transitions that
  halve the channels, global average pooling before the fully connected layer).

Residual sums and element-wise products are modules (``Add``, ``Multiply``) so that
``bids_app.deep.lrp`` can give them their own relevance rules, and every batch normalisation that
follows a convolution sits next to it in an ``nn.Sequential`` so that it can be folded into it.
"""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import Tensor, nn

__all__ = [
    "CNN8",
    "GAMER",
    "NETWORKS",
    "Add",
    "Multiply",
    "ResNet3D",
    "build_network",
    "positive_probability",
]


class Add(nn.Module):
    """Element-wise sum of tensors, a module so that LRP can split the relevance of sums."""

    def forward(self, *terms: Tensor) -> Tensor:
        """Return the sum of ``terms``."""
        total = terms[0]
        for term in terms[1:]:
            total = total + term
        return total


class Multiply(nn.Module):
    """Element-wise (broadcast) product ``signal * gate``, for the gated LRP rule of Lu 2023."""

    def forward(self, signal: Tensor, gate: Tensor) -> Tensor:
        """Return ``signal * gate``."""
        return signal * gate


def positive_probability(logits: Tensor) -> Tensor:
    """Probability of the positive class from a network's logits.

    Parameters
    ----------
    logits : Tensor of shape (B, 2) or (B, 1)
        Output of a network of this module.

    Returns
    -------
    Tensor of shape (B,)
        ``softmax(logits)[:, 1]`` for two logits, ``sigmoid(logits[:, 0])`` for one.
    """
    if logits.ndim != 2 or logits.shape[1] not in (1, 2):
        raise ValueError(f"logits must have shape [B, 1] or [B, 2], got {tuple(logits.shape)}")
    if logits.shape[1] == 2:
        return torch.softmax(logits, dim=1)[:, 1]
    return torch.sigmoid(logits[:, 0])


def class_probabilities(logits: Tensor) -> Tensor:
    """Probability of every class from a network's logits.

    Parameters
    ----------
    logits : Tensor of shape (B, K)
        Output of a network of this module: ``K >= 2`` logits under a softmax, or one under a
        sigmoid (two classes).

    Returns
    -------
    Tensor of shape (B, max(K, 2))
        ``softmax(logits)``, or ``[1 - p, p]`` with ``p = sigmoid(logits[:, 0])`` for one logit.

    Examples
    --------
    >>> class_probabilities(torch.zeros(1, 3)).tolist()
    [[0.3333333432674408, 0.3333333432674408, 0.3333333432674408]]
    """
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape [B, K], got {tuple(logits.shape)}")
    if logits.shape[1] == 1:
        p = torch.sigmoid(logits)
        return torch.cat([1 - p, p], dim=1)
    return torch.softmax(logits, dim=1)


def _outputs_of(n_classes: int, binary_outputs: int) -> int:
    """Logits of a network for ``n_classes``: its binary head, or one logit per class."""
    if n_classes < 2:
        raise ValueError(f"n_classes must be at least 2, got {n_classes}")
    return binary_outputs if n_classes == 2 else n_classes


def _prepare_input(x: Tensor, network: nn.Module, n_channels: int, min_size: int) -> Tensor:
    """Check ``x``'s shape and cast it to the network's floating-point type."""
    if x.ndim != 5 or x.shape[1] != n_channels:
        raise ValueError(
            f"{type(network).__name__} expects x of shape [B, {n_channels}, D, H, W], "
            f"got {tuple(x.shape)}"
        )
    if min(x.shape[2:]) < min_size:
        raise ValueError(
            f"{type(network).__name__} needs at least {min_size} voxels per axis, "
            f"got {tuple(x.shape[2:])}"
        )
    return x.to(dtype=next(network.parameters()).dtype)


def _conv_bn(in_channels: int, out_channels: int, kernel_size: int) -> list[nn.Module]:
    """Return a same-padded convolution without bias and its batch normalisation."""
    return [
        nn.Conv3d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm3d(out_channels),
    ]


class ResidualBlock(nn.Module):
    """Residual block of ResNet3D followed by 2x2x2 max pooling (Coll 2023 §2.3.1).

    Parameters
    ----------
    in_channels, out_channels : int
        Channels read and written.
    negative_slope : float
        Slope of the LeakyReLU for negative inputs.
    """

    def __init__(self, in_channels: int, out_channels: int, negative_slope: float) -> None:
        super().__init__()
        self.main = nn.Sequential(
            *_conv_bn(in_channels, out_channels, 3),
            nn.LeakyReLU(negative_slope),
            *_conv_bn(out_channels, out_channels, 3),
        )
        self.shortcut = nn.Sequential(*_conv_bn(in_channels, out_channels, 1))
        self.add = Add()
        self.activation = nn.LeakyReLU(negative_slope)
        self.pool = nn.MaxPool3d(2)

    def forward(self, x: Tensor) -> Tensor:
        """Return the pooled activation of the residual sum."""
        return self.pool(self.activation(self.add(self.main(x), self.shortcut(x))))


class ResNet3D(nn.Module):
    """The 3D residual network of Coll 2023 §2.3.1 (two logits).

    Parameters
    ----------
    in_channels : int
        Number of contrasts (Coll 2023: T1w and FLAIR).
    widths : sequence of int
        Kernels of the residual blocks; Coll 2023 §2.3.1: 16, 32, 64, 128. Narrower nets suit tests.
    head : pair of int
        Kernels of the first two 1x1x1 convolutions after the global max pooling (Coll 2023:
        128, 64); the first reads ``widths[-1]`` channels.
    negative_slope : float
        LeakyReLU slope (Coll 2023 names no value; torch's default).
    n_classes : int
        Classes of the target: two logits under a softmax for a binary target (Coll 2023
        §2.3.1), one per class for a multi-class one.

    Notes
    -----
    Each block halves the image, so the input needs ``2 ** len(widths)`` voxels per axis.
    """

    uses_age = False

    def __init__(
        self,
        in_channels: int = 1,
        widths: tuple[int, ...] = (16, 32, 64, 128),
        head: tuple[int, int] = (128, 64),
        negative_slope: float = 0.01,
        n_classes: int = 2,
    ) -> None:
        super().__init__()
        self.n_outputs = _outputs_of(n_classes, 2)
        self.in_channels = in_channels
        self.features = nn.Sequential(
            *(
                ResidualBlock(n_in, n_out, negative_slope)
                for n_in, n_out in pairwise((in_channels, *widths))
            )
        )
        self.pool = nn.AdaptiveMaxPool3d(1)  # Coll 2023's "global adaptive max pooling (GAP)"
        self.head = nn.Sequential(
            nn.Conv3d(widths[-1], head[0], 1),
            nn.ReLU(),
            nn.Conv3d(head[0], head[1], 1),
            nn.ReLU(),
        )
        self.classifier = nn.Conv3d(head[1], self.n_outputs, 1)
        self._min_size = 2 ** len(widths)

    def _embedding_map(self, x: Tensor) -> Tensor:
        x = _prepare_input(x, self, self.in_channels, self._min_size)
        return self.head(self.pool(self.features(x)))

    def forward(self, x: Tensor, age: Tensor | None = None) -> Tensor:
        """Return the logits, shape ``[B, n_outputs]``; ``age`` is not used."""
        return self.classifier(self._embedding_map(x)).flatten(1)

    def embed(self, x: Tensor, age: Tensor | None = None) -> Tensor:
        """Return the penultimate activations (input of the last 1x1x1 conv), ``[B, head[1]]``."""
        return self._embedding_map(x).flatten(1)


class CNN8(nn.Module):
    """The 8-convolution 3D CNN of Turrisi 2024 §2.2.2 (Turrisi et al. 2023; layout is our reading).

    Parameters
    ----------
    in_channels : int
        Number of contrasts (Turrisi 2024: T1w only).
    widths : sequence of 8 int
        Kernels of the eight convolutions; the last two give the 256 features of DL7 and DL8
        (Turrisi 2024 §2.2.2).
    n_classes : int
        Classes of the target: two logits for a binary target, one per class otherwise.

    Notes
    -----
    Three max poolings halve the image, so the input needs 8 voxels per axis.
    """

    uses_age = False

    def __init__(
        self,
        in_channels: int = 1,
        widths: tuple[int, ...] = (32, 32, 64, 64, 128, 128, 256, 256),
        n_classes: int = 2,
    ) -> None:
        super().__init__()
        self.n_outputs = _outputs_of(n_classes, 2)
        if len(widths) != 8:
            raise ValueError(f"CNN8 needs 8 widths, got {len(widths)}")
        self.in_channels = in_channels
        self.convs = nn.ModuleList(
            nn.Sequential(*_conv_bn(n_in, n_out, 3), nn.ReLU())
            for n_in, n_out in pairwise((in_channels, *widths))
        )
        self.pool = nn.MaxPool3d(2)
        self.average = nn.AdaptiveAvgPool3d(1)
        self.classifier = nn.Linear(widths[-1], self.n_outputs)

    def _last_maps(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return the activation maps of the 7th and 8th convolution."""
        h = _prepare_input(x, self, self.in_channels, 8)
        for index, conv in enumerate(self.convs[:6]):
            h = conv(h)
            if index % 2 == 1:
                h = self.pool(h)
        h7 = self.convs[6](h)
        return h7, self.convs[7](h7)

    def conv_features(self, x: Tensor) -> dict[str, Tensor]:
        """Return the deep features of Turrisi 2024 §2.2.2.

        Parameters
        ----------
        x : Tensor of shape (B, C, D, H, W)
            Input volumes.

        Returns
        -------
        dict of str to Tensor
            ``"dl7"`` and ``"dl8"``: global average of the 7th and 8th convolution's activations,
            ``[B, widths[6]]`` and ``[B, widths[7]]``.
        """
        h7, h8 = self._last_maps(x)
        return {"dl7": self.average(h7).flatten(1), "dl8": self.average(h8).flatten(1)}

    def forward(self, x: Tensor, age: Tensor | None = None) -> Tensor:
        """Return the logits, shape ``[B, n_outputs]``; ``age`` is not used."""
        return self.classifier(self.average(self._last_maps(x)[1]).flatten(1))

    def embed(self, x: Tensor, age: Tensor | None = None) -> Tensor:
        """Return DL7, the penultimate convolution's features (the better, Turrisi 2024 §3)."""
        return self.conv_features(x)["dl7"]


class _DenseLayer(nn.Module):
    """DenseNet layer: BN, ReLU, 1x1x1 conv, BN, ReLU, 3x3x3 conv; output appended to the input."""

    def __init__(self, in_channels: int, growth_rate: int, bottleneck: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.BatchNorm3d(in_channels),
            nn.ReLU(),
            *_conv_bn(in_channels, bottleneck, 1),
            nn.ReLU(),
            nn.Conv3d(bottleneck, growth_rate, 3, padding=1, bias=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Return ``x`` with the new feature maps concatenated."""
        return torch.cat([x, self.layers(x)], dim=1)


class DenseNetEncoder(nn.Module):
    """One contrast's DenseNet path of GAMER (Lu 2023 §II.C), image to hidden vector ``m_l``.

    Parameters
    ----------
    growth_rate : int
        Feature maps added by each dense layer (Lu 2023: 4).
    init_features : int
        Filters of the first convolution (Lu 2023: 16).
    hidden : int
        Size of the hidden vector (Lu 2023: 32).

    Notes
    -----
    Lu 2023 §II.C: a convolutional block (3x3x3 conv, BN, ReLU, max pooling with kernel 3, stride
    2, padding 1), four dense blocks of two dense layers, three transition layers (BN, ReLU,
    1x1x1 conv, 2x2x2 average pooling), then BN, ReLU and a fully connected layer. Our reading
    where it is silent, as MONAI's ``DenseNet``: bottleneck of ``4 * growth_rate`` channels,
    transitions halve the channels, global average pooling before the fully connected layer.
    The image is divided by 16, so the input needs 16 voxels per axis.
    """

    def __init__(self, growth_rate: int = 4, init_features: int = 16, hidden: int = 32) -> None:
        super().__init__()
        modules: list[nn.Module] = [
            *_conv_bn(1, init_features, 3),
            nn.ReLU(),
            nn.MaxPool3d(kernel_size=3, stride=2, padding=1),
        ]
        channels = init_features
        for block in range(4):
            for _ in range(2):
                modules.append(_DenseLayer(channels, growth_rate, 4 * growth_rate))
                channels += growth_rate
            if block < 3:
                modules.append(
                    nn.Sequential(
                        nn.BatchNorm3d(channels),
                        nn.ReLU(),
                        nn.Conv3d(channels, channels // 2, 1, bias=False),
                        nn.AvgPool3d(2),
                    )
                )
                channels //= 2
        modules += [nn.BatchNorm3d(channels), nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten()]
        self.features = nn.Sequential(*modules)
        self.fc = nn.Linear(channels, hidden)

    def forward(self, x: Tensor) -> Tensor:
        """Return the hidden vector, ``[B, hidden]``."""
        return self.fc(self.features(x))


class GAMER(nn.Module):
    """Multi-path gated-attention network of Lu 2023 §II.B-C (GAMER-MRIL; one logit).

    Parameters
    ----------
    n_contrasts : int
        Number of contrasts L, one encoder each.
    growth_rate, init_features, hidden : int
        Encoder settings, see ``DenseNetEncoder`` (Lu 2023: 4, 16, 32).
    attention : int
        Neurons K of the signal and gate layers (Lu 2023 §II.C: 16).
    n_classes : int
        Classes of the target: Lu 2023's one logit for a binary target, one per class (under a
        softmax) for a multi-class one.

    Notes
    -----
    Lu 2023 eq. (1)-(3): ``m_l`` is encoder l's output, ``s = tanh(U m_l)``,
    ``g = sigm(V m_l)``, ``a_l = softmax_l(w^T (s * g))`` and ``n = sum_l a_l m_l``; the
    classifier reads ``n`` and the age divided by 100 (Lu 2023 §II.C).
    """

    uses_age = True

    def __init__(
        self,
        n_contrasts: int = 2,
        growth_rate: int = 4,
        init_features: int = 16,
        hidden: int = 32,
        attention: int = 16,
        n_classes: int = 2,
    ) -> None:
        super().__init__()
        self.n_outputs = _outputs_of(n_classes, 1)
        self.n_contrasts = n_contrasts
        self.encoders = nn.ModuleList(
            DenseNetEncoder(growth_rate, init_features, hidden) for _ in range(n_contrasts)
        )
        self.signal = nn.Sequential(nn.Linear(hidden, attention), nn.Tanh())
        self.gate = nn.Sequential(nn.Linear(hidden, attention), nn.Sigmoid())
        self.gated = Multiply()
        self.score = nn.Linear(attention, 1)
        self.softmax = nn.Softmax(dim=1)
        self.weighting = Multiply()
        self.combine = Add()
        self.classifier = nn.Linear(hidden + 1, self.n_outputs)

    def _attend(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return the combined representation ``n`` and the attention weights."""
        x = _prepare_input(x, self, self.n_contrasts, 16)
        m = torch.stack(
            [encoder(x[:, index : index + 1]) for index, encoder in enumerate(self.encoders)],
            dim=1,
        )
        scores = self.score(self.gated(self.signal(m), self.gate(m))).squeeze(-1)
        weights = self.softmax(scores)
        n = self.combine(*self.weighting(m, weights.unsqueeze(-1)).unbind(1))
        return n, weights

    def forward_with_attention(self, x: Tensor, age: Tensor | None) -> tuple[Tensor, Tensor]:
        """Return the logit and the attention weights.

        Parameters
        ----------
        x : Tensor of shape (B, L, D, H, W)
            One channel per contrast.
        age : Tensor of shape (B,)
            Age in years.

        Returns
        -------
        logits : Tensor of shape (B, 1)
        attention : Tensor of shape (B, L)
            Attention weights ``a_l``; each row sums to 1.
        """
        if age is None:
            raise ValueError("GAMER needs the age in years (Lu 2023 §II.C); got age=None")
        n, weights = self._attend(x)
        if age.shape != (n.shape[0],):
            raise ValueError(f"age must have shape [{n.shape[0]}], got {tuple(age.shape)}")
        scaled_age = age.to(device=n.device, dtype=n.dtype) / 100  # Lu 2023 §II.C
        return self.classifier(torch.cat([n, scaled_age.unsqueeze(1)], dim=1)), weights

    def forward(self, x: Tensor, age: Tensor | None = None) -> Tensor:
        """Return the logit ``f(x)``, ``[B, 1]`` (``[B, n_classes]`` multi-class); needs age."""
        return self.forward_with_attention(x, age)[0]

    def embed(self, x: Tensor, age: Tensor | None = None) -> Tensor:
        """Return the combined representation ``n``, ``[B, hidden]`` (independent of age)."""
        return self._attend(x)[0]


NETWORKS: dict[str, type[nn.Module]] = {"resnet3d": ResNet3D, "cnn8": CNN8, "gamer": GAMER}


def build_network(name: str, in_channels: int, **options: object) -> nn.Module:
    """Build a network of ``NETWORKS`` by name.

    Parameters
    ----------
    name : str
        ``"resnet3d"``, ``"cnn8"`` or ``"gamer"``.
    in_channels : int
        Number of contrasts (GAMER's ``n_contrasts``).
    **options
        Other arguments of the network's class.

    Returns
    -------
    nn.Module
        The network, in training mode, on the CPU.

    Examples
    --------
    >>> net = build_network("resnet3d", 2, widths=(4, 8, 8, 16))
    >>> net(torch.rand(1, 2, 16, 16, 16)).shape
    torch.Size([1, 2])
    """
    if name not in NETWORKS:
        raise ValueError(f"unknown network {name!r}; choose one of {sorted(NETWORKS)}")
    if name == "gamer":
        return GAMER(n_contrasts=in_channels, **options)
    return NETWORKS[name](in_channels=in_channels, **options)

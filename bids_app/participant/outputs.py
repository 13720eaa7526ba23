"""Write a finished participant workflow's results as derivatives (through the writer)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import pandas as pd
from nipype.interfaces.base import isdefined

from bids_app.derivatives.naming import TEMPLATE_SPACE, contrast_output
from bids_app.derivatives.writer import DerivativesWriter
from bids_app.inputs.inventory import SessionInputs
from bids_app.participant.options import AnatomicalOptions
from bids_app.participant.profile import slowest_steps
from bids_app.preprocessing.qmaps import describe_normalisation
from bids_app.preprocessing.templates import TISSUES
from bids_app.reports.html import append_section
from bids_app.reports.participant import profile_html


def write_session_outputs(
    outputs: dict,
    inputs: SessionInputs,
    options: AnatomicalOptions,
    writer: DerivativesWriter,
    sources: list[Path],
    params: dict,
    profile: pd.DataFrame | None = None,
) -> None:
    """Write a finished workflow's results as derivatives; the QC JSON last (the marker).

    Parameters
    ----------
    outputs : dict
        Node name to its result outputs.
    inputs : SessionInputs
        The session.
    options : AnatomicalOptions
        The resolved settings.
    writer : DerivativesWriter
        The output dataset.
    sources : list of Path
        The input files.
    params : dict
        The parameters recorded in every sidecar.
    profile : pandas.DataFrame, optional
        The step times (``--profile``); the QC report then lists the slowest steps.
    """
    entities = inputs.entities
    t1w_source = [inputs.t1w[0]]
    mni = {"Space": TEMPLATE_SPACE, "Resolution": f"{options.resolution} mm"}

    def image(output: str, path: str, source: list[Path], **metadata) -> None:
        writer.write_image(
            nib.load(path), output, entities, sources=source, params=params, metadata=metadata
        )

    def copy(output: str, path: str, source: list[Path], **metadata) -> None:
        writer.copy_file(
            Path(path), output, entities, sources=source, params=params, metadata=metadata
        )

    segment, to_template = outputs["segment"], outputs["to_template"]
    image(
        "t1w_preproc",
        outputs["n4_brain"].out_file,
        t1w_source,
        SkullStripped=False,
        Conform=outputs["conform_t1w"].report,
    )
    image("brain_mask", segment.out_mask, t1w_source, Type="Brain", Method=options.skull_strip)
    image("dseg", segment.out_dseg, t1w_source, Labels={"1": "CSF", "2": "GM", "3": "WM"})
    for tissue, path in zip(TISSUES, segment.out_probseg, strict=True):
        image(f"probseg_{tissue.lower()}", path, t1w_source)
    copy("xfm_t1w_to_template", outputs["register"].forward, t1w_source, Format="ANTs field")
    copy("xfm_template_to_t1w", outputs["register"].inverse, t1w_source, Format="ANTs field")
    copy(
        "xfm_t1w_to_template_affine",
        outputs["register"].affine,
        t1w_source,
        Format="ANTs affine",
        Description="the affine stage of the registration alone",
    )
    image("t1w_mni", to_template.t1w_mni, t1w_source, **mni)
    image("brain_mask_mni", to_template.mask_mni, t1w_source, Type="Brain", **mni)
    image("dseg_mni", to_template.dseg_mni, t1w_source, **mni)
    image("logjacobian_mni", to_template.logjacobian_mni, t1w_source, **mni)
    if isdefined(to_template.lesion_mni):
        image("lesion_mni", to_template.lesion_mni, [inputs.lesion_masks[0]], **mni)
    # CnnSpace: the crops of the two --cnn-space choices must not be mixed (checked by the
    # group level and by --models)
    cnn = {**mni, "CnnSpace": options.cnn_space, "Normalisation": options.cnn_normalisation}
    image("t1w_cnn", outputs["cnn_t1w"].out_file, t1w_source, **cnn)
    for contrast, path in inputs.others.items():
        name = contrast.lower()
        other = outputs[f"{name}_coregister"]
        if other.summary["status"] != "ok":
            continue
        source = [path, inputs.t1w[0]]
        value_range = options.value_range(contrast)
        crop = {**cnn, "Normalisation": describe_normalisation(value_range, cnn["Normalisation"])}
        if value_range is not None:  # a quantitative map: its range, in the file's units
            crop["ValueRange"] = list(value_range)
        image(contrast_output(contrast, "t1w"), other.out_t1w, source, Coregistration=other.quality)
        image(contrast_output(contrast, "mni"), other.out_mni, source, **mni)
        image(
            contrast_output(contrast, "cnn"),
            outputs[f"cnn_{name}"].out_file,
            source,
            **crop,
        )
        copy(contrast_output(contrast, "xfm"), other.transform, source, Format="ANTs affine")
    _write_features(outputs, inputs, options, writer, params)
    qc = outputs["qc"]
    report = Path(qc.report).read_text(encoding="utf-8")
    if profile is not None:
        cpu = None if profile["cpu_s"].isna().any() else float(profile["cpu_s"].sum())
        timing = profile_html(slowest_steps(profile), float(profile["wall_s"].sum()), cpu)
        report = append_section(report, "Processing time", timing)
    writer.write_text(writer.report(entities), report)
    writer.write_json(
        {
            "Metrics": qc.metrics,
            "Flags": qc.flags,
            "SkullStrip": options.skull_strip,
            "SkullStripReason": options.skull_strip_reason,
        },
        "qc_metrics",
        entities,
        sources=sources,
        params=params,
    )


def _write_features(
    outputs: dict,
    inputs: SessionInputs,
    options: AnatomicalOptions,
    writer: DerivativesWriter,
    params: dict,
) -> None:
    """Write the feature tables (with their data dictionaries) and the feature images."""
    entities, source = inputs.entities, [inputs.t1w[0], *inputs.lesion_masks[:1]]

    def image(output: str, path: str, **metadata) -> None:
        writer.write_image(
            nib.load(path), output, entities, sources=source, params=params, metadata=metadata
        )

    if "atlas_to_t1w" in outputs:
        atlas = outputs["atlas_to_t1w"]
        image("aparcaseg", atlas.aparcaseg, **atlas.sidecar)
    if "thickness" in options.features:
        thickness = outputs["thickness"]
        image(
            "thickness_map", thickness.thickness_map, Units="mm", Method=thickness.sidecar["Method"]
        )
    ids = {"participant_id": f"sub-{inputs.subject}"}
    if inputs.session:
        ids["session_id"] = f"ses-{inputs.session}"
    if "meshnet" in outputs:
        meshnet = outputs["meshnet"]
        image("meshnet_dseg", meshnet.dseg, Method=meshnet.sidecar["Method"])
        writer.write_text(
            writer.path("meshnet_dseg_labels", entities),
            Path(meshnet.labels).read_text(encoding="utf-8"),
        )
    for family in options.families:
        result = outputs[family]
        table = pd.read_csv(result.table, sep="\t", na_values="n/a", keep_default_na=False)
        for position, (column, value) in enumerate(ids.items()):
            table.insert(position, column, value)
        writer.write_table(
            table,
            writer.path(family, entities),
            sources=source,
            params=params,
            columns=result.sidecar,
        )

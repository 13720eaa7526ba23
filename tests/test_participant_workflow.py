"""The participant workflow's graph: sub-workflow factories and their composition (no execution)."""

from __future__ import annotations

from copy import deepcopy
from pathlib import Path

import pytest
from nipype.interfaces.base import isdefined
from nipype.pipeline import engine as pe
from nipype.pipeline.engine.utils import generate_expanded_graph

from bids_app.config import FEATURE_FAMILIES
from bids_app.inputs.inventory import SessionInputs
from bids_app.participant.anatomical import init_anat_preproc_wf, init_segmentation_wf
from bids_app.participant.cnn_input import init_cnn_input_wf
from bids_app.participant.coregistration import init_coregistration_wf
from bids_app.participant.features import init_features_wf
from bids_app.participant.options import AnatomicalOptions
from bids_app.participant.qc import init_qc_wf
from bids_app.participant.registration import init_registration_wf, init_template_space_wf
from bids_app.participant.workflow import init_participant_wf

TEMPLATE = AnatomicalOptions("template", "requested", features=())


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """Placeholder input files (the graph is built, never run)."""
    paths = {name: tmp_path / f"{name}.nii.gz" for name in ("t1w", "flair", "t2w", "lesion")}
    for path in paths.values():
        path.write_bytes(b"")
    (tmp_path / "hdbet").mkdir()
    return {**paths, "hdbet": tmp_path / "hdbet"}


def _executed(workflow: pe.Workflow) -> dict[str, pe.Node]:
    """The nodes nipype runs (identity nodes removed), by name."""
    graph = generate_expanded_graph(deepcopy(workflow._create_flat_graph()))
    return {node.name: node for node in graph.nodes()}


def _edges(workflow: pe.Workflow) -> set[tuple[str, str, str, str]]:
    """The executed graph's connections as (source, output, destination, input)."""
    graph = generate_expanded_graph(deepcopy(workflow._create_flat_graph()))
    return {
        (source.name, output, dest.name, input_)
        for source, dest, data in graph.edges(data=True)
        for output, input_ in data["connect"]
    }


def test_minimal_participant_workflow_composes_the_sub_workflows(files, tmp_path):
    inputs = SessionInputs("01", None, t1w=(files["t1w"],))
    workflow = init_participant_wf(inputs, TEMPLATE, tmp_path / "work")
    assert set(workflow.list_node_names()) >= {
        f"{wf}.{node}"
        for wf, node in [
            ("anat_preproc_wf", "conform_t1w"),
            ("registration_wf", "register"),
            ("segmentation_wf", "segment"),
            ("template_space_wf", "to_template"),
            ("cnn_input_wf", "cnn_t1w"),
            ("qc_wf", "qc"),
        ]
    }
    links = {
        (source.name, dest.name): sorted(data["connect"])
        for source, dest, data in workflow._graph.edges(data=True)
    }
    assert links[("registration_wf", "segmentation_wf")] == [
        ("outputnode.inverse", "inputnode.inverse"),
        ("outputnode.template_mask", "inputnode.brain_mask"),
        ("outputnode.template_probability", "inputnode.template_probability"),
    ]
    assert ("anat_preproc_wf", "registration_wf") in links
    assert ("template_space_wf", "cnn_input_wf") in links
    assert not any("coregistration_wf" in pair or "features_wf" in pair for pair in links)
    nodes = _executed(workflow)
    assert set(nodes) == {
        "conform_t1w", "n4_head", "register", "warp_template_mask", "n4_brain", "segment",
        "to_template", "cnn_t1w", "qc",
    }  # fmt: skip
    assert nodes["conform_t1w"].inputs.in_file == str(files["t1w"])
    edges = _edges(workflow)
    assert ("n4_head", "out_file", "register", "in_file") in edges
    assert ("warp_template_mask", "out_mask", "n4_brain", "mask_file") in edges
    assert ("warp_template_mask", "out_probability", "segment", "refine_probability") in edges
    assert not any(edge[2] == "register" and edge[3] == "mask_file" for edge in edges)
    # each node caches in its sub-workflow's folder of the work directory (resume)
    nodes["register"].base_dir = workflow.base_dir  # as Workflow.run sets it
    register = Path(nodes["register"].output_dir())
    assert register == tmp_path / "work" / "sub_01_wf" / "registration_wf" / "register"


def test_full_participant_workflow_wires_every_sub_workflow(files, tmp_path):
    inputs = SessionInputs(
        "01",
        "A",
        t1w=(files["t1w"],),
        flair=(files["flair"],),
        t2w=(files["t2w"],),
        lesion_masks=(files["lesion"],),
    )
    options = AnatomicalOptions(
        "hdbet", "weights", hdbet_weights=files["hdbet"], hdbet_version="v2", nprocs=2
    )
    workflow = init_participant_wf(inputs, options, tmp_path)
    assert workflow.name == "sub_01_ses_A_wf"
    nodes = _executed(workflow)
    assert set(nodes) >= {"hdbet", "lesion", "flair_coregister", "t2w_coregister", "cnn_flair"}
    assert set(nodes) >= {"atlas_to_t1w", *FEATURE_FAMILIES}
    assert nodes["hdbet"].inputs.weights_dir == str(files["hdbet"])
    assert nodes["flair_coregister"].inputs.in_file == str(files["flair"])
    assert nodes["lesion"].inputs.in_file == str(files["lesion"])
    assert nodes["thickness"].n_procs == 2
    edges = _edges(workflow)
    for dest in ("register", "n4_brain", "segment"):
        assert ("hdbet", "out_mask", dest, "mask_file") in edges
    for dest in ("to_template", "flair_coregister", "t2w_coregister", "volumes", "radiomics"):
        assert ("lesion", "out_file", dest, "lesion") in edges
    assert ("flair_coregister", "out_mni", "cnn_flair", "in_file") in edges
    assert ("t2w_coregister", "summary", "merge_other", "in2") in edges
    assert ("merge_other", "out", "qc", "other") in edges
    assert ("atlas_to_t1w", "aparcaseg", "thickness", "aparcaseg") in edges


def test_hdbet_v1_node_gets_mode_tta_precision_and_device():
    options = AnatomicalOptions(
        "hdbet", "v1", hdbet_version="v1", hdbet_mode="accurate", device="cuda", precision="mixed"
    )
    node = init_anat_preproc_wf(options).get_node("hdbet")
    assert not isdefined(node.inputs.weights_dir)
    assert (node.inputs.mode, node.inputs.tta) == ("accurate", True)
    assert (node.inputs.device, node.inputs.precision) == ("cuda", "mixed")


@pytest.mark.parametrize(
    ("factory", "expected"),
    [
        (lambda: init_anat_preproc_wf(TEMPLATE), {"conform_t1w", "n4_head"}),
        (
            lambda: init_anat_preproc_wf(AnatomicalOptions("none", "stripped"), lesion=True),
            {"conform_t1w", "n4_head", "nonzero_mask", "lesion"},
        ),
        (lambda: init_registration_wf(TEMPLATE), {"register", "warp_template_mask"}),
        (lambda: init_segmentation_wf(TEMPLATE), {"n4_brain", "segment"}),
        (lambda: init_template_space_wf(TEMPLATE, lesion=True), {"to_template"}),
        (
            lambda: init_coregistration_wf(TEMPLATE, ["FLAIR"]),
            {"flair_coregister", "merge_other"},
        ),
        (
            lambda: init_cnn_input_wf(TEMPLATE, ["FLAIR", "T2w"]),
            {"cnn_t1w", "cnn_flair", "cnn_t2w"},
        ),
        (
            lambda: init_features_wf(AnatomicalOptions("template", "requested")),
            {"atlas_to_t1w", *FEATURE_FAMILIES},
        ),
        (
            lambda: init_features_wf(AnatomicalOptions("none", "x", features=("histogram",))),
            {"histogram"},
        ),
        (lambda: init_qc_wf(TEMPLATE, "NeuroStrat: sub-01", other=True), {"qc"}),
    ],
)
def test_each_factory_builds_its_nodes_between_input_and_output(factory, expected):
    workflow = factory()
    assert isinstance(workflow, pe.Workflow)
    assert set(workflow.list_node_names()) == {"inputnode", "outputnode", *expected}
    graph = workflow._graph
    inputnode, outputnode = workflow.get_node("inputnode"), workflow.get_node("outputnode")
    assert graph.out_degree(inputnode) > 0
    assert graph.in_degree(outputnode) > 0

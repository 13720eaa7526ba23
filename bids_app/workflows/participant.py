"""The participant level: one nipype workflow per subject and session.

The workflow computes into the work folder (nipype caches every node there, so a re-run resumes);
the results are then written by the derivatives writer, which alone decides their names.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
from nipype.pipeline import engine as pe

from bids_app.config import Config
from bids_app.derivatives.writer import DerivativesWriter
from bids_app.inputs.inventory import SessionInputs
from bids_app.interfaces.conform import Conform
from bids_app.utils.logs import track
from bids_app.workflows.nipype_setup import configure_nipype, failure_reason

LOGGER = logging.getLogger("bids_app.participant")


@dataclass(frozen=True)
class SessionOutcome:
    """How one subject/session ended.

    Parameters
    ----------
    key : str
        ``sub-X[_ses-Y]``.
    status : {"done", "skipped", "failed"}
        ``skipped`` means the outputs existed for the same settings.
    reason : str
        Why it failed (empty otherwise).
    """

    key: str
    status: str
    reason: str = ""


def init_participant_wf(inputs: SessionInputs, work_dir: Path) -> pe.Workflow:
    """Build the workflow of one subject and session.

    Parameters
    ----------
    inputs : SessionInputs
        The session's input files (a T1w is required).
    work_dir : Path
        Base folder for nipype's cache.

    Returns
    -------
    nipype.pipeline.engine.Workflow
        A workflow whose ``conform`` node conforms the first T1w.
    """
    workflow = pe.Workflow(name=f"{inputs.key.replace('-', '_')}_wf", base_dir=str(work_dir))
    conform_t1w = pe.Node(Conform(in_file=str(inputs.t1w[0])), name="conform_t1w", mem_gb=0.5)
    workflow.add_nodes([conform_t1w])
    return workflow


def _node_results(result_graph) -> dict:
    return {node.name: node.result.outputs for node in result_graph.nodes()}


def _plugin(config: Config, key: str) -> tuple[str, dict]:
    """Return nipype's plugin and its arguments, with a callback that logs each step."""

    def status(node, event: str) -> None:
        if event == "end":
            LOGGER.info("%s: step %s finished", key, node.name)
        elif event == "start":
            LOGGER.debug("%s: step %s started", key, node.name)

    if config.nprocs > 1:
        args = {"n_procs": config.nprocs, "raise_insufficient": False}
        if config.mem_gb:
            args["memory_gb"] = config.mem_gb
        return "MultiProc", {**args, "status_callback": status}
    return "Linear", {"status_callback": status}


def process_session(
    inputs: SessionInputs, config: Config, writer: DerivativesWriter, work_dir: Path
) -> SessionOutcome:
    """Run and write one subject/session; failures are returned, not raised.

    Parameters
    ----------
    inputs : SessionInputs
        The session's inputs.
    config : Config
        The run configuration.
    writer : DerivativesWriter
        The output dataset.
    work_dir : Path
        The work folder.

    Returns
    -------
    SessionOutcome
        Done, skipped (already complete) or failed with the reason.
    """
    if not inputs.usable:
        return SessionOutcome(inputs.key, "failed", "no T1w image in this session")
    t1w = inputs.t1w[0]
    stat = t1w.stat()
    params = {
        "step": "conform",
        "source": str(t1w.relative_to(config.bids_dir)),
        "source_size_mtime": [stat.st_size, stat.st_mtime_ns],  # a changed input is redone
    }
    target = writer.path("t1w_conform", inputs.entities)
    if writer.is_done(target, params):
        LOGGER.info("%s: outputs exist for these settings, skipped", inputs.key)
        return SessionOutcome(inputs.key, "skipped")
    workflow = init_participant_wf(inputs, work_dir)
    plugin, plugin_args = _plugin(config, inputs.key)
    try:
        outputs = _node_results(workflow.run(plugin=plugin, plugin_args=plugin_args))
    except Exception as exc:  # a node failed: nipype wraps the cause, keep it for the summary
        return SessionOutcome(inputs.key, "failed", failure_reason(exc))
    conformed = outputs["conform_t1w"]
    writer.write_image(
        nib.load(conformed.out_file),
        "t1w_conform",
        inputs.entities,
        sources=[t1w],
        params=params,
        metadata={
            "SkullStripped": False,
            "SpatialReference": f"bids:raw:{t1w.relative_to(config.bids_dir).as_posix()}",
            "Conform": conformed.report,
        },
    )
    return SessionOutcome(inputs.key, "done")


def run_participant_level(
    inventory: Sequence[SessionInputs], config: Config, writer: DerivativesWriter
) -> list[SessionOutcome]:
    """Process every subject/session of the inventory; one failure does not stop the others.

    Parameters
    ----------
    inventory : sequence of SessionInputs
        What to process.
    config : Config
        The run configuration.
    writer : DerivativesWriter
        The output dataset.

    Returns
    -------
    list of SessionOutcome
        One per subject/session, in order.
    """
    work_dir = config.work_dir
    configure_nipype(work_dir, config.verbosity)
    outcomes = []
    for inputs in track(inventory, "participant", LOGGER):
        outcome = process_session(inputs, config, writer, work_dir)
        log = LOGGER.error if outcome.status == "failed" else LOGGER.info
        log(
            "%s: %s%s",
            outcome.key,
            outcome.status,
            f" ({outcome.reason})" if outcome.reason else "",
        )
        outcomes.append(outcome)
    return outcomes

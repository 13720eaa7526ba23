"""Run the participant level: one workflow per subject and session, failures kept apart."""

from __future__ import annotations

import contextlib
import errno
import logging
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from bids_app.config import Config
from bids_app.config.build import read_plugin_file
from bids_app.derivatives.writer import DerivativesWriter
from bids_app.errors import NeuroStratError, OutputError
from bids_app.inputs.inventory import SessionInputs
from bids_app.participant.failures import failure_reason
from bids_app.participant.locks import SessionLockedError, session_lock
from bids_app.participant.options import require_hdbet, resolve_options
from bids_app.participant.outputs import write_session_outputs
from bids_app.participant.profile import PROFILE_COLUMNS, StepProfiler
from bids_app.participant.workflow import init_participant_wf
from bids_app.preprocessing.conform import load_image
from bids_app.runtime import (
    configure_nipype,
    frozen_gc,
    raise_if_interrupted,
    start_forked_worker,
    stop_workers,
)
from bids_app.utils.logs import track

LOGGER = logging.getLogger("bids_app.participant")
#: How a step reports a full disk (or quota): the work folder is full.
_NO_SPACE = tuple(os.strerror(code) for code in (errno.ENOSPC, errno.EDQUOT))


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


def _node_results(result_graph) -> dict:
    return {node.name: node.result.outputs for node in result_graph.nodes()}


def _plugin(config: Config, key: str, profiler: StepProfiler | None = None) -> tuple[str, dict]:
    """Return nipype's plugin and its arguments, with a callback that logs each step.

    A ``--use-plugin`` file decides them; else MultiProc with ``--nprocs`` (and ``--mem-gb``),
    or Linear with one process. The callback also times the steps when a ``profiler`` is given
    (``--profile``).
    """

    def status(node, event: str) -> None:
        if event == "end":
            LOGGER.info("%s: step %s finished", key, node.name)
        elif event == "start":
            LOGGER.debug("%s: step %s started", key, node.name)
        if profiler is not None:
            profiler(node, event)

    if config.resources.use_plugin is not None:
        plugin, args = read_plugin_file(config.resources.use_plugin)
        return plugin, {**args, "status_callback": status}
    if config.resources.nprocs > 1:
        args = {"n_procs": config.resources.nprocs, "raise_insufficient": False}
        if config.resources.mem_gb:
            args["memory_gb"] = config.resources.mem_gb
        return "MultiProc", {**args, "status_callback": status}
    return "Linear", {"status_callback": status}


def _sources(inputs: SessionInputs) -> list[Path]:
    """Return the input files a session uses: the first T1w, other contrasts and lesion mask."""
    return [inputs.t1w[0], *inputs.others.values(), *inputs.lesion_masks[:1]]


def process_session(
    inputs: SessionInputs,
    config: Config,
    writer: DerivativesWriter,
    work_dir: Path,
    run_id: str = "",
) -> SessionOutcome:
    """Run and write one subject/session under its lock; failures are returned, not raised.

    Parameters
    ----------
    inputs : SessionInputs
        The session's inputs.
    config : Config
        The run configuration.
    writer : DerivativesWriter
        The output dataset.
    work_dir : Path
        The work folder (it holds the sessions' locks).
    run_id : str
        The run's identifier; names the step times written with ``--profile``.

    Returns
    -------
    SessionOutcome
        Done, skipped (already complete) or failed with the reason; a session that another
        run is processing fails with the holder of its lock.

    Raises
    ------
    OutputError
        When the output folder is full or read-only: the session's outputs are removed and the
        run must stop, since every later session would fail the same way.
    Interrupted
        When the run received an interrupt or termination signal.
    """
    if not inputs.usable:
        return SessionOutcome(inputs.key, "failed", "no T1w image in this session")
    try:
        with session_lock(work_dir, inputs.key):
            writer.remove_stale_parts(inputs.entities)
            return _process_locked(inputs, config, writer, work_dir, run_id)
    except SessionLockedError as busy:
        reason = f"being processed by another run ({busy.holder}); re-run after it finishes"
        return SessionOutcome(inputs.key, "failed", reason)
    except OutputError:
        raise
    except Exception as exc:  # outside the workflow (a file nipype never saw): this session only
        LOGGER.debug("%s: error details", inputs.key, exc_info=True)
        return SessionOutcome(inputs.key, "failed", f"{type(exc).__name__}: {exc}")


def _process_locked(
    inputs: SessionInputs, config: Config, writer: DerivativesWriter, work_dir: Path, run_id: str
) -> SessionOutcome:
    """Run and write one subject/session whose lock this process holds."""
    try:
        options = resolve_options(inputs, load_image(inputs.t1w[0]), config)
    except NeuroStratError as exc:
        return SessionOutcome(inputs.key, "failed", f"{type(exc).__name__}: {exc}")
    sources = _sources(inputs)
    params = {
        "step": "anatomical",
        **options.params(),
        # a changed input (size or modification time) is redone
        "sources": {
            str(path.relative_to(config.input.bids_dir)): [
                path.stat().st_size,
                path.stat().st_mtime_ns,
            ]
            for path in sources
        },
    }
    marker = writer.path("qc_metrics", inputs.entities)
    if writer.is_done(marker, params):
        LOGGER.info("%s: outputs exist for these settings, skipped", inputs.key)
        return SessionOutcome(inputs.key, "skipped")
    LOGGER.info(
        "%s: brain extraction %s (%s)", inputs.key, options.skull_strip, options.skull_strip_reason
    )
    workflow = init_participant_wf(inputs, options, work_dir)
    profiler = StepProfiler(in_process=config.resources.nprocs == 1) if config.profile else None
    plugin, plugin_args = _plugin(config, inputs.key, profiler)
    try:
        with frozen_gc():  # nipype's MultiProc collects garbage at every poll
            outputs = _node_results(workflow.run(plugin=plugin, plugin_args=plugin_args))
    except Exception as exc:  # a node failed: nipype wraps the cause, keep it for the summary
        raise_if_interrupted()  # nipype reports a Ctrl-C inside a step as the step's failure
        reason = failure_reason(exc)
        if any(message in reason for message in _NO_SPACE):  # every later session would fail
            raise OutputError(
                f"{reason} in the work folder {work_dir}: free some space there or give another "
                "one with -w, then re-run the same command to resume"
            ) from exc
        return SessionOutcome(inputs.key, "failed", reason)
    profile = profiler.table() if profiler is not None else None
    writer.start_session(inputs.entities)
    try:
        write_session_outputs(outputs, inputs, options, writer, sources, params, profile)
    except OutputError:
        writer.discard_session(inputs.entities)  # frees the space it took; redone next time
        raise
    if profile is not None:
        path = writer.profile_file(run_id, inputs.entities)
        writer.write_table(profile, path, sources=sources, columns=PROFILE_COLUMNS)
        LOGGER.info("%s: step times in %s", inputs.key, path)
    return SessionOutcome(inputs.key, "done")


def run_participant_level(
    inventory: Sequence[SessionInputs], config: Config, writer: DerivativesWriter, run_id: str = ""
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
    run_id : str
        The run's identifier; names the step times written with ``--profile``.

    Returns
    -------
    list of SessionOutcome
        One per subject/session, in order.
    """
    work_dir = config.work_dir
    configure_nipype(work_dir, config.verbosity)
    if config.participant.skull_strip == "hdbet":  # fail before the first session
        require_hdbet(config.participant)
    outcomes = []
    # closed on any exit, so that a stopped run never waits for the session workers
    sessions = _session_outcomes(inventory, config, writer, work_dir, run_id)
    with contextlib.closing(sessions):
        for outcome in track(sessions, "participant", LOGGER, total=len(inventory)):
            log = LOGGER.error if outcome.status == "failed" else LOGGER.info
            log(
                "%s: %s%s",
                outcome.key,
                outcome.status,
                f" ({outcome.reason})" if outcome.reason else "",
            )
            outcomes.append(outcome)
    order = {inputs.key: index for index, inputs in enumerate(inventory)}
    return sorted(outcomes, key=lambda outcome: order[outcome.key])


def _session_outcomes(
    inventory: Sequence[SessionInputs],
    config: Config,
    writer: DerivativesWriter,
    work_dir: Path,
    run_id: str,
) -> Iterator[SessionOutcome]:
    """Process the sessions, ``nprocs`` at a time (each one's steps then run one by one).

    The steps of one session mostly wait for each other, so running sessions side by side uses
    the cores better than running one session's graph with MultiProc.
    """
    if config.resources.nprocs == 1 or len(inventory) < 2:
        for inputs in inventory:
            yield process_session(inputs, config, writer, work_dir, run_id)
        return
    session_config = config.replace(nprocs=1)
    context = multiprocessing.get_context("fork")
    workers = min(config.resources.nprocs, len(inventory))
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=start_forked_worker
    ) as pool:
        futures = {
            pool.submit(process_session, inputs, session_config, writer, work_dir, run_id): inputs
            for inputs in inventory
        }
        try:
            for future in as_completed(futures):
                try:
                    outcome = future.result()
                except OutputError:
                    raise
                except Exception as exc:  # a crashed worker: this session fails, not the run
                    raise_if_interrupted()  # a worker killed by the user's Ctrl-C
                    outcome = SessionOutcome(
                        futures[future].key, "failed", f"{type(exc).__name__}: {exc}"
                    )
                yield outcome
        except OutputError:  # the running sessions end (they stop at their first write)
            pool.shutdown(cancel_futures=True)
            raise
        except BaseException:  # interrupted, or closed early: the workers stop now
            stop_workers()
            raise

"""``run.py`` / ``neurostrat`` / ``python -m bids_app``: parse, configure, run, exit."""

from __future__ import annotations

import contextlib
import logging
import sys
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from bids_app import __version__, runtime
from bids_app.cli.errors import ExitCode, UnknownLevelError, error_message, exit_code
from bids_app.cli.parser import build_parser
from bids_app.config import ANALYSIS_LEVELS, Config, build_config, read_config_file
from bids_app.config.build import config_text
from bids_app.errors import NeuroStratError, NoInputError, OutputError, UsageError
from bids_app.utils.logs import setup_logging


def parse_config(argv: Sequence[str] | None) -> Config:
    """Turn the command line (and the ``--config`` file) into the run's frozen Config.

    Parameters
    ----------
    argv : sequence of str or None
        Arguments without the program name; None reads ``sys.argv``.

    Returns
    -------
    Config
        The configuration.

    Raises
    ------
    UsageError
        For bad options (exit 64), an unknown analysis level (exit 17), or an output or work
        folder inside the input dataset (exit 64).
    NoInputError
        For a ``--derivatives`` folder that does not exist (exit 66).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    printing = "--print-config" in argv
    parser = build_parser(prog=Path(sys.argv[0]).name, positionals_required=not printing)
    options = vars(parser.parse_args(argv))
    if printing:  # the settings alone: the folders and the level may be left out
        for name, placeholder in (
            ("bids_dir", "."),
            ("output_dir", "."),
            ("analysis_level", "group"),
        ):
            options.setdefault(name, placeholder)
    level = options["analysis_level"]
    if level not in ANALYSIS_LEVELS:
        raise UnknownLevelError(
            f"unknown analysis level {level!r}: use one of {', '.join(ANALYSIS_LEVELS)}"
        )
    config_file = options.pop("config_file", None)
    file_options = read_config_file(Path(config_file)) if config_file else {}
    options["bids_dir"] = Path(options["bids_dir"]).expanduser().resolve()
    options["output_dir"] = Path(options["output_dir"]).expanduser().resolve()
    file_options.setdefault("work_dir", Path.cwd() / "work")
    options["container"] = runtime.detect_container()
    options["templateflow_home"] = runtime.templateflow_home()
    if runtime.models_dir():
        file_options.setdefault("models_dir", Path(runtime.models_dir()))
    if config_file:
        options["config_file"] = Path(config_file).resolve()
    config = build_config(options, file_options)
    if config.resources.dask_scheduler is not None:
        from bids_app.models.parallel import require_dask

        require_dask()
    if not printing:
        _check_locations(config)
    return config


def _check_locations(config: Config) -> None:
    """Refuse folders that would mix outputs into the input, and missing --derivatives.

    An output or work folder inside bids_dir (not under its ``derivatives/``) would be indexed
    as input on the next run.
    """
    bids_dir, output_dir = config.input.bids_dir, config.output_dir
    if output_dir == bids_dir:
        raise UsageError(
            f"output_dir {output_dir} is bids_dir; give another folder "
            "(e.g. bids_dir/derivatives/neurostrat)"
        )
    if output_dir.is_relative_to(bids_dir) and not output_dir.is_relative_to(
        bids_dir / "derivatives"
    ):
        raise UsageError(
            f"output_dir {output_dir} is inside the input dataset {bids_dir} (its files would be "
            f"read as inputs); put it outside, or under {bids_dir / 'derivatives'}"
        )
    work_dir = config.work_dir.expanduser().resolve()
    if work_dir.is_relative_to(bids_dir) and not work_dir.is_relative_to(bids_dir / "derivatives"):
        raise UsageError(
            f"work folder {work_dir} is inside the input dataset {bids_dir} (its files would be "
            "read as inputs); give one outside it with -w DIR"
        )
    for folder in config.input.derivatives:
        if not folder.is_dir():
            raise NoInputError(
                f"--derivatives {folder} does not exist or is not a folder; give an existing "
                "derivatives dataset"
            )


def _check_writable(folder: Path, what: str, fix: str, keep: bool = True) -> None:
    """Check that ``folder`` can be created and written (exit 73 naming ``fix`` otherwise).

    With ``keep=False`` the folders the check created are removed again, so that a run that
    stops before using the folder leaves nothing behind.
    """
    created = []
    for path in (folder, *folder.parents):
        if path.exists():
            break
        created.append(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{uuid.uuid4().hex[:8]}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise OutputError(
            f"cannot create or write {what} {folder}: {exc.strerror or exc}; {fix}"
        ) from exc
    finally:
        for path in created if not keep else ():
            with contextlib.suppress(OSError):
                path.rmdir()


def run(config: Config, run_id: str) -> int:
    """Run one analysis level; the imports are here so ``--version`` and errors stay fast.

    Parameters
    ----------
    config : Config
        The run configuration.
    run_id : str
        Identifier of this run (names the log files).

    Returns
    -------
    int
        The exit code.
    """
    from bids_app.derivatives.writer import DerivativesWriter
    from bids_app.inputs.inventory import (
        build_inventory,
        choice_notes,
        contrast_warnings,
        inventory_table,
    )
    from bids_app.inputs.layout import check_dataset_root, load_layout, validate_dataset
    from bids_app.inputs.participants import (
        participants_warnings,
        read_participants,
        require_participants,
    )

    # every check comes first: a run refused up front leaves nothing behind
    check_dataset_root(config.input.bids_dir)
    if config.scheduler.status:  # reads the output folder, writes nothing
        return _print_status(config)
    if config.resources.device.startswith("cuda"):  # no GPU: stop before anything is written
        from bids_app.deep.devices import resolve_device

        resolve_device(config.resources.device)
    _check_writable(
        config.work_dir,
        "work folder",
        "give a writable one with -w DIR (in a container, mount one and pass its path, so that "
        "a second run resumes)",
        keep=False,
    )
    _check_writable(
        config.output_dir,
        "output folder",
        "choose a writable folder (in a container, run as its owner: --user $(id -u):$(id -g))",
        keep=False,
    )
    if not config.input.skip_bids_validation:
        validate_dataset(config.input.bids_dir)
    layout = load_layout(config.input.bids_dir)
    inventory = build_inventory(
        layout,
        config.input.participant_label,
        config.input.session_label,
        config.deep.dl_contrasts,
    )
    participants = read_participants(config.input.bids_dir)
    if config.analysis_level == "group":
        columns = [config.group.group_column, *filter(None, [config.group.target])]
        require_participants(config.input.bids_dir, participants, columns)
    writer = DerivativesWriter(
        output_dir=config.output_dir,
        bids_dir=config.input.bids_dir,
        settings_hash=config.processing_hash(),
        force=config.force,
        container=config.container,
    )
    writer.initialise()
    log_file = writer.log_file(run_id, "log")
    logger = setup_logging(config.verbosity, log_file)
    logger.info("NeuroStrat %s, %s level, run %s", __version__, config.analysis_level, run_id)
    logger.debug("configuration: %s", config.to_dict())
    logger.info(
        "BIDS validation %s",
        "skipped (--skip-bids-validation)" if config.input.skip_bids_validation else "passed",
    )
    table = inventory_table(inventory)
    writer.write_table(table, writer.log_file(run_id, "inventory"))
    logger.info("inventory (%d subject/session):\n%s", len(table), table.to_string(index=False))
    for note in choice_notes(inventory):
        logger.info("%s", note)
    for warning in contrast_warnings(
        inventory, config.deep.dl_contrasts, config.participant.map_ranges
    ):
        logger.warning("%s", warning)
    subjects = sorted(layout.get_subjects())
    for warning in participants_warnings(config.input.bids_dir, participants, subjects):
        logger.warning("%s", warning)
    skipped = [item for item in inventory if not item.anatomical]
    for item in skipped:
        logger.info("%s: not applicable (no anatomical images), skipped", item.key)
    applicable = [item for item in inventory if item.anatomical]

    if config.scheduler.submit == "slurm":
        from bids_app.cli.status import incomplete_subjects
        from bids_app.cli.submit import submit_slurm

        labels = incomplete_subjects(applicable, writer)
        for line in submit_slurm(config, labels, writer, run_id):
            logger.info("%s", line)
            print(line)
        return int(ExitCode.OK)

    if config.analysis_level == "participant":
        from bids_app.participant.run import SessionOutcome, run_participant_level

        invalid = [item for item in applicable if item.problem]
        ready = [item for item in applicable if not item.problem]
        outcomes = list(run_participant_level(ready, config, writer, run_id)) if ready else []
        outcomes += [SessionOutcome(item.key, "failed", str(item.problem)) for item in invalid]
        outcomes += [
            SessionOutcome(item.key, "not applicable", "no anatomical images") for item in skipped
        ]
        order = {item.key: index for index, item in enumerate(inventory)}
        outcomes.sort(key=lambda outcome: order.get(outcome.key, len(order)))
        if config.deep.models:
            import pandas as pd

            from bids_app.participant.inference import run_inference

            ages = pd.to_numeric(participants.get("age", pd.Series(dtype=float)), errors="coerce")
            outcomes += run_inference(ready, ages, config, writer)
        from bids_app.cli.status import summary_lines

        failed = [outcome for outcome in outcomes if outcome.status == "failed"]
        statuses = ("done", "skipped", "failed", "not applicable")
        counts = {s: sum(o.status == s for o in outcomes) for s in statuses}
        lines = summary_lines(counts, [(o.key, o.reason) for o in failed])
        writer.write_text(writer.log_file(run_id, "summary"), "\n".join(lines) + "\n")
        (logger.error if failed else logger.info)("\n".join(lines))
        logger.info("log: %s", log_file)
        return int(ExitCode.SUBJECTS_FAILED) if failed else int(ExitCode.OK)

    from bids_app.group.workflow import run_group_level
    from bids_app.models.parallel import dask_backend

    with dask_backend(config.resources.dask_scheduler):
        report = run_group_level(applicable, participants, config, writer)
    print(f"Group report: {report}")
    return int(ExitCode.OK)


def _print_status(config: Config) -> int:
    """Print each subject's state in the output folder (``--status``); exit 0."""
    from bids_app.cli.status import status_text, subject_states
    from bids_app.derivatives.writer import DerivativesWriter
    from bids_app.inputs.inventory import build_inventory
    from bids_app.inputs.layout import load_layout

    layout = load_layout(config.input.bids_dir)
    inventory = build_inventory(layout, config.input.participant_label, config.input.session_label)
    writer = DerivativesWriter(
        output_dir=config.output_dir,
        bids_dir=config.input.bids_dir,
        settings_hash=config.processing_hash(),
    )
    print(status_text(subject_states(inventory, writer)))
    return int(ExitCode.OK)


def main(argv: Sequence[str] | None = None) -> int:
    """Run NeuroStrat from the command line.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; ``sys.argv[1:]`` when None.

    Returns
    -------
    int
        The exit code (see :class:`bids_app.cli.errors.ExitCode`).
    """
    run_id = f"{datetime.now():%Y%m%d-%H%M%S}_{uuid.uuid4().hex[:8]}"
    try:
        with runtime.stop_on_signals():  # Ctrl-C and kill stop the run (exit 130 and 143)
            config = parse_config(argv)
            if config.print_config:
                print(config_text(config), end="")
                return int(ExitCode.OK)
            runtime.configure_process(config.resources.omp_nthreads, seed=config.seed)
            setup_logging(config.verbosity)
            return run(config, run_id)
    except NeuroStratError as exc:
        print(error_message(exc), file=sys.stderr)
        logging.getLogger("bids_app").debug("error details", exc_info=True)
        return int(exit_code(exc))
    except KeyboardInterrupt as exc:
        return _interrupted(exc)


def _interrupted(exc: KeyboardInterrupt) -> int:
    """Report an interrupted run on one line; return 128 + the signal (130 for Ctrl-C)."""
    logging.getLogger("bids_app").debug("interrupted at", exc_info=True)
    name = f" ({exc.signal_name})" if isinstance(exc, runtime.Interrupted) else ""
    print(f"neurostrat: interrupted{name}; re-run the same command to resume", file=sys.stderr)
    return exc.exit_code if isinstance(exc, runtime.Interrupted) else 130

"""``--submit slurm``: one SLURM array task per subject, then the group job that waits for it.

What fMRIPrep, FastSurfer and BABS do on clusters: the participant level as a job array whose
task ``i`` runs subject ``i`` (``--participant-label``), throttled to ``K`` tasks at a time
(``--array=1-N%K``), and the group level as one job that starts when the array has ended
(``--dependency=afterany:<array>``). Only the subjects whose outputs are incomplete are
submitted, so the same command submits again what failed or never ran. The scripts and the
settings they run with stay in ``output_dir/logs/slurm/``, to read and to re-submit with
``sbatch`` as they are; each job writes its output there too.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from bids_app.config import Config
from bids_app.config.build import config_text
from bids_app.derivatives.writer import DerivativesWriter
from bids_app.errors import SchedulerError


def app_command(config: Config, level: str, settings: Path) -> list[str]:
    """Return the command a job runs: this Python's ``-m bids_app``, or the container's app.

    Parameters
    ----------
    config : Config
        The run configuration (its folders, and ``--container``).
    level : {"participant", "group"}
        The analysis level of the job.
    settings : Path
        The settings file the job reads with ``--config``.

    Returns
    -------
    list of str
        The command; in a Singularity/Apptainer image, the input folder is bound read-only and
        the output and work folders read-write, each at its own path.
    """
    folders = [str(config.input.bids_dir), str(config.output_dir), level]
    options = ["--config", str(settings)]
    image = config.scheduler.container_image
    if image is None:
        return [sys.executable, "-m", "bids_app", *folders, *options]
    bids, out, work = config.input.bids_dir, config.output_dir, config.work_dir
    binds = [f"{bids}:{bids}:ro", f"{out}:{out}", f"{work}:{work}"]
    binds += [f"{path}:{path}:ro" for path in config.input.derivatives]
    return [
        "singularity",
        "run",
        "--cleanenv",
        *(arg for bind in binds for arg in ("--bind", bind)),
        str(image),
        *folders,
        *options,
    ]


def _header(config: Config, name: str, output: Path) -> list[str]:
    """Return the ``#SBATCH`` lines of every job: name, output, cores, memory, the user's."""
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={name}",
        f"#SBATCH --output={output}",
        f"#SBATCH --cpus-per-task={config.resources.nprocs}",
    ]
    if config.resources.mem_gb:
        lines.append(f"#SBATCH --mem={int(config.resources.mem_gb * 1024)}M")
    if config.scheduler.sbatch_args:
        lines.append(f"#SBATCH {config.scheduler.sbatch_args}")
    return lines


def array_script(config: Config, labels: Sequence[str], settings: Path, output: Path) -> str:
    """Return the job-array script: task ``i`` runs the participant level of ``labels[i-1]``.

    Parameters
    ----------
    config : Config
        The run configuration (``--array-throttle``, ``--sbatch-args``, ``--container``,
        ``--nprocs``, ``--mem-gb``).
    labels : sequence of str
        The subjects, without ``sub-``.
    settings : Path
        The settings file the tasks read.
    output : Path
        The tasks' output files (a SLURM pattern with ``%A`` and ``%a``).

    Returns
    -------
    str
        A bash script for ``sbatch``.
    """
    throttle = config.scheduler.array_throttle
    array = f"1-{len(labels)}" + (f"%{throttle}" if throttle else "")
    command = shlex.join(app_command(config, "participant", settings))
    lines = [
        *_header(config, "neurostrat-participant", output),
        f"#SBATCH --array={array}",
        "set -euo pipefail",
        f"labels=({' '.join(labels)})",
        'label="${labels[$((SLURM_ARRAY_TASK_ID - 1))]}"',
        'echo "NeuroStrat: task ${SLURM_ARRAY_TASK_ID} of job ${SLURM_ARRAY_JOB_ID}: sub-${label}"',
        f'exec {command} --participant-label "${{label}}"',
    ]
    return "\n".join(lines) + "\n"


def group_script(config: Config, settings: Path, output: Path) -> str:
    """Return the group job's script.

    Parameters
    ----------
    config : Config
        The run configuration.
    settings : Path
        The settings file the job reads.
    output : Path
        The job's output file (a SLURM pattern with ``%j``).

    Returns
    -------
    str
        A bash script for ``sbatch``.
    """
    command = shlex.join(app_command(config, "group", settings))
    lines = [*_header(config, "neurostrat-group", output), "set -euo pipefail", f"exec {command}"]
    return "\n".join(lines) + "\n"


def sbatch_command(script: Path, after: str | None = None) -> list[str]:
    """Return the ``sbatch`` command that submits a script, after a job has ended if given.

    Parameters
    ----------
    script : Path
        The job script.
    after : str or None
        A job id (an array's: every task) that must end first, whatever its outcome.

    Returns
    -------
    list of str
        ``sbatch --parsable [--dependency=afterany:<id>] <script>``.

    Examples
    --------
    >>> sbatch_command(Path("g.sh"), after="12")
    ['sbatch', '--parsable', '--dependency=afterany:12', 'g.sh']
    """
    dependency = [f"--dependency=afterany:{after}"] if after else []
    return ["sbatch", "--parsable", *dependency, str(script)]


def sbatch(command: Sequence[str]) -> str:
    """Run ``sbatch --parsable`` and return the job id it prints.

    Parameters
    ----------
    command : sequence of str
        From :func:`sbatch_command`.

    Returns
    -------
    str
        The job id.

    Raises
    ------
    SchedulerError
        If ``sbatch`` is not installed or refuses the job.
    """
    if shutil.which(command[0]) is None:
        raise SchedulerError(
            f"{command[0]} not found: --submit slurm needs SLURM's client commands; run it on "
            "the cluster's login node, or without --submit to run here"
        )
    done = subprocess.run(list(command), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip().splitlines()
        raise SchedulerError(
            f"{shlex.join(command)} failed: {message[-1] if message else done.returncode}; "
            "check the script and --sbatch-args"
        )
    return done.stdout.strip().split(";")[0]


def submit_slurm(
    config: Config, labels: Sequence[str], writer: DerivativesWriter, run_id: str
) -> list[str]:
    """Write the scripts into ``logs/slurm/``, submit them, and return what to tell the user.

    At the participant level the array holds ``labels`` (none: no array) and, with
    ``--submit-group``, the group job waits for it; at the group level the group job alone is
    submitted.

    Parameters
    ----------
    config : Config
        The run configuration.
    labels : sequence of str
        The subjects to submit (those whose outputs are incomplete).
    writer : DerivativesWriter
        The output folder.
    run_id : str
        Names the scripts and the settings file.

    Returns
    -------
    list of str
        One line per job submitted (its id and script), or why nothing was.

    Raises
    ------
    SchedulerError
        If ``sbatch`` is missing or refuses a job.
    """
    settings = writer.write_text(
        writer.slurm_file("settings", run_id), config_text(config, omit_unset=True)
    )
    lines, array_id = [], None
    if config.analysis_level == "participant":
        if labels:
            script = writer.write_text(
                writer.slurm_file("participant_script", run_id),
                array_script(config, labels, settings, writer.slurm_file("participant_output")),
            )
            array_id = sbatch(sbatch_command(script))
            lines.append(
                f"participant array job {array_id}: {len(labels)} subject(s) "
                f"({' '.join(labels)}), script {script}"
            )
        else:
            lines.append("participant level: every subject's outputs are complete, none submitted")
    if config.analysis_level == "group" or config.scheduler.submit_group:
        script = writer.write_text(
            writer.slurm_file("group_script", run_id),
            group_script(config, settings, writer.slurm_file("group_output")),
        )
        group_id = sbatch(sbatch_command(script, after=array_id))
        after = f", after job {array_id}" if array_id else ""
        lines.append(f"group job {group_id}{after}: script {script}")
    return lines

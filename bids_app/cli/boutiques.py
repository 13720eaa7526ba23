"""``python -m bids_app.cli.boutiques``: the Boutiques descriptor of the command line.

Tools that drive BIDS Apps through `Boutiques <https://boutiques.github.io>`_ (``bosh exec
launch``, BABS) read ``boutiques/neurostrat.json``. It is generated from the option
declarations, as the argument parser is (:func:`bids_app.cli.parser.cli_declarations` and
:func:`bids_app.cli.parser.help_text`), so it never drifts from the command line: ``make
boutiques`` rewrites it and the tests compare the committed file with :func:`descriptor`::

    python -m bids_app.cli.boutiques [--output FILE]

Each option of the command line is one input, whose ``value-key`` is its name in capitals:

- the positionals are required; ``bids_dir`` is a File (Boutiques mounts it into the
  container), ``output_dir`` a String (it may not exist yet), ``analysis_level`` a String with
  its choices;
- ``store_true`` and ``store_false`` options are Flags with their canonical flag; a
  ``store_false`` input is named after its flag (``no_dl_validation``), so that ``true`` means
  what the flag does;
- the ``count`` option (``verbosity``: ``-v`` up, ``-q`` down) is a String without flag whose
  choices are the clustered short flags (``-qq``, ``-q``, ``-v``, ``-vv``), inserted as they are:
  a Boutiques Number cannot be written as a repeated flag, and two Flags could not say ``-vv``;
- integers and floats are Numbers with the declared minimum, tuples lists, choices
  ``value-choices``; paths are Files, except the folders the run creates (Strings);
- no input has a ``default-value``: Boutiques writes a default-value into every command, where it
  would override the ``--config`` file (the command line wins) and the defaults the CLI derives
  (``--omp-nthreads`` follows ``--nprocs``). The defaults are in the descriptions, as in
  ``--help``.

The groups are the sections of the help; the positionals stay outside them, as in the parser.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bids_app import __version__
from bids_app.cli.parser import build_parser, cli_declarations, help_text
from bids_app.config.options import SECTION_TITLES, Declaration
from bids_app.utils.atomic import write_text_atomic

#: The container image of a version, as ``make container`` tags it.
IMAGE = "neurostrat/neurostrat"
#: Path options naming folders the run creates: Strings, since a Boutiques File must exist.
CREATED_FOLDERS = frozenset({"output_dir", "work_dir"})
#: Repeats of a ``count`` flag offered each way (the logging tells -2 to 2 apart).
COUNT_STEPS = 2
#: Suggested resources of one participant with every feature family on 2 cores (see
#: docs/performance.md: preprocessing and features take up to 5 minutes each at 1 mm).
SUGGESTED_RESOURCES = {"cpu-cores": 2, "ram": 8, "walltime-estimate": 3600}


def input_id(declaration: Declaration) -> str:
    """Return the Boutiques input id of an option on the command line.

    Parameters
    ----------
    declaration : Declaration
        The option.

    Returns
    -------
    str
        The option's name, or for a ``store_false`` option its flag's (``no_dl_validation``).

    Examples
    --------
    >>> from bids_app.cli.parser import cli_declarations
    >>> [input_id(d) for d in cli_declarations() if d.option.action == "store_false"]
    ['no_dl_validation']
    """
    if declaration.option.action == "store_false":
        return declaration.option.flags[0].lstrip("-").replace("-", "_")
    return declaration.name


def _value_key(declaration: Declaration) -> str:
    return f"[{input_id(declaration).upper()}]"


def _short_flag(flags: Sequence[str]) -> str:
    """Return the first one-letter flag, which argparse lets the user repeat as ``-vv``."""
    for flag in flags:
        if len(flag) == 2:
            return flag
    raise ValueError(f"a count option needs a one-letter flag for Boutiques, not {flags}")


def _count_choices(declaration: Declaration) -> list[str]:
    """Return the clustered short flags of a ``count`` option, from most down to most up."""
    up = _short_flag(declaration.option.flags)
    down = _short_flag(declaration.option.down_flags)
    downs = [down + down[1] * (n - 1) for n in range(COUNT_STEPS, 0, -1)]
    return [*downs, *(up + up[1] * (n - 1) for n in range(1, COUNT_STEPS + 1))]


def _value_fields(declaration: Declaration) -> dict[str, Any]:
    """Return the type of an input that takes a value, with its constraints."""
    spec = declaration.option
    if declaration.kind in (int, float):
        fields: dict[str, Any] = {"type": "Number", "integer": declaration.kind is int}
        if spec.minimum is not None:
            fields["minimum"] = spec.minimum
            fields["exclusive-minimum"] = spec.strict
    elif declaration.kind is Path and declaration.name not in CREATED_FOLDERS:
        fields = {"type": "File"}
    else:
        fields = {"type": "String"}
    if spec.choices:
        fields["value-choices"] = list(spec.choices)
    if declaration.multiple:
        fields.update({"list": True, "min-list-entries": 1})
    return fields


def _type_fields(declaration: Declaration) -> dict[str, Any]:
    """Return the type, flag and constraints of the input of an option."""
    spec = declaration.option
    if spec.action == "count":
        return {"type": "String", "value-choices": _count_choices(declaration)}
    if spec.action is not None:
        return {"type": "Flag", "command-line-flag": spec.flags[0]}
    fields = _value_fields(declaration)
    if spec.flags:
        fields["command-line-flag"] = spec.flags[0]
    return fields


def boutiques_input(declaration: Declaration) -> dict[str, Any]:
    """Return the Boutiques input of an option on the command line.

    Parameters
    ----------
    declaration : Declaration
        The option (a positional or one with flags).

    Returns
    -------
    dict
        The input: id, name, description (the ``--help`` text), value-key, optional and its
        type fields.

    Examples
    --------
    >>> from bids_app.cli.parser import cli_declarations
    >>> folds = next(d for d in cli_declarations() if d.name == "cv_folds")
    >>> item = boutiques_input(folds)
    >>> item["type"], item["command-line-flag"], item["minimum"], item["value-key"]
    ('Number', '--cv-folds', 2, '[CV_FOLDS]')
    """
    return {
        "id": input_id(declaration),
        "name": input_id(declaration).replace("_", " ").capitalize(),
        # help_text escapes % for argparse, which prints it unescaped
        "description": help_text(declaration).replace("%%", "%"),
        "value-key": _value_key(declaration),
        "optional": declaration.option.position is None,
        **_type_fields(declaration),
    }


def _groups(declarations: Sequence[Declaration]) -> list[dict[str, Any]]:
    """Return one group per section of the help, with its flagged options."""
    groups = []
    for section, title in SECTION_TITLES.items():
        members = [
            input_id(d) for d in declarations if d.section == section and d.option.position is None
        ]
        if members:
            groups.append({"id": f"{section}_options", "name": title, "members": members})
    return groups


def descriptor() -> dict[str, Any]:
    """Return the Boutiques 0.5 descriptor of the ``neurostrat`` command line.

    Returns
    -------
    dict
        The descriptor: one input per option of the command line, the derivatives folder as
        output, the groups of the help, the container image and the suggested resources.

    Examples
    --------
    >>> described = descriptor()
    >>> described["command-line"].split()[:5]
    ['neurostrat', '[BIDS_DIR]', '[OUTPUT_DIR]', '[ANALYSIS_LEVEL]', '[PARTICIPANT_LABEL]']
    """
    declarations = cli_declarations()
    return {
        "name": "neurostrat",
        "tool-version": __version__,
        "description": build_parser().description,
        "command-line": " ".join(["neurostrat", *map(_value_key, declarations)]),
        "schema-version": "0.5",
        "container-image": {"type": "docker", "image": f"{IMAGE}:{__version__}"},
        "inputs": [boutiques_input(d) for d in declarations],
        "output-files": [
            {
                "id": "derivatives_dataset",
                "name": "Derivatives dataset",
                "description": "the BIDS-Derivatives dataset: participant outputs, group "
                "results, reports and logs",
                "path-template": "[OUTPUT_DIR]",
                "optional": False,
            }
        ],
        "groups": _groups(declarations),
        "suggested-resources": SUGGESTED_RESOURCES,
        "tags": {"domain": ["neuroinformatics", "MRI"]},
    }


def render(described: dict[str, Any]) -> str:
    """Return a descriptor as the committed file holds it.

    Parameters
    ----------
    described : dict
        The descriptor.

    Returns
    -------
    str
        JSON with sorted keys, indented by 2, ending with a newline.
    """
    return json.dumps(described, indent=2, sort_keys=True) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write the descriptor to stdout or, atomically, to a file.

    Parameters
    ----------
    argv : sequence of str or None
        Arguments without the program name; None reads ``sys.argv``.

    Returns
    -------
    int
        0.
    """
    parser = argparse.ArgumentParser(
        prog="python -m bids_app.cli.boutiques",
        description="Write the Boutiques descriptor of the neurostrat command line.",
    )
    parser.add_argument("--output", type=Path, metavar="FILE", help="file to write (stdout)")
    options = parser.parse_args(argv)
    text = render(descriptor())
    if options.output is None:
        sys.stdout.write(text)
    else:
        write_text_atomic(options.output, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

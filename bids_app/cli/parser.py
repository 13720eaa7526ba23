"""The argument parser of ``run.py`` (BIDS-Apps convention), derived from the declarations.

Every argument comes from an option declared in :mod:`bids_app.config.options`: flags,
choices, help and the default shown in the help are the declaration's.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NoReturn

from bids_app import __version__
from bids_app.config.options import SECTION_TITLES, Declaration, declarations
from bids_app.errors import UsageError


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises :class:`UsageError` (exit 64) instead of exiting with 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


class _Choices(tuple):
    """Choices that also accept the former spellings; the help and errors list only the names."""

    aliases: Mapping[str, str]

    def __new__(cls, names: Iterable[str], aliases: Mapping[str, str]) -> _Choices:
        choices = super().__new__(cls, names)
        choices.aliases = aliases
        return choices

    def __contains__(self, value: object) -> bool:
        return tuple.__contains__(self, value) or value in self.aliases


class _Count(argparse.Action):
    """Count a flag's occurrences: the option's flags count up, its ``down_flags`` down."""

    def __init__(self, option_strings: Sequence[str], dest: str, down: Sequence[str], **kw):
        super().__init__(option_strings, dest, nargs=0, **kw)
        self.down = tuple(down)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        step = -1 if option_string in self.down else 1
        setattr(namespace, self.dest, getattr(namespace, self.dest, 0) + step)


def _shown(value: Any) -> str:
    """Return a default value as the help shows it."""
    if isinstance(value, tuple):
        return " ".join(map(str, value)) if value else "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def help_text(declaration: Declaration) -> str:
    """Return an option's help with its choices and default, as the declaration gives them.

    Parameters
    ----------
    declaration : Declaration
        The option.

    Returns
    -------
    str
        The help, ``%`` escaped for argparse.

    Examples
    --------
    >>> from bids_app.config.options import declarations
    >>> help_text(next(d for d in declarations() if d.name == "cv_folds"))
    'outer and inner folds (Turrisi et al. 2024: 3) (default: 3)'
    """
    spec = declaration.option
    text = spec.help
    if spec.choices and declaration.multiple:
        text += f"; one or more of {', '.join(spec.choices)}"
    default = declaration.default
    if spec.default_text is not None:
        text += f" (default: {spec.default_text})"
    elif spec.action is None and default is not None and default is not dataclasses.MISSING:
        if declaration.multiple and spec.choices and tuple(default) == tuple(spec.choices):
            text += " (default: all)"
        else:
            text += f" (default: {_shown(default)})"
    return text.replace("%", "%%")


def _arguments(
    declaration: Declaration, positionals_required: bool = True
) -> tuple[list[str], dict[str, Any]]:
    """Return the flags and keyword arguments of ``add_argument`` for an option."""
    spec = declaration.option
    kwargs: dict[str, Any] = {"help": help_text(declaration)}
    if spec.position is not None:
        if not positionals_required:
            kwargs["nargs"] = "?"
        if spec.choices:  # checked after parsing: an unknown level has its own exit code
            kwargs["metavar"] = "{" + ",".join(spec.choices) + "}"
        return [declaration.name], kwargs
    kwargs["dest"] = declaration.name
    if spec.action == "count":
        return [*spec.flags, *spec.down_flags], {
            **kwargs,
            "action": _Count,
            "down": spec.down_flags,
        }
    if spec.action is not None:
        return list(spec.flags), {**kwargs, "action": spec.action}
    if declaration.kind in (int, float):
        kwargs["type"] = declaration.kind
    if declaration.multiple:
        kwargs["nargs"] = "+"
    if spec.choices:
        kwargs["choices"] = _Choices(spec.choices, spec.aliases)
    if spec.metavar:
        kwargs["metavar"] = spec.metavar
    return list(spec.flags), kwargs


def cli_declarations() -> tuple[Declaration, ...]:
    """Return the options on the command line: the positionals in order, then the flagged ones.

    Returns
    -------
    tuple of Declaration
        The positional arguments by position, then the options with flags in the order of the
        help; the options without flags or position (set by the CLI itself) are left out.

    Examples
    --------
    >>> [d.name for d in cli_declarations()][:4]
    ['bids_dir', 'output_dir', 'analysis_level', 'participant_label']
    """
    on_cli = [d for d in declarations() if d.option.flags or d.option.position is not None]
    positional = sorted(
        (d for d in on_cli if d.option.position is not None), key=lambda d: d.option.position
    )
    return (*positional, *(d for d in on_cli if d.option.position is None))


def build_parser(
    prog: str = "neurostrat", positionals_required: bool = True
) -> argparse.ArgumentParser:
    """Build the command-line parser from the declared options.

    Options the user does not type are absent from the parsed namespace
    (``argument_default=SUPPRESS``), so that a configuration file can fill them and the command
    line still wins.

    Parameters
    ----------
    prog : str
        Program name shown in help and errors.
    positionals_required : bool
        False lets bids_dir, output_dir and the level be left out (``--print-config``).

    Returns
    -------
    argparse.ArgumentParser
        The parser.

    Examples
    --------
    >>> args = ["in", "out", "participant", "--participant_label", "sub-01", "-vv", "-q"]
    >>> ns = build_parser().parse_args(args)
    >>> ns.participant_label, ns.verbosity
    (['sub-01'], 1)
    >>> "nprocs" in vars(ns)
    False
    """
    parser = _Parser(
        prog=prog,
        description="NeuroStrat: patient stratification from structural brain MRI (a BIDS App).",
        argument_default=argparse.SUPPRESS,
    )
    groups = {
        section: parser.add_argument_group(title) for section, title in SECTION_TITLES.items()
    }
    groups["run"].add_argument("--version", action="version", version=__version__)
    for declaration in cli_declarations():
        args, kwargs = _arguments(declaration, positionals_required)
        positional = declaration.option.position is not None
        (parser if positional else groups[declaration.section]).add_argument(*args, **kwargs)
    return parser

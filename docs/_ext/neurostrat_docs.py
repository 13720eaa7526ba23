"""Sphinx directives that render NeuroStrat's registries and benchmark tables at build time.

``neurostrat-outputs`` lists every per-subject output of
:data:`bids_app.derivatives.naming.OUTPUTS` (and the group outputs, when the naming module has a
group registry); ``neurostrat-tsv`` renders a table of ``benchmarks/results``,
``neurostrat-other-results`` every table of that folder that a page does not show otherwise, and
``neurostrat-machine`` describes the machine a benchmark ran on. The pages therefore cannot drift
from the code or from the measurements.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

#: Example entities of the rendered per-subject paths.
EXAMPLE_ENTITIES = {"sub": "01", "ses": "1"}

#: Key of the set of TSV files a page has rendered, in ``env.temp_data``.
RENDERED_KEY = "neurostrat_rendered_tsv"

#: Names a group registry may have in :mod:`bids_app.derivatives.naming`.
GROUP_REGISTRY_NAMES = ("GROUP_OUTPUTS", "GROUP_FILES")


def _cell(value: Any) -> str:
    """Return one table cell as inline reStructuredText on one line."""
    text = " ".join(str(value).split())
    return text if text else " "


def _list_table(
    header: Sequence[str], rows: Iterable[Sequence[Any]], widths: str = "auto"
) -> list[str]:
    """Return the reStructuredText lines of a ``list-table``."""
    lines = [".. list-table::", "   :header-rows: 1", f"   :widths: {widths}", ""]
    for row in [header, *rows]:
        cells = [_cell(value) for value in row]
        lines.append(f"   * - {cells[0]}")
        lines.extend(f"     - {cell}" for cell in cells[1:])
    return lines


def _literal(text: str) -> str:
    """Return ``text`` as an inline literal."""
    return f"``{text}``"


class _TableDirective(SphinxDirective):
    """A directive whose body is a generated reStructuredText table."""

    def render(self, lines: list[str]) -> list[nodes.Node]:
        """Parse generated reStructuredText lines into nodes."""
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source=self.get_source_info()[0]), 0, container)
        return container.children


class OutputsDirective(_TableDirective):
    """Render the registry of outputs: ``.. neurostrat-outputs::`` with ``:level:``."""

    option_spec = {"level": lambda value: directives.choice(value, ("participant", "group"))}

    def run(self) -> list[nodes.Node]:
        """Return the table of the participant or the group outputs."""
        from bids_app.derivatives import naming

        if self.options.get("level", "participant") == "participant":
            rows = [
                (
                    _literal(name),
                    _literal(naming.output_path(name, EXAMPLE_ENTITIES).as_posix()),
                    suffix,
                )
                for name, (_, suffix, _) in naming.OUTPUTS.items()
            ]
            return self.render(_list_table(("name", "path (subject 01, session 1)", "suffix"), rows))
        registry = next(
            (getattr(naming, name) for name in GROUP_REGISTRY_NAMES if hasattr(naming, name)),
            None,
        )
        if registry is None:
            paragraph = nodes.paragraph(
                text="The group outputs are listed below by hand until the naming module has a "
                "group registry."
            )
            return [paragraph]
        return self.render(_list_table(("name", "file"), _group_rows(naming, registry)))


def _group_rows(naming: Any, registry: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Return (name, description) rows of a group registry, whatever its value type."""
    rows = []
    for name, spec in registry.items():
        if isinstance(spec, (str, Path)):
            text = str(spec)
        elif (
            isinstance(spec, tuple)
            and len(spec) == 2
            and all(isinstance(part, str) for part in spec)
            and hasattr(naming, "group_path")
        ):
            text = naming.group_path(*spec).as_posix()
        else:
            text = str(spec)
        rows.append((_literal(name), _literal(text)))
    return rows


class TsvDirective(_TableDirective):
    """Render a TSV file of the repository: ``.. neurostrat-tsv:: benchmarks/results/x.tsv``.

    Options: ``:columns:`` (comma-separated, default all), ``:digits:`` (rounding of floats).
    """

    required_arguments = 1
    option_spec = {"columns": directives.unchanged, "digits": directives.nonnegative_int}

    def run(self) -> list[nodes.Node]:
        """Return the table of the file."""
        path = Path(self.env.srcdir).parent / self.arguments[0]
        self.env.temp_data.setdefault(RENDERED_KEY, set()).add(path.resolve())
        columns = (
            [name.strip() for name in self.options["columns"].split(",")]
            if "columns" in self.options
            else None
        )
        return self.render(_tsv_table(self, path, columns, self.options.get("digits", 3)))


class OtherResultsDirective(_TableDirective):
    """Render every TSV of a folder that the page has not rendered yet, each under a title.

    ``.. neurostrat-other-results:: benchmarks/results``: new benchmark tables appear on the page
    without editing it.
    """

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        """Return a titled table per remaining TSV file."""
        folder = Path(self.env.srcdir).parent / self.arguments[0]
        self.env.note_dependency(str(folder))
        done = self.env.temp_data.get(RENDERED_KEY, set())
        lines: list[str] = []
        for path in sorted(folder.glob("*.tsv")):
            if path.resolve() in done:
                continue
            title = f"``{path.name}``"
            lines += ["", ".. rubric:: " + title, ""]
            lines += _tsv_table(self, path, None, 3)
        if not lines:
            return [nodes.paragraph(text="None: every result table is shown above.")]
        return self.render(lines)


def _tsv_table(
    directive: SphinxDirective, path: Path, columns: list[str] | None, digits: int
) -> list[str]:
    """Return a ``list-table`` of a TSV file's columns (all by default)."""
    directive.env.note_dependency(str(path))
    with path.open(newline="") as handle:
        records = list(csv.DictReader(handle, delimiter="\t"))
    if columns is None:
        columns = list(records[0]) if records else []
    rows = [[_number(record.get(column, ""), digits) for column in columns] for record in records]
    return _list_table(columns, rows)


def _number(text: str | None, digits: int) -> str:
    """Return a cell, rounding long floats to ``digits`` decimals."""
    if text is None or text == "":
        return ""
    try:
        value = float(text)
    except ValueError:
        return text
    if value.is_integer() or "." not in text:
        return text
    return f"{value:.{digits}f}".rstrip("0").rstrip(".")


class MachineDirective(_TableDirective):
    """Describe the machine of a benchmark: ``.. neurostrat-machine:: results/x_machine.json``."""

    required_arguments = 1
    KEYS = ("date", "cpu_model", "processor", "cpus", "ram_gb", "device", "os", "platform", "python")

    def run(self) -> list[nodes.Node]:
        """Return a one-row table of the machine's description."""
        path = Path(self.env.srcdir).parent / self.arguments[0]
        self.env.note_dependency(str(path))
        machine = json.loads(path.read_text())
        keys = [key for key in self.KEYS if key in machine]
        return self.render(_list_table(keys, [[machine[key] for key in keys]]))


def escape_shapes(
    app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """Escape reStructuredText markup in numpydoc shapes, before numpydoc parses the docstring.

    The numpydoc convention writes shapes with Python names, e.g.
    ``ndarray of shape (n_features_in_,)`` or ``(len(q), *image.shape)``; reStructuredText would
    read ``n_features_in_`` as a link and ``*image`` as the start of an emphasis.
    """
    for index, line in enumerate(lines):
        start = line.find("of shape (")
        if start < 0 or "``" in line:
            continue
        shape = re.sub(r"(\w)_(?=[,)\s])", r"\1\\_", line[start:])
        lines[index] = line[:start] + re.sub(r"(?<=[(\s])\*(?=\w)", r"\\*", shape)


def skip_metadata_requests(
    app: Sphinx, what: str, name: str, obj: Any, skip: bool, options: Any
) -> bool | None:
    """Skip scikit-learn's generated ``set_*_request`` methods (not NeuroStrat's API)."""
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directives and the member filter."""
    app.connect("autodoc-skip-member", skip_metadata_requests)
    # Before numpydoc (priority 500) splits the sections.
    app.connect("autodoc-process-docstring", escape_shapes, priority=400)
    app.add_directive("neurostrat-outputs", OutputsDirective)
    app.add_directive("neurostrat-tsv", TsvDirective)
    app.add_directive("neurostrat-machine", MachineDirective)
    app.add_directive("neurostrat-other-results", OtherResultsDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}

"""Sphinx directives that render NeuroStrat's registries and benchmark tables at build time.

``neurostrat-outputs`` lists every per-subject output of
:data:`bids_app.derivatives.naming.OUTPUTS` (and the group outputs, when the naming module has a
group registry); ``neurostrat-tsv`` renders a table of ``benchmarks/results``,
``neurostrat-other-results`` every table of that folder that a page does not show otherwise, and
``neurostrat-machine`` describes the machine a benchmark ran on. The pages therefore cannot drift
from the code or from the measurements. The directives build docutils nodes directly, so they
work the same in Markdown (MyST) and reStructuredText pages.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

#: Example entities of the rendered per-subject paths.
EXAMPLE_ENTITIES = {"sub": "01", "ses": "1"}

#: Key of the set of TSV files a page has rendered, in ``env.temp_data``.
RENDERED_KEY = "neurostrat_rendered_tsv"


class Code(str):
    """A table cell shown as inline code."""

    __slots__ = ()


def _cell(value: Any) -> nodes.entry:
    """Return a table cell: inline code for :class:`Code`, text otherwise."""
    text = " ".join(str(value).split())
    inline = nodes.literal(text=text) if isinstance(value, Code) else nodes.Text(text)
    return nodes.entry("", nodes.paragraph("", "", inline))


def _table(header: Sequence[Any], rows: Iterable[Sequence[Any]]) -> nodes.table:
    """Return a docutils table with one header row."""
    table = nodes.table(classes=["neurostrat-table", "colwidths-auto"])
    group = nodes.tgroup(cols=len(header))
    table += group
    group.extend(nodes.colspec(colwidth=1) for _ in header)
    head = nodes.thead()
    head += nodes.row("", *(_cell(value) for value in header))
    body = nodes.tbody()
    for row in rows:
        body += nodes.row("", *(_cell(value) for value in row))
    group += head
    group += body
    return table


class OutputsDirective(SphinxDirective):
    """Render the registry of outputs: ``neurostrat-outputs`` with ``:level:``."""

    option_spec: ClassVar[dict[str, Callable[[str], Any]]] = {
        "level": lambda value: directives.choice(value, ("participant", "group"))
    }

    def run(self) -> list[nodes.Node]:
        """Return the table of the participant or the group outputs."""
        from bids_app.derivatives import naming

        if self.options.get("level", "participant") == "participant":
            rows = [
                (Code(name), Code(naming.output_path(name, EXAMPLE_ENTITIES).as_posix()), suffix)
                for name, (_, suffix, _) in naming.OUTPUTS.items()
            ]
            return [_table(("name", "path (subject 01, session 1)", "suffix"), rows)]
        rows = [
            (Code(name), Code(f"group/{output.pattern}"), output.description)
            for name, output in naming.GROUP.items()
        ]
        return [_table(("name", "file", "content"), rows)]


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


def _tsv_table(
    directive: SphinxDirective, path: Path, columns: list[str] | None, digits: int
) -> nodes.table:
    """Return the table of a TSV file's columns (all by default)."""
    directive.env.note_dependency(str(path))
    directive.env.temp_data.setdefault(RENDERED_KEY, set()).add(path.resolve())
    with path.open(newline="") as handle:
        records = list(csv.DictReader(handle, delimiter="\t"))
    if columns is None:
        columns = list(records[0]) if records else []
    rows = [[_number(record.get(column, ""), digits) for column in columns] for record in records]
    return _table(columns, rows)


class TsvDirective(SphinxDirective):
    """Render a TSV file of the repository: ``neurostrat-tsv`` with its path from the root.

    Options: ``:columns:`` (comma-separated, default all), ``:digits:`` (rounding of floats).
    """

    required_arguments = 1
    option_spec: ClassVar[dict[str, Callable[[str], Any]]] = {
        "columns": directives.unchanged,
        "digits": directives.nonnegative_int,
    }

    def run(self) -> list[nodes.Node]:
        """Return the table of the file."""
        path = Path(self.env.srcdir).parent / self.arguments[0]
        columns = (
            [name.strip() for name in self.options["columns"].split(",")]
            if "columns" in self.options
            else None
        )
        return [_tsv_table(self, path, columns, self.options.get("digits", 3))]


class OtherResultsDirective(SphinxDirective):
    """Render every TSV of a folder that the page has not rendered yet, each under a title.

    ``neurostrat-other-results`` with the folder: new benchmark tables appear on the page without
    editing it.
    """

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        """Return a titled table per remaining TSV file."""
        folder = Path(self.env.srcdir).parent / self.arguments[0]
        done = self.env.temp_data.get(RENDERED_KEY, set())
        result: list[nodes.Node] = []
        for path in sorted(folder.glob("*.tsv")):
            if path.resolve() not in done:
                result.append(nodes.rubric("", "", nodes.literal(text=path.name)))
                result.append(_tsv_table(self, path, None, 3))
        return result or [nodes.paragraph(text="None: every result table is shown above.")]


class MachineDirective(SphinxDirective):
    """Describe the machine of a benchmark: ``neurostrat-machine`` with its JSON file."""

    required_arguments = 1
    KEYS = ("date", "cpu_model", "processor", "cpus", "ram_gb", "device", "os", "platform")

    def run(self) -> list[nodes.Node]:
        """Return a one-row table of the machine's description."""
        path = Path(self.env.srcdir).parent / self.arguments[0]
        self.env.note_dependency(str(path))
        machine = json.loads(path.read_text())
        keys = [key for key in self.KEYS if machine.get(key) not in (None, "")]
        return [_table(keys, [[machine[key] for key in keys]])]


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
    """Register the directives and the docstring filters."""
    app.add_directive("neurostrat-outputs", OutputsDirective)
    app.add_directive("neurostrat-tsv", TsvDirective)
    app.add_directive("neurostrat-other-results", OtherResultsDirective)
    app.add_directive("neurostrat-machine", MachineDirective)
    app.connect("autodoc-skip-member", skip_metadata_requests)
    # Before numpydoc (priority 500) splits the sections.
    app.connect("autodoc-process-docstring", escape_shapes, priority=400)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}

"""Building blocks of self-contained HTML reports."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from PIL import Image

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { border-bottom: 2px solid #3a6ea5; padding-bottom: .3em; }
h2 { color: #3a6ea5; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: right; }
th { background: #eef3f8; }
.note { color: #555; font-size: .9em; }
.fail { color: #b00020; }
.ok { color: #1b7837; }
figure { margin: 1em 0; }
figure img { max-width: 100%; }
"""


def table_html(table: pd.DataFrame, float_format: str = "{:.3g}") -> str:
    """Render a table as HTML (missing values as ``n/a``).

    Parameters
    ----------
    table : pandas.DataFrame
        The table.
    float_format : str
        Format of floating-point numbers.

    Returns
    -------
    str
        An HTML ``<table>``.
    """
    return table.to_html(
        index=False, na_rep="n/a", float_format=float_format.format, border=0, escape=True
    )


def figure_html(figure: plt.Figure, alt: str) -> str:
    """Embed a matplotlib figure as an inline PNG and close it.

    Parameters
    ----------
    figure : matplotlib.figure.Figure
        The figure.
    alt : str
        Alternative text.

    Returns
    -------
    str
        An ``<img>`` element with a data URI.
    """
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return _png_img(buffer.getvalue(), alt)


def figure_png(figure: plt.Figure) -> bytes:
    """Render a matplotlib figure as the PNG file written next to the report (figure kept open).

    Parameters
    ----------
    figure : matplotlib.figure.Figure
        The figure.

    Returns
    -------
    bytes
        The PNG file's content (110 dpi).
    """
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


@dataclass(frozen=True)
class RenderedFigure:
    """A figure of the group report, rendered for its own file.

    Parameters
    ----------
    output : str
        A key of :data:`bids_app.derivatives.naming.GROUP` (format ``png``).
    png : bytes
        The PNG file's content.
    fields : dict of str to str
        Values of the output's placeholders (e.g. ``network``).
    """

    output: str
    png: bytes
    fields: dict[str, str] = field(default_factory=dict)


@dataclass
class ReportPart:
    """Sections of the group report and the figures to write as files beside it.

    Parameters
    ----------
    sections : list of (str, str)
        Heading and HTML body of each section, in order.
    figures : list of RenderedFigure
        Figures the derivatives writer saves under ``group/figures``.
    """

    sections: list[tuple[str, str]] = field(default_factory=list)
    figures: list[RenderedFigure] = field(default_factory=list)

    def figure(self, figure: plt.Figure, alt: str, output: str, **fields: str) -> str:
        """Keep a figure's PNG file for the writer, then embed it and close it.

        Parameters
        ----------
        figure : matplotlib.figure.Figure
            The figure.
        alt : str
            Alternative text.
        output : str
            The figure's key in :data:`bids_app.derivatives.naming.GROUP`.
        **fields : str
            Values of the output's placeholders.

        Returns
        -------
        str
            An ``<img>`` element with a data URI.
        """
        self.figures.append(RenderedFigure(output, figure_png(figure), dict(fields)))
        return figure_html(figure, alt)

    def __iadd__(self, other: ReportPart) -> ReportPart:
        """Append another part's sections and figures."""
        self.sections += other.sections
        self.figures += other.figures
        return self


def _png_img(png: bytes, alt: str) -> str:
    """Return an ``<img>`` element showing PNG bytes through a data URI."""
    encoded = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}"/>'


def compact_figure_html(figure: plt.Figure, alt: str, dpi: int = 80, colors: int = 32) -> str:
    """Embed a matplotlib figure as a small inline PNG (palette colours) and close it.

    For image mosaics: the whole figure is rendered (no tight bounding box, so lay the axes out
    to fill it) and quantised to an adaptive palette, which makes the PNG several times smaller
    than :func:`figure_html`'s true-colour one with little visible difference.

    Parameters
    ----------
    figure : matplotlib.figure.Figure
        The figure.
    alt : str
        Alternative text.
    dpi : int
        Resolution.
    colors : int
        Size of the palette (at most 256).

    Returns
    -------
    str
        An ``<img>`` element with a data URI.
    """
    figure.set_dpi(dpi)
    figure.canvas.draw()
    rendered = Image.fromarray(np.asarray(figure.canvas.buffer_rgba())).convert("RGB")
    plt.close(figure)
    output = io.BytesIO()
    rendered.quantize(colors=colors).save(output, format="PNG", compress_level=9)
    return _png_img(output.getvalue(), alt)


def page(title: str, sections: Sequence[tuple[str, str]], footer: str) -> str:
    """Assemble a complete HTML document.

    Parameters
    ----------
    title : str
        Page title (escaped).
    sections : sequence of (str, str)
        Heading (escaped) and body (HTML, inserted as is) of each section.
    footer : str
        A note at the end (escaped).

    Returns
    -------
    str
        The document.
    """
    body = "\n".join(
        f"<section><h2>{html.escape(heading)}</h2>\n{content}</section>"
        for heading, content in sections
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n"
        f"<body><h1>{html.escape(title)}</h1>\n{body}\n"
        f'<p class="note">{html.escape(footer)}</p></body></html>\n'
    )


def append_section(document: str, heading: str, content: str) -> str:
    """Add a section after the last one of a document made by :func:`page`.

    Parameters
    ----------
    document : str
        The HTML document.
    heading : str
        Heading of the new section (escaped).
    content : str
        Its body (HTML, inserted as is).

    Returns
    -------
    str
        The document with the section.

    Examples
    --------
    >>> doc = page("t", [("A", "<p>a</p>")], "f")
    >>> "<h2>A</h2>" in doc and append_section(doc, "B", "b").index("<h2>B</h2>") > doc.index("A")
    True
    """
    before, end, after = document.rpartition("</section>")
    section = f"\n<section><h2>{html.escape(heading)}</h2>\n{content}</section>"
    return before + end + section + after

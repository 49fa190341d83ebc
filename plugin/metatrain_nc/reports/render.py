"""Rendering of a report (both protocols): Markdown and a single HTML file.

The report is a list of blocks, tuples whose first item says what they are:

- ``("h1", text)``, ``("h2", text)``: headings;
- ``("p", text)``: a paragraph;
- ``("table", headers, rows)``: a table, ``rows`` a list of lists of cells;
- ``("img", file, caption)``: a figure, ``file`` relative to the report folder;
- ``("chemiscope", key, caption, entries)``: an interactive chemiscope viewer of the
  datasets ``entries`` (see :mod:`.viewer`).

Markdown links the figures and the chemiscope files; the HTML embeds the figures as
base64 and the viewers with their datasets and the chemiscope script, offline, so it
can be mailed or attached.
"""

import base64
import html
import math
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from ..dynamics.outputs import FILES as MD_FILES
from . import viewer

Block = Tuple[Any, ...]
#: one row of a table: its cells, as text
Row = List[str]


# -- cells ---------------------------------------------------------------------------
def fmt(value: Any, digits: int = 3) -> str:
    """A table cell: ``-`` for a missing number (not computed), ``nan`` / ``inf``
    for a non-finite one (computed, and wrong: never shown as missing), ``digits``
    digits."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not isinstance(value, float) or not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) < 10 ** -(digits - 1) or abs(value) >= 1e5):
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}" if abs(value) < 1 else f"{value:.{digits - 2}f}"


def fmt_error(value: Optional[float], error: Optional[float]) -> str:
    """``value ± error`` (or ``value`` alone without an error) as a table cell."""
    if value is None:
        return "-"
    if error is None:
        return fmt(value)
    return f"{fmt(value)} ± {fmt(error, 2)}"


# -- blocks --------------------------------------------------------------------------
def table(headers: Sequence[str], rows: List[Row]) -> List[Block]:
    """A table block, or none without rows."""
    return [("table", list(headers), rows)] if rows else []


#: a column of :func:`columns_table`: its header and the cell of an item
Column = Tuple[str, Callable[[Any], Any]]


def columns_table(columns: Sequence[Column], items: Iterable[Any]) -> List[Block]:
    """A table of one row per item, a cell per column (or none without items)."""
    return table([c[0] for c in columns], [[c[1](i) for c in columns] for i in items])


def figure_block(
    figures: Dict[str, Optional[str]], key: str, caption: str
) -> List[Block]:
    """A figure block, or none for a figure that was not drawn."""
    return [("img", figures[key], caption)] if figures.get(key) else []


def section_blocks(title: str, text: Sequence[str], *parts: List[Block]) -> List[Block]:
    """A section: its heading, its paragraphs, then its parts (tables, figures)."""
    blocks: List[Block] = [("h2", title)] + [("p", paragraph) for paragraph in text]
    for part in parts:
        blocks += part
    return blocks


# -- Markdown ------------------------------------------------------------------------
def markdown_cell(value: Any) -> str:
    """``value`` as one Markdown table cell: ``|`` escaped, newlines as spaces."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: Sequence[Any], rows: Iterable[Sequence[Any]]) -> List[str]:
    """The lines of a Markdown (GitHub-flavoured) table, then an empty line."""

    def line(cells: Sequence[Any]) -> str:
        return "| " + " | ".join(markdown_cell(c) for c in cells) + " |"

    lines = [line(headers), "|" + "|".join("---" for _ in headers) + "|"]
    return lines + [line(row) for row in rows] + [""]


def markdown_viewer(block: Block) -> List[str]:
    """A viewer block in Markdown: links to its chemiscope files."""
    links = ", ".join(
        f"[{markdown_cell(label)}]({path}/{MD_FILES['chemiscope']})"
        if kind == "trajectory"
        else f"[{markdown_cell(label)}]({path})"
        for label, kind, path in block[3]
    )
    return [
        f"{block[2]} The viewer is in report.html; the chemiscope files (open them "
        f"at https://chemiscope.org): {links}.\n"
    ]


#: the Markdown lines of each kind of block
MARKDOWN: Dict[str, Callable[[Block], List[str]]] = {
    "h1": lambda block: [f"# {block[1]}\n"],
    "h2": lambda block: [f"## {block[1]}\n"],
    "p": lambda block: [f"{block[1]}\n"],
    "table": lambda block: markdown_table(block[1], block[2]),
    "img": lambda block: [f"![{block[2]}]({block[1]})\n"],
    "chemiscope": markdown_viewer,
}


def render_markdown(blocks: Sequence[Block]) -> str:
    """``report.md``: every block, figures as links to their files."""
    lines = [line for block in blocks for line in MARKDOWN[block[0]](block)]
    return "\n".join(lines) + "\n"


# -- HTML ----------------------------------------------------------------------------
#: the page's stylesheet, the viewers' included (``assets/report.css``)
STYLE = viewer.asset("report.css")


def html_table(headers: Sequence[Any], rows: Iterable[Sequence[Any]]) -> List[str]:
    """The lines of an HTML table, every header and cell escaped."""
    out = ["<table><tr>"]
    out += [f"<th>{html.escape(str(h))}</th>" for h in headers]
    out.append("</tr>")
    for row in rows:
        cells = "".join(f"<td>{html.escape(str(c))}</td>" for c in row)
        out.append(f"<tr>{cells}</tr>")
    out.append("</table>")
    return out


def html_figure(path: Path, caption: str) -> str:
    """A ``<figure>`` with the PNG at ``path`` embedded as base64."""
    encoded = base64.b64encode(path.read_bytes()).decode()
    return (
        f"<figure><img alt='{html.escape(caption)}' "
        f"src='data:image/png;base64,{encoded}'>"
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


#: the HTML lines of each kind of block, figures and datasets read from the folder
HTML: Dict[str, Callable[[Block, Path], List[str]]] = {
    "h1": lambda block, folder: [f"<h1>{html.escape(block[1])}</h1>"],
    "h2": lambda block, folder: [f"<h2>{html.escape(block[1])}</h2>"],
    "p": lambda block, folder: [f"<p>{html.escape(block[1])}</p>"],
    "table": lambda block, folder: html_table(block[1], block[2]),
    "img": lambda block, folder: [html_figure(folder / block[1], block[2])],
    "chemiscope": lambda block, folder: viewer.viewer_html(
        f"viewer-{block[1]}", block[2], block[3], folder
    ),
}


def render_html(blocks: Sequence[Block], folder: Path) -> str:
    """``report.html``, titled by its first ``h1``: every block, figures and viewers
    (datasets read from ``folder``) embedded; the chemiscope script once, after the
    report, when a viewer is drawn."""
    title = next((block[1] for block in blocks if block[0] == "h1"), "report")
    lines = [
        "<!DOCTYPE html>",
        f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>\n{STYLE}</style></head><body>",
    ]
    body = [line for block in blocks for line in HTML[block[0]](block, folder)]
    lines += body
    if any(line.startswith(viewer.VIEWER_START) for line in body):
        lines += viewer.page_scripts()
    lines.append("</body></html>")
    return "\n".join(lines) + "\n"

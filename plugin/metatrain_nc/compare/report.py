"""The comparison report: figures (PNG), ``report.md`` and ``report.html``.

The report is a list of blocks (headings, paragraphs, tables, figures) built once from
``report.json``'s content and rendered twice: Markdown (figures and chemiscope files
linked) and a single HTML file (figures embedded as base64, chemiscope viewers with
their datasets and script: it works offline and can be mailed or attached).

- :mod:`.figures` draws the figures (matplotlib);
- :mod:`.sections` computes the blocks of each section from the results;
- :mod:`.viewer` embeds the chemiscope viewers (lambda datasets, MD trajectories);
- :mod:`.render` renders the blocks as Markdown and HTML.
"""

from pathlib import Path
from typing import Any, Dict, Optional

from .figures import write_figures
from .render import render_html, render_markdown
from .sections import build_blocks

__all__ = ["build_blocks", "write_pages", "write_report"]


def write_report(data: Dict[str, Any], folder: Path) -> Dict[str, Optional[str]]:
    """Figures, ``report.md`` and ``report.html`` in ``folder``; returns the figures.

    ``data`` is the results dict (``report.json``'s content); a figure that fails is
    noted in ``data["notes"]`` and left out of the report.
    """
    figures = write_figures(data, folder)
    write_pages(build_blocks(data, figures), folder)
    return figures


def write_pages(blocks, folder: Path) -> None:
    """``report.md`` and ``report.html`` of ``blocks`` in ``folder``, each written
    whole, then renamed (a reader never sees half a file)."""
    for name, text in (
        ("report.md", render_markdown(blocks)),
        ("report.html", render_html(blocks, folder)),
    ):
        partial = folder / f".{name}.partial"
        partial.write_text(text, encoding="utf-8")
        partial.replace(folder / name)

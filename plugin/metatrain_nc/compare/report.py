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

__all__ = ["build_blocks", "render_html", "render_markdown", "write_report"]


def write_report(data: Dict[str, Any], folder: Path) -> Dict[str, Optional[str]]:
    """Figures, ``report.md`` and ``report.html`` in ``folder``; returns the figures.

    ``data`` is the results dict (``report.json``'s content); a figure that fails is
    noted in ``data["notes"]`` and left out of the report.
    """
    figures = write_figures(data, folder)
    blocks = build_blocks(data, figures)
    (folder / "report.md").write_text(render_markdown(blocks))
    (folder / "report.html").write_text(render_html(blocks, folder))
    return figures

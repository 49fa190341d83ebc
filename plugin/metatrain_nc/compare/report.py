"""The report of a comparison, both protocols: figures (:mod:`.figures`), the
blocks of its sections (:mod:`.sections`) rendered as ``report.md`` and a single
offline ``report.html`` (:mod:`.render`, :mod:`.viewer`), and ``report.json``.
"""

from pathlib import Path
from typing import Any, Dict

from ..reports.render import render_html, render_markdown
from ..unit_store import write_atomic
from .figures import write_figures
from .sections import build_blocks

__all__ = ["build_blocks", "write_report"]


def write_report(data: Dict[str, Any], folder: Path) -> None:
    """Figures, ``report.md``, ``report.html`` and ``report.json`` of ``data`` (the
    results, ``report.json``'s content: a paper protocol's settings have ``parts``)
    in ``folder``, each written whole (:func:`.store.write_atomic`).

    A figure that fails is noted in ``data["notes"]`` and left out of the report;
    ``data`` gains ``figures`` (those drawn) and ``files``.
    """
    protocol = "paper" if "parts" in data["settings"] else "standard"
    figures = write_figures(data, folder, protocol)
    blocks = build_blocks(data, figures)
    write_atomic(folder / "report.md", render_markdown(blocks))
    write_atomic(folder / "report.html", render_html(blocks, folder))
    data["figures"] = {k: v for k, v in figures.items() if v}
    data["files"] = {
        "report_markdown": "report.md",
        "report_html": "report.html",
        "chemiscope": sorted(
            str(p.relative_to(folder)) for p in folder.rglob("*.json.gz")
        ),
    }
    write_atomic(folder / "report.json", data)

"""The comparison report's renderers: Markdown tables and HTML, without any model."""

import re

from metatrain_nc.compare.sections import build_blocks
from metatrain_nc.reports.render import markdown_table, render_html, render_markdown

from .test_report_content import _data as results


def _cells(line):
    """The cells of a Markdown table row as GitHub renders them: split on the pipes
    that are not escaped, then ``\\|`` unescaped."""
    inner = line.strip()[1:-1]
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", inner)]


def _data(name, error):
    """A results dict with one model whose cost section failed with ``error``."""
    models = {name: {"info": {"kind": "conservative"}, "cost": {"error": error}}}
    return results(models, stages=("cost",))


def test_markdown_table_keeps_pipes_in_cells():
    lines = markdown_table(["model", "loop |W| (eV)"], [["a|b", "x\ny"], ["c", 1.5]])
    assert lines[-1] == ""
    rows = [_cells(line) for line in lines[:-1]]
    assert rows[0] == ["model", "loop |W| (eV)"]
    assert rows[1] == ["---", "---"]
    assert rows[2] == ["a|b", "x y"]
    assert rows[3] == ["c", "1.5"]


def test_report_shows_pipes_in_names_and_failures(tmp_path):
    blocks = build_blocks(_data("PET|M", "no | species"), figures={})
    markdown = render_markdown(blocks)
    models = markdown.split("## Models\n")[1]
    header, rule, row = models.strip().splitlines()[:3]
    assert len(_cells(header)) == len(_cells(rule)) == len(_cells(row)) == 6
    assert _cells(row)[0] == "PET|M"
    lines = markdown.splitlines()
    failed = lines[lines.index("| model | failed |") + 2]
    assert _cells(failed) == ["PET|M", "no | species"]

    html = render_html(blocks, tmp_path)
    assert "<td>PET|M</td>" in html
    assert "<td>no | species</td>" in html
    assert "<title>Comparison of force models</title>" in html  # its first heading


def test_html_title_is_the_first_heading_escaped(tmp_path):
    blocks = [("p", "intro"), ("h1", "Distilling a <teacher>"), ("h1", "other")]
    html = render_html(blocks, tmp_path)
    assert "<title>Distilling a &lt;teacher&gt;</title>" in html
    assert "<title>report</title>" in render_html([("p", "text")], tmp_path)


def test_committed_reports_rebuild_identically():
    """Every committed paper-protocol report (docs/paper_run*/) is what the renderer
    makes of its report.json today: a change of the report code that changes them
    shows here (and then the reports are made again, the change said in the
    CHANGELOG)."""
    import json
    from pathlib import Path

    from metatrain_nc.compare.figures import FIGURES

    docs = Path(__file__).resolve().parents[2] / "docs"
    folders = sorted(p.parent for p in docs.glob("paper_run*/report.json"))
    assert len(folders) >= 2
    for folder in folders:
        data = json.loads((folder / "report.json").read_text())
        figures = {k: v for k, v in FIGURES.items() if (folder / v).is_file()}
        markdown = render_markdown(build_blocks(data, figures))
        assert markdown == (folder / "report.md").read_text(), folder.name

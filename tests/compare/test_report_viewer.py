"""The chemiscope viewers of ``report.html`` draw, offline, in headless Chromium.

The report is the one of the ``tiny_compare`` fixture (shared with
``test_compare_tiny_models``). Needs the Debian package ``chromium``; skipped (saying
so) only when it is absent.
"""

import json
import re

import pytest

from metatrain_nc.reports.viewer import VIEWER_START

from ..antisymmetry.chemiscope_viewer import chromium_executable
from .headless import Page

pytestmark = pytest.mark.skipif(
    chromium_executable() is None,
    reason="chromium is not installed (Debian package 'chromium')",
)

#: every viewer has finished loading (its status), or null
STATUS = """(() => {
  const viewers = [...document.querySelectorAll(".nc-viewer")];
  const status = Object.fromEntries(viewers.map((v) => [v.id, v.dataset.status]));
  const done = Object.values(status).every((s) => s !== "pending" && s !== "loading");
  return viewers.length && done ? status : null;
})()"""

#: the structure panel draws in a WebGL canvas, the map its points in a WebGL
#: canvas (plotly's scattergl; an SVG layer for other traces): pixels they must draw
#: at least (ethanol fills ~8000 pixels of the structure panel, a map point ~80)
STRUCTURE_DRAWN = 1000
MAP_DRAWN = 100


def _drawn(page, viewer):
    return {
        "structure": page.drawn_pixels(f"#{viewer}-structure", "canvas"),
        "map": page.drawn_pixels(f"#{viewer}-map", "g.scatterlayer, canvas"),
    }


def test_report_viewers_draw_offline(tiny_compare, tmp_path):
    """Both viewers (lambda and MD trajectories) load their datasets without error
    or warning and draw atoms and map points; switching the trajectory viewer to
    another run draws that one; the page requests nothing from the network."""
    out = tiny_compare.out
    assert tiny_compare.result.returncode == 0, tiny_compare.result.stderr
    report = json.loads((out / "report.json").read_text())
    html = (out / "report.html").read_text()
    assert html.count(VIEWER_START) == 2
    lambda_sets = sum(len(m["antisymmetry"]) for m in report["models"].values())
    md_sets = sum(len(m["nve"]) for m in report["models"].values())
    md_sets += len(report["nvt"])
    assert f"data-datasets='{lambda_sets}'" in html  # 4: every model and head
    assert f"data-datasets='{md_sets}'" in html  # 10: every MD run

    with Page(out / "report.html", tmp_path) as page:
        status = page.wait_for(STATUS, timeout=240)
        assert status == {"viewer-lambda": "ok", "viewer-md": "ok"}, status
        for viewer in ("viewer-lambda", "viewer-md"):
            drawn = _drawn(page, viewer)
            assert drawn["structure"] > STRUCTURE_DRAWN, (viewer, drawn)
            assert drawn["map"] > MAP_DRAWN, (viewer, drawn)
        # the first entries: the direct head's lambda, a direct-forces NVE run
        labels = page.evaluate(
            "[...document.querySelectorAll('select')].map(s => "
            "s.options[s.selectedIndex].text)"
        )
        assert labels == ["pet_nc, direct forces", "pet_nc, direct forces, NVE"]

        page.evaluate(
            "(() => { const s = document.getElementById('viewer-md-select');"
            " s.value = '2'; s.dispatchEvent(new Event('change')); })()"
        )
        switched = page.wait_for(
            "(() => { const v = document.getElementById('viewer-md');"
            " return v.dataset.shown === '2' && v.dataset.status !== 'loading'"
            " ? v.dataset.status : null; })()",
            timeout=120,
        )
        assert switched == "ok"
        drawn = _drawn(page, "viewer-md")
        assert drawn["structure"] > STRUCTURE_DRAWN, drawn
        assert drawn["map"] > MAP_DRAWN, drawn

        urls = page.requested_urls()
        assert urls, "no request recorded"
        offline = [u for u in urls if not u.startswith(("file:", "data:", "blob:"))]
        assert not offline, offline


#: a page script that keeps WebGL from drawing anything (the viewer still loads)
NO_DRAWING = """<script>
for (const context of [WebGLRenderingContext, WebGL2RenderingContext]) {
  context.prototype.drawArrays = function () {};
  context.prototype.drawElements = function () {};
}
</script>"""


def test_viewer_check_sees_a_viewer_that_does_not_draw(tiny_compare, tmp_path):
    """The checks are not vacuous: a viewer that loads but draws no atoms (WebGL
    draw calls switched off) fails the pixel check, and without the chemiscope
    script the viewers say so."""
    html = (tiny_compare.out / "report.html").read_text()
    blank = tmp_path / "blank.html"
    blank.write_text(html.replace("<body>", "<body>" + NO_DRAWING, 1))
    with Page(blank, tmp_path) as page:
        status = page.wait_for(STATUS, timeout=240)
        assert status["viewer-md"] == "ok", status
        drawn = _drawn(page, "viewer-md")
        assert drawn["structure"] < STRUCTURE_DRAWN / 10, drawn
        assert drawn["map"] < MAP_DRAWN, drawn  # the map's points are WebGL too

    stripped = re.sub(
        r"<script id='chemiscope-library'>.*?</script>", "", html, flags=re.S
    )
    assert len(stripped) < len(html) - 1_000_000
    broken = tmp_path / "no_library.html"
    broken.write_text(stripped)
    profile = tmp_path / "no_library"
    profile.mkdir()
    with Page(broken, profile) as page:
        status = page.wait_for(STATUS, timeout=120)
        assert all(s.startswith("error:") for s in status.values()), status
        assert "did not load" in status["viewer-md"]
        with pytest.raises(RuntimeError, match="no 'canvas'"):
            page.drawn_pixels("#viewer-md-structure", "canvas")

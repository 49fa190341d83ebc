"""Load a chemiscope dataset in the real chemiscope viewer (headless Chromium).

The page inlines ``chemiscope.min.js`` from the installed chemiscope wheel and the
dataset, calls ``Chemiscope.DefaultVisualizer.load`` and writes ``OK`` (or the viewer's
error / warnings) into a status element that we read back with ``--dump-dom``.
Needs the Debian package ``chromium``; nothing is downloaded.
"""

import gzip
import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Optional

import chemiscope

VIEWER_JS = Path(chemiscope.__file__).parent / "sphinx" / "static" / "chemiscope.min.js"

PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>chemiscope check</title></head>
<body>
<pre id="status">PENDING</pre>
<div id="meta"></div><div id="map" style="width:600px;height:400px"></div>
<div id="structure" style="width:600px;height:400px"></div><div id="info"></div>
<script>__VIEWER__</script>
<script id="dataset" type="application/json">__DATASET__</script>
<script>
  const status = document.getElementById("status");
  const messages = [];
  const warnings = new Chemiscope.Warnings();
  warnings.addHandler((message) => { messages.push(String(message)); });
  const dataset = JSON.parse(document.getElementById("dataset").textContent);
  const config = {map: "map", info: "info", meta: "meta", structure: "structure"};
  Chemiscope.DefaultVisualizer.load(config, dataset, warnings).then(
    (viewer) => {
      status.textContent = messages.length ? "WARN " + messages.join(" | ") : "OK";
    },
    (error) => { status.textContent = "ERROR " + String(error); }
  );
  window.addEventListener("error", (e) => {
    status.textContent = "ERROR " + String(e.message);
  });
</script>
</body></html>
"""


def chromium_executable() -> Optional[str]:
    """The Chromium binary (Debian package ``chromium``), or ``None``."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def load_in_viewer(dataset_path: Path, workdir: Path, timeout: float = 120) -> str:
    """Status text set by the page: ``OK``, ``WARN ...`` or ``ERROR ...``."""
    executable = chromium_executable()
    if executable is None:
        raise RuntimeError("chromium is not installed")
    opener = gzip.open if str(dataset_path).endswith(".gz") else open
    with opener(dataset_path, "rt", encoding="utf-8") as stream:
        dataset = json.load(stream)
    text = json.dumps(dataset).replace("</", "<\\/")
    page = PAGE.replace("__DATASET__", text).replace(
        "__VIEWER__",
        VIEWER_JS.read_text(encoding="utf-8").replace("</script", "<\\/script"),
    )
    page_path = workdir / "chemiscope_check.html"
    page_path.write_text(page, encoding="utf-8")
    result = subprocess.run(
        [
            executable,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            f"--user-data-dir={workdir / 'chromium-profile'}",
            "--virtual-time-budget=15000",
            "--dump-dom",
            page_path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    match = re.search(r'<pre id="status">(.*?)</pre>', result.stdout, re.S)
    if match is None:
        return "ERROR no status element in the page: " + result.stderr[-2000:]
    return html.unescape(match.group(1)).strip()

"""Interactive chemiscope viewers in ``report.html``, fully offline.

A viewer block (``("chemiscope", key, caption, entries)``, see :mod:`.render`) lists
datasets of the report folder; ``report.html`` embeds each of them (gzip-compressed
JSON, base64, one select to switch between them) and, once per page, the chemiscope
script of the chemiscope wheel: no network, the file can be mailed. An entry is
``"lambda"`` (an antisymmetry folder's dataset: atoms coloured by lambda, force
arrows) or ``"trajectory"`` (an MD run made into a small dataset here:
:func:`~metatrain_nc.dynamics.outputs.run_dataset`).

Each viewer records its state in its ``data-status`` attribute: ``pending``,
``loading``, ``ok``, ``warning: ...`` or ``error: ...`` (also shown in the page). An
unreadable dataset leaves its entry out (the page says so); a page without viewers
carries no viewer script.
"""

import base64
import gzip
import html
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..dynamics.outputs import run_dataset

#: most frames of an MD run shown in a trajectory viewer
MAX_FRAMES = 30

#: how the HTML of a viewer starts (the page adds the scripts when it has one)
VIEWER_START = "<div class='nc-viewer'"
#: an entry of a viewer block: (label, kind, path relative to the report folder)
Entry = Tuple[str, str, str]


def viewer_script_path() -> Optional[Path]:
    """``chemiscope.min.js`` of the installed chemiscope wheel, or ``None``."""
    try:
        import chemiscope
    except ImportError:
        return None
    path = Path(chemiscope.__file__).parent / "sphinx" / "static" / "chemiscope.min.js"
    return path if path.is_file() else None


# -- datasets ------------------------------------------------------------------------
def _lambda_view(dataset: Dict[str, Any]) -> str:
    """The antisymmetry dataset as JSON, its atoms coloured by lambda_i (all atoms
    drawn: no environment highlighting) when it has per-atom values."""
    if "lambda_i" in dataset.get("properties", {}):
        settings = dataset.setdefault("settings", {})
        structure = (settings.get("structure") or [{}])[0]
        structure["color"] = {"property": "lambda_i", "palette": "inferno"}
        structure["environments"] = {"activated": False}
        settings["structure"] = [structure]
    return json.dumps(dataset)  # NaN stay NaN: the page's parser reads them


def _small(dataset: Dict[str, Any]) -> Dict[str, Any]:
    """``dataset`` (frame properties only) with its positions rounded to 1 mA:
    plenty for a picture, small enough to embed."""
    for structure in dataset["structures"]:
        for axis in ("x", "y", "z"):
            structure[axis] = [round(float(v), 3) for v in structure[axis]]
        if "cell" in structure:
            structure["cell"] = [float(v) for v in structure["cell"]]
    return dataset


def dataset_bytes(folder: Path, entry: Entry) -> bytes:
    """The gzip-compressed JSON of ``entry`` (a file of ``folder``, or an MD run made
    into a dataset). Raises ``OSError``/``ValueError`` when it cannot be read."""
    label, kind, path = entry
    if kind == "lambda":
        content = (folder / path).read_bytes()
        if content[:2] == b"\x1f\x8b":
            content = gzip.decompress(content)
        text = _lambda_view(json.loads(content))
    elif kind == "trajectory":
        text = json.dumps(
            _small(run_dataset(folder / path, label, MAX_FRAMES, atoms=False))
        )
    else:
        raise ValueError(f"unknown viewer entry kind '{kind}'")
    return gzip.compress(text.encode("utf-8"), mtime=0)


# -- HTML ----------------------------------------------------------------------------
def asset(name: str) -> str:
    """A file of ``compare/assets/``: the report's stylesheet, the viewers' loader."""
    from importlib.resources import files

    return files(__package__).joinpath("assets", name).read_text(encoding="utf-8")


#: loads every viewer of the page after the chemiscope script (``assets/viewer.js``)
LOADER = asset("viewer.js")


def _safe_script(text: str) -> str:
    """``text`` safe inside ``<script>``: no ``</script`` closes it early."""
    return text.replace("</script", "<\\/script").replace("</SCRIPT", "<\\/SCRIPT")


#: the HTML of a viewer (``str.format``: its id, caption, datasets, options, scripts)
VIEWER_HTML = (
    VIEWER_START
    + """ id='{id}' data-status='pending' data-datasets='{n}'>
<p>{caption}</p>
<div class='nc-viewer-bar'><label for='{id}-select'>dataset </label>
<select id='{id}-select'>
{options}
</select></div>
<p class='nc-viewer-error' id='{id}-error' hidden></p>
<p class='nc-viewer-warning' id='{id}-warning' hidden></p>
<div class='nc-viewer-panels'>
<div class='nc-viewer-left'><div id='{id}-meta'></div><div id='{id}-map'></div></div>
<div class='nc-viewer-right'><div class='nc-viewer-structure' id='{id}-structure'>\
</div><div class='nc-viewer-info' id='{id}-info'></div></div>
</div>
<noscript>The interactive viewer needs JavaScript.</noscript>
{scripts}
</div>"""
)


def viewer_html(
    viewer_id: str, caption: str, entries: Sequence[Entry], folder: Path
) -> List[str]:
    """The HTML lines of one viewer, with a note on the entries that cannot be read
    (a note alone when none can)."""
    options: List[Tuple[str, str]] = []  # (label, base64)
    left_out: List[str] = []
    for entry in entries:
        try:
            content = dataset_bytes(folder, entry)
        except Exception as error:  # a missing run must not lose the report
            left_out.append(f"{entry[0]} ({type(error).__name__}: {error})")
            continue
        options.append((entry[0], base64.b64encode(content).decode("ascii")))
    if not options:
        note = "No chemiscope dataset could be read: " + "; ".join(left_out)
        return [f"<p>{html.escape(note)}</p>"] if entries else []
    escaped = html.escape(viewer_id)
    lines = [
        VIEWER_HTML.format(
            id=escaped,
            n=len(options),
            caption=html.escape(caption),
            options="\n".join(
                f"<option value='{i}'>{html.escape(label)}</option>"
                for i, (label, _) in enumerate(options)
            ),
            scripts="\n".join(
                f"<script type='application/gzip+base64' id='{escaped}-data-{i}'>"
                f"{content}</script>"
                for i, (_, content) in enumerate(options)
            ),
        )
    ]
    if left_out:
        note = "Left out of the viewer: " + "; ".join(left_out)
        lines.append(f"<p>{html.escape(note)}</p>")
    return lines


def page_scripts() -> List[str]:
    """The viewer script of the chemiscope wheel and the loader, once per page."""
    path = viewer_script_path()
    library = (
        _safe_script(path.read_text(encoding="utf-8"))
        if path is not None
        else "/* chemiscope is not installed: no viewer script */"
    )
    return [
        f"<script id='chemiscope-library'>{library}</script>",
        f"<script id='viewer-loader'>{LOADER}</script>",
    ]

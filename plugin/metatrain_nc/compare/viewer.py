"""Interactive chemiscope viewers in ``report.html``, fully offline.

A viewer block (``("chemiscope", key, caption, entries)``, see :mod:`.render`) lists
datasets of the report folder; ``report.html`` embeds each of them (gzip-compressed
JSON, base64, one select to switch between them) and, once per page, the chemiscope
script of the chemiscope wheel: no network, the file can be mailed. An entry is
``"lambda"`` (an antisymmetry folder's dataset: atoms coloured by lambda, force
arrows) or ``"trajectory"`` (an MD run made into a small dataset here:
:func:`trajectory_dataset`).

Each viewer records its state in its ``data-status`` attribute: ``pending``,
``loading``, ``ok``, ``warning: ...`` or ``error: ...`` (also shown in the page). An
unreadable dataset leaves its entry out (the page says so); a page without viewers
carries no viewer script.
"""

import base64
import csv
import gzip
import html
import json
import math
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from ..dynamics.outputs import FILES as MD_FILES

#: most frames of an MD run shown in the trajectory viewer
MAX_FRAMES = 30
#: what the conserved energy change of the trajectory viewer is
CONSERVED = (
    "conserved energy minus its value at the start of the run (total energy in NVE; "
    "with the thermostat's work in NVT)"
)
#: chemiscope file of an antisymmetry folder
LAMBDA_CHEMISCOPE = "chemiscope.json.gz"

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


# -- entries -------------------------------------------------------------------------
def section_results(data: Dict[str, Any], section: str) -> Iterator[Tuple[str, Any]]:
    """``(model name, result)`` of every model with a non-empty, successful result."""
    for name, model in data["models"].items():
        result = model.get(section)
        if result and "error" not in result:
            yield name, result


def section_items(data: Dict[str, Any], section: str) -> Iterator[Tuple[str, str, Any]]:
    """``(model, head or mode, result)`` of every result of ``section`` that has one
    per force head or mode."""
    for name, results in section_results(data, section):
        for key, result in results.items():
            if isinstance(result, dict):
                yield name, key, result


def _folders(data: Dict[str, Any], section: str) -> Iterator[Tuple[str, str, str]]:
    """``(model, head or mode, folder)`` of every result of ``section`` with a
    folder."""
    for name, key, result in section_items(data, section):
        if "folder" in result:
            yield name, key, result["folder"]


def lambda_entries(data: Dict[str, Any]) -> List[Entry]:
    """The antisymmetry datasets of every model and head, direct heads first."""
    found = sorted(_folders(data, "antisymmetry"), key=lambda f: f[1] != "direct")
    return [
        (f"{name}, {head} forces", "lambda", f"{path}/{LAMBDA_CHEMISCOPE}")
        for name, head, path in found
    ]


#: MD sections of the report and their ensemble labels
MD_SECTIONS = (("nve", "NVE"), ("nvt", "NVT (SVR)"))


def md_entries(data: Dict[str, Any]) -> List[Entry]:
    """The MD runs of every model (NVE, then NVT), direct-forces NVE runs first."""
    found = [
        (rank, ensemble, *folder)
        for rank, (section, ensemble) in enumerate(MD_SECTIONS)
        if section in data["settings"]["stages"]
        for folder in _folders(data, section)
    ]
    found.sort(key=lambda f: (f[0], f[3] != "direct"))
    return [
        (f"{name}, {mode} forces, {ensemble}", "trajectory", path)
        for _, ensemble, name, mode, path in found
    ]


# -- datasets ------------------------------------------------------------------------
def _count_frames(path: Path) -> Optional[int]:
    """Frames of an extended XYZ file of constant size, from its line count."""
    with open(path, "rb") as handle:
        first = handle.readline()
        try:
            n_atoms = int(first.split()[0])
        except (ValueError, IndexError):
            return None
        handle.seek(0)
        lines = sum(
            chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b"")
        )
    if lines % (n_atoms + 2):
        return None
    return lines // (n_atoms + 2)


def _read_frames(path: Path, max_frames: int) -> list:
    """At most ``max_frames`` (>= 2) frames of ``path``, evenly spread, the last one
    kept (where a runaway stopped)."""
    import ase.io

    count = _count_frames(path)
    frames = ase.io.read(path, ":") if count is None else None  # of varying size
    count = len(frames) if frames is not None else count
    step = max(1, math.ceil(count / (max_frames - 1)))
    chosen = frames[::step] if frames is not None else ase.io.read(path, f"::{step}")
    if (count - 1) % step:
        chosen.append(frames[-1] if frames is not None else ase.io.read(path, "-1"))
    return chosen


def read_log(path: Path) -> List[Dict[str, float]]:
    """Rows of an MD ``md_log.csv`` as floats (``nan`` for a missing value); none
    without the file."""
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return [{k: _float(v) for k, v in r.items()} for r in csv.DictReader(handle)]


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def trajectory_dataset(
    run_folder: Path, label: str = "MD run", max_frames: int = MAX_FRAMES
) -> Dict[str, Any]:
    """A small chemiscope dataset of the MD run in ``run_folder``: at most
    ``max_frames`` frames evenly spread (the last one kept: where a runaway stopped),
    positions rounded to 1 mA, per-frame time, temperatures (overall and per
    species), potential and kinetic energy and the change of the conserved energy."""
    import ase
    import chemiscope

    frames = _read_frames(run_folder / MD_FILES["trajectory"], max(2, max_frames))
    log = {int(r["step"]): r for r in read_log(run_folder / MD_FILES["log"])}
    rows = [log.get(int(frame.info.get("step", -1)), {}) for frame in frames]
    n_atoms = len(frames[0])
    first = next(iter(log.values()), {})
    reference = first.get("conserved_eV", math.nan)

    def per_frame(key: str, fallback: Optional[str] = None) -> List[float]:
        values = []
        for frame, row in zip(frames, rows, strict=True):
            value = row.get(key, math.nan)
            if not math.isfinite(value) and fallback is not None:
                value = float(frame.info.get(fallback, math.nan))
            values.append(value)
        return values

    conserved = [
        1000.0 * (value - reference) / n_atoms for value in per_frame("conserved_eV")
    ]
    #: (name, values, units, description) of each property of the frames
    columns = [
        ("time", per_frame("time_fs", "time_fs"), "fs", None),
        ("temperature", per_frame("temperature_K", "temperature_K"), "K", None),
        ("conserved energy change", conserved, "meV/atom", CONSERVED),
        ("potential energy", per_frame("potential_eV", "potential_eV"), "eV", None),
        ("kinetic energy", per_frame("kinetic_eV"), "eV", None),
    ]
    for key in first:
        if key.startswith("temperature_") and key != "temperature_K":
            symbol = key[len("temperature_") : -len("_K")]
            about = f"temperature of the {symbol} atoms"
            columns.append((f"temperature {symbol}", per_frame(key), "K", about))
    properties = {
        name: {"target": "structure", "values": values, "units": units}
        | ({"description": about} if about else {})
        for name, values, units, about in columns
        if any(math.isfinite(v) for v in values)
    }
    structures = [
        ase.Atoms(f.numbers, f.positions, cell=f.cell, pbc=f.pbc) for f in frames
    ]
    y = "conserved energy change" if "conserved energy change" in properties else "time"
    settings: Dict[str, Any] = {
        "map": {
            "x": {"property": "time"},
            "y": {"property": y},
            "color": {"property": "temperature"},
        }
    }
    dataset = chemiscope.create_input(
        structures=structures,
        properties=properties,
        settings=settings,
        metadata={
            "name": label,
            "description": (
                f"{len(frames)} frames of {run_folder.name} "
                f"({n_atoms} atoms), evenly spread over the run"
            ),
        },
    )
    for structure in dataset["structures"]:  # 1 mA is plenty for a picture
        for axis in ("x", "y", "z"):
            structure[axis] = [round(float(v), 3) for v in structure[axis]]
        if "cell" in structure:
            structure["cell"] = [float(v) for v in structure["cell"]]
    return dataset


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
        text = json.dumps(trajectory_dataset(folder / path, label))
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

"""Reading the models' results of a standard report (``report.json``'s ``models``)
and the chemiscope datasets its viewers show (:mod:`metatrain_nc.reports.viewer`)."""

from typing import Any, Dict, Iterator, List, Tuple

from ..antisymmetry.outputs import FILES as LAMBDA_FILES
from ..reports.viewer import Entry


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
    """``(model, head or mode, folder)`` of every result of ``section`` with one."""
    for name, key, result in section_items(data, section):
        if "folder" in result:
            yield name, key, result["folder"]


def lambda_entries(data: Dict[str, Any]) -> List[Entry]:
    """The antisymmetry datasets of every model and head, direct heads first."""
    found = sorted(_folders(data, "antisymmetry"), key=lambda f: f[1] != "direct")
    return [
        (f"{name}, {head} forces", "lambda", f"{path}/{LAMBDA_FILES['chemiscope']}")
        for name, head, path in found
    ]


#: MD sections of the report and their ensemble labels
MD_SECTIONS = (("nve", "NVE"), ("nvt", "NVT (SVR)"))


def md_entries(data: Dict[str, Any]) -> List[Entry]:
    """The MD runs of every model (NVE, then NVT), direct-forces NVE runs first."""
    nvt = [(r["model"], r["mode"], r["folder"]) for r in data.get("nvt", [])]
    found = [
        (rank, ensemble, *folder)
        for rank, (section, ensemble) in enumerate(MD_SECTIONS)
        if section in data["settings"]["stages"]
        for folder in (nvt if section == "nvt" else _folders(data, section))
    ]
    found.sort(key=lambda f: (f[0], f[3] != "direct"))
    return [
        (f"{name}, {mode} forces, {ensemble}", "trajectory", path)
        for _, ensemble, name, mode, path in found
    ]

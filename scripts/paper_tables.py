"""Run (or continue) the paper protocol on the shipped water models.

`mtt-nc compare --protocol paper` with PET-C, PET-NC and PET-M on the test split of
their data set, in parts that each resume from the units already done (hours of CPU
in all: run it in the background, stop it any time, run it again to continue):

1. NVT under SVR tau 10 fs, every force mode (the equipartition finding);
2. gas-phase relaxations (molecules cut out of the test structures, 1e-5 eV/A);
3. NVT under Langevin tau 1000, 100 and 10 fs;
4. bulk relaxations (1e-4 eV/A).

Two presets: ``chgnet`` (default) is the models after active learning
(recipes/water_chgnet_al2/pretrained/) on the CHGNet-labelled test split, 5 ps
analysed, MTS stride 8 (the paper's outer 4 fs) -> docs/paper_run_chgnet/ and
docs/paper_tables.md; ``toy`` is the first demo models (recipes/demo/pretrained/,
32 frames of the bundled water) -> docs/paper_run/ and docs/paper_tables_toy.md.
Any option given explicitly overrides the preset.

The units (<out>/units/*.json) and the report are committed; the MD folders
(<out>/runs/, trajectories) are not.

    python scripts/paper_tables.py            # every part, in order
    python scripts/paper_tables.py --part 1   # one part
    python scripts/paper_tables.py --doc      # only refresh the document

After the parts, the generated part of the document (between its GENERATED markers:
the report's tables, figures and cost) is replaced by the current report; the
discussion around it is kept.
"""

import argparse
import signal
import subprocess
import sys
from pathlib import Path

import ase.io

from metatrain_nc.cli_options import add_options, option, switch

ROOT = Path(__file__).resolve().parents[1]
TOY_MODELS = ROOT / "recipes" / "demo" / "pretrained"
DATA = ROOT / "recipes" / "data" / "water_64h2o_40frames.xyz"
OUT = Path("docs") / "paper_run_chgnet"
DOC = ROOT / "docs" / "paper_tables.md"
BEGIN, END = "<!-- BEGIN GENERATED -->", "<!-- END GENERATED -->"
TEST = Path("docs") / "paper_run_inputs" / "water_test_split.xyz"
#: the models, by their checkpoint names, and their labels in the report
NAMES = {"pet_c": "PET-C", "pet_nc": "PET-NC", "pet_m": "PET-M"}

#: defaults of each preset (an option given on the command line wins)
PRESETS = {
    "chgnet": {
        "models": "recipes/water_chgnet_al2/pretrained",
        "structures": "recipes/data/water_chgnet/test.xyz.gz",
        "stride": "8",
        "nvt_time": "5000",
        "out": "docs/paper_run_chgnet",
        "doc_file": "docs/paper_tables.md",
    },
    "toy": {
        "models": "recipes/demo/pretrained",
        "structures": None,  # the demo's test split of the 40-frame water
        "stride": "2",
        "nvt_time": "1000",
        "out": "docs/paper_run",
        "doc_file": "docs/paper_tables_toy.md",
    },
}

#: the protocol's settings, the same for every part (a resume checks them)
SETTINGS = [
    "--timestep", "0.5",
    "--equilibration", "500",
    "--equilibration-thermostat", "same",
    "--gas-structures", "20",
    "--relax-structures", "2",
    "--seed", "0",
]  # fmt: skip
PARTS = {
    1: ["--parts", "nvt", "--thermostats", "svr:10"],
    2: ["--parts", "gas"],
    3: ["--parts", "nvt", "--thermostats", "langevin:1000,langevin:100,langevin:10"],
    4: ["--parts", "bulk"],
}


def test_split() -> Path:
    """The demo's test structures (recipes/demo/pretrained/test_indices.txt)."""
    target = ROOT / TEST
    if not target.exists():
        frames = ase.io.read(DATA, ":")
        indices = (TOY_MODELS / "test_indices.txt").read_text().split()
        target.parent.mkdir(parents=True, exist_ok=True)
        ase.io.write(target, [frames[int(i)] for i in indices], format="extxyz")
    return TEST


def refresh_doc() -> None:
    """Put the report (docs/paper_run/report.md) between the markers of the doc, its
    headings one level down and its figures linked from docs/."""
    report = (ROOT / OUT / "report.md").read_text()
    lines = []
    for line in report.splitlines():
        if line.startswith("#"):
            line = "#" + line
        line = line.replace("](table", f"]({OUT.name}/table")
        lines.append(line)
    text = DOC.read_text()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    DOC.write_text(head + BEGIN + "\n" + "\n".join(lines) + "\n" + END + tail)
    print(f"[paper_tables] refreshed {DOC.relative_to(ROOT)}")


def main() -> int:
    global OUT, DOC
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_options(
        parser,
        (
            option("--part", type=int, choices=sorted(PARTS), action="append"),
            switch("--doc", "only refresh the document (--doc-file)"),
            option(
                "--preset",
                choices=sorted(PRESETS),
                default="chgnet",
                help="chgnet: the models after active learning (docs/paper_run_chgnet);"
                " toy: the first demo models (docs/paper_run)",
            ),
            option(
                "--models",
                help="folder with pet_c.ckpt, pet_nc.ckpt and pet_m.ckpt",
            ),
            option("--structures", help="test structures"),
            option(
                "--checkpoint",
                action="append",
                default=[],
                metavar="NAME=PATH",
                help="a checkpoint for one model from another folder than --models, "
                "e.g. pet_c=recipes/water_chgnet_al2/pretrained/pet_c.ckpt",
            ),
            option(
                "--only-models",
                default="pet_c,pet_nc,pet_m",
                help="comma-separated subset of pet_c, pet_nc, pet_m to compare",
            ),
            option("--stride", help="MTS stride (chgnet 8, toy 2)"),
            option("--nvt-time", help="analysed NVT time, fs (chgnet 5000, toy 1000)"),
            option(
                "--modes",
                help="force modes to run (default: every mode of each model), e.g. "
                "mts with another --stride and --out",
            ),
            option("--out", help="run folder"),
            option("--doc-file", help="document to refresh"),
        ),
    )
    args = parser.parse_args()
    for key, value in PRESETS[args.preset].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    OUT, DOC = Path(args.out), ROOT / args.doc_file
    if args.doc:
        refresh_doc()
        return 0
    structures = args.structures or test_split()
    chosen = args.only_models.split(",")
    unknown = [m for m in chosen if m not in NAMES]
    if unknown:
        sys.exit(f"[paper_tables] unknown --only-models {unknown}: choose from {NAMES}")
    paths = {m: f"{args.models}/{m}.ckpt" for m in NAMES}
    for item in args.checkpoint:
        name, _, path = item.partition("=")
        if name not in NAMES or not path:
            sys.exit(
                f"[paper_tables] --checkpoint {item!r}: give NAME=PATH, NAME in {NAMES}"
            )
        paths[name] = path
    models = [paths[m] for m in chosen]
    missing = [m for m in models if not (ROOT / m).is_file()]
    if missing:
        sys.exit(f"[paper_tables] missing checkpoint(s) {missing}: train them first")
    names = ",".join(NAMES[m] for m in chosen)
    settings = SETTINGS + ["--stride", args.stride, "--nvt-time", args.nvt_time]
    if args.modes:
        settings += ["--modes", args.modes]
    mtt_nc = str(Path(sys.executable).parent / "mtt-nc")
    for part in args.part or sorted(PARTS):
        command = [mtt_nc, "compare", *models, "--names", names]
        command += ["--structures", str(structures), "--protocol", "paper"]
        command += settings + PARTS[part] + ["-o", str(OUT)]
        if (ROOT / OUT / "protocol.json").exists():
            command.append("--resume")
        print(f"[paper_tables] part {part}: {' '.join(command[1:])}", flush=True)
        status = run_child(command)
        if status != 0:
            print(f"[paper_tables] part {part} exited with {status}", flush=True)
            return status
        if DOC.exists():
            refresh_doc()
    return 0


def run_child(command) -> int:
    """Run ``command`` in the repository and return its exit status; a SIGTERM to
    this script is passed on to it (``kill`` of the script stops the compare run,
    which resumes from its finished units), instead of leaving it running alone."""
    child = subprocess.Popen(command, cwd=ROOT)
    previous = signal.signal(signal.SIGTERM, lambda *_: child.terminate())
    try:
        return child.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())

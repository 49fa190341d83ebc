"""Shared fixtures: tiny pet_nc / pet_m models trained by the real, unmodified ``mtt``.

Training happens once per test session, in subprocesses (exactly as a user runs
``mtt train``), on a few frames of the bundled data with tiny hypers. Under
pytest-xdist (``scripts/test.sh`` runs two workers) the workers share one training of
each tiny model (:func:`shared`), and the slowest test files start first.
"""

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Dict, List, Optional

import ase.io
import pytest
import yaml
from filelock import FileLock

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "recipes" / "data"
ETHANOL = DATA / "ethanol_100_eV.xyz"
WATER = DATA / "water_64h2o_40frames.xyz"

TINY_MODEL = {
    "d_pet": 8,
    "d_head": 8,
    "d_node": 8,
    "d_feedforward": 8,
    "num_heads": 1,
    "num_gnn_layers": 1,
    "num_attention_layers": 1,
}


def mtt_executable() -> str:
    """The ``mtt`` script of the interpreter running the tests."""
    candidate = Path(sys.executable).parent / "mtt"
    return str(candidate) if candidate.exists() else "mtt"


def run_mtt(
    args: List[str], cwd: Path, check: bool = True
) -> subprocess.CompletedProcess:
    """Run the unmodified ``mtt`` in a fresh interpreter; fail with its output."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "2")
    result = subprocess.run(
        [mtt_executable(), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"`mtt {' '.join(args)}` failed ({result.returncode}):\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


def write_frames(source: Path, destination: Path, count: int) -> Path:
    """Copy the first ``count`` frames of ``source`` to ``destination``."""
    frames = ase.io.read(source, f":{count}")
    ase.io.write(destination, frames, format="extxyz")
    return destination


def write_options(
    path: Path,
    architecture: str,
    data: str,
    *,
    epochs: int = 2,
    stress: bool = False,
    model: Optional[Dict[str, Any]] = None,
    training: Optional[Dict[str, Any]] = None,
    energy: Optional[Dict[str, Any]] = None,
) -> Path:
    """Write a stock-``pet``-style options file for ``architecture``."""
    energy_target: Dict[str, Any] = {"key": "energy", "unit": "eV"}
    energy_target["forces"] = {"key": "forces"}
    energy_target["stress"] = {"key": "stress"} if stress else False
    if energy is not None:
        energy_target.update(energy)
    options = {
        "seed": 0,
        "architecture": {
            "name": architecture,
            "model": dict(TINY_MODEL, **(model or {})),
            "training": dict(
                {
                    "batch_size": 4,
                    "num_epochs": epochs,
                    "num_workers": 0,
                    "log_interval": 1,
                    "checkpoint_interval": 1000,
                },
                **(training or {}),
            ),
        },
        "training_set": {
            "systems": {"read_from": data, "length_unit": "angstrom"},
            "targets": {"energy": energy_target},
        },
        "validation_set": 0.2,
        "test_set": 0.0,
    }
    path.write_text(yaml.safe_dump(options, sort_keys=False))
    return path


def add_direct_force_target(options_file: Path) -> None:
    """Add an explicit ``non_conservative_force`` target (the ``forces`` labels) to
    ``options_file``, as a user of stock ``pet`` would for a hand-made hybrid."""
    options = yaml.safe_load(options_file.read_text())
    options["training_set"]["targets"]["non_conservative_force"] = {
        "key": "forces",
        "quantity": "force",
        "unit": "eV/A",
        "sample_kind": "atom",
        "type": {"cartesian": {"rank": 1}},
    }
    options_file.write_text(yaml.safe_dump(options))


def train_tiny(
    workdir: Path, architecture: str, data: Path, **kwargs: Any
) -> SimpleNamespace:
    """Train with ``mtt train`` in ``workdir``; return the produced files."""
    workdir.mkdir(parents=True, exist_ok=True)
    local = workdir / data.name
    if not local.exists():
        shutil.copy(data, local)
    write_options(workdir / "options.yaml", architecture, data.name, **kwargs)
    run = run_mtt(["train", "options.yaml"], cwd=workdir)
    return SimpleNamespace(
        workdir=workdir,
        checkpoint=workdir / "model.ckpt",
        exported=workdir / "model.pt",
        data=local,
        log=run.stdout + run.stderr,
    )


def shared(tmp_path_factory, name: str, build: Callable[[Path], Any]) -> Any:
    """``build(folder)``, once per test run: pytest-xdist workers share the result
    (it must pickle), the first one builds it while the others wait. Without xdist,
    a plain session-scoped ``build``."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return build(tmp_path_factory.mktemp(name))
    root = tmp_path_factory.getbasetemp().parent / "shared"
    root.mkdir(exist_ok=True)
    result = root / f"{name}.pickle"
    with FileLock(str(root / f"{name}.lock")):
        if result.exists():
            return pickle.loads(result.read_bytes())
        folder = root / name
        if folder.exists():  # a worker that failed building it: start again
            shutil.rmtree(folder)
        value = build(folder)
        result.write_bytes(pickle.dumps(value))
        return value


#: test files that take minutes, started first so that the two xdist workers finish
#: together (``--dist loadfile --no-loadscope-reorder`` hands out files in collection
#: order)
SLOW_FILES = (
    "tests/test_demo.py",
    "tests/architectures/test_metatrain_suites.py",
    "tests/compare/test_compare.py",
    "tests/test_registration.py",
    "tests/dynamics/test_trained.py",
    "tests/distill/test_command.py",
    "tests/architectures/test_finetune_across_periodicity.py",
    "tests/architectures/test_stored_checkpoints.py",
)


def pytest_collection_modifyitems(session, config, items):
    def rank(item) -> int:
        path = item.nodeid.split("::")[0]
        return SLOW_FILES.index(path) if path in SLOW_FILES else len(SLOW_FILES)

    items.sort(key=rank)  # stable: the order within and among the others is kept


@pytest.fixture(scope="session")
def ethanol_frames(tmp_path_factory) -> Path:
    """20 ethanol frames in eV (energy, forces), non-periodic."""
    return write_frames(ETHANOL, tmp_path_factory.mktemp("data") / "ethanol.xyz", 20)


@pytest.fixture(scope="session")
def water_frames(tmp_path_factory) -> Path:
    """4 frames of periodic bulk water with energy, forces and stress."""
    return write_frames(WATER, tmp_path_factory.mktemp("data") / "water.xyz", 4)


def _tiny_on_ethanol(architecture: str):
    """The session fixture ``tiny_<architecture>``: a tiny model of that architecture
    trained by ``mtt train`` on ethanol (checkpoint, exported)."""

    def fixture(tmp_path_factory, ethanol_frames) -> SimpleNamespace:
        return shared(
            tmp_path_factory,
            architecture,
            lambda folder: train_tiny(folder, architecture, ethanol_frames),
        )

    fixture.__doc__ = (
        f"A tiny ``{architecture}`` trained by ``mtt train`` on ethanol (checkpoint, "
        "exported)."
    )
    return pytest.fixture(scope="session", name=f"tiny_{architecture}")(fixture)


tiny_pet_nc = _tiny_on_ethanol("pet_nc")
tiny_pet_m = _tiny_on_ethanol("pet_m")


@pytest.fixture(scope="session")
def tiny_pet_nc_periodic(tmp_path_factory, water_frames) -> SimpleNamespace:
    """A tiny ``pet_nc`` trained on periodic water with stress labels."""
    return shared(
        tmp_path_factory,
        "pet_nc_water",
        lambda folder: train_tiny(
            folder,
            "pet_nc",
            water_frames,
            stress=True,
            epochs=1,
            training={"batch_size": 2},
        ),
    )


@pytest.fixture(scope="session")
def tiny_pet_nc_atom_head(tmp_path_factory, ethanol_frames) -> SimpleNamespace:
    """A one-epoch ``pet_nc`` with the ``atom`` direct head, a checkpoint every epoch
    and the stochastic lambda estimate (2 structures, 4 probes) at each checkpoint
    and at the end: one training for the tests of either feature."""
    return shared(
        tmp_path_factory,
        "pet_nc_atom_head",
        lambda folder: train_tiny(
            folder,
            "pet_nc",
            ethanol_frames,
            epochs=1,
            model={"direct_force_head": "atom"},
            training={
                "checkpoint_interval": 1,
                "lambda_estimate": {
                    "structures": 2,
                    "exact_max_atoms": 0,  # every structure stochastic
                    "probes": 4,
                    "every_checkpoints": 1,
                },
            },
        ),
    )

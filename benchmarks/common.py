"""Shared helpers for the benchmarks: untrained default-size models, timing (wall
clock with GPU synchronisation, from the package's timing module,
:mod:`metatrain_nc.force_models.timing`)."""

import statistics
from pathlib import Path
from typing import Callable, Dict, List

import ase.io
import torch
from metatrain.utils.architectures import get_default_hypers, import_architecture
from metatrain.utils.data import DatasetInfo
from metatrain.utils.data.target_info import get_energy_target_info

ROOT = Path(__file__).resolve().parents[1]
WATER = ROOT / "recipes" / "data" / "water_64h2o_40frames.xyz"


def water_frames(count: int = 1) -> List[ase.Atoms]:
    """The first ``count`` frames of the bundled 192-atom water box."""
    return ase.io.read(WATER, f":{count}")


def default_model(architecture: str, periodic: bool = True, **hypers):
    """A default-size, untrained model of ``architecture`` for water (the weights do
    not change the cost)."""
    energy = get_energy_target_info(
        "energy",
        {"unit": "eV"},
        add_position_gradients=True,
        add_strain_gradients=periodic,
    )
    info = DatasetInfo("angstrom", [1, 8], {"energy": energy})
    model_hypers = get_default_hypers(architecture)["model"]
    model_hypers.update(hypers)
    torch.manual_seed(0)
    model = import_architecture(architecture).__model__(model_hypers, info)
    return model.to(torch.float32).eval()


def export(model, path: Path) -> Path:
    """Export ``model`` to TorchScript at ``path``."""
    model.export().save(str(path))
    return path


def median_time(function: Callable[[], object], repeat: int, warmup: int = 2) -> float:
    """Median wall time of ``function()`` in seconds over ``repeat`` calls
    (:func:`~metatrain_nc.force_models.timing.wall_seconds`: GPU work included).
    A ``function`` that evaluates an ASE calculator must move the atoms itself
    (calculators return stored results for unchanged positions); force models are
    best timed with :func:`~metatrain_nc.force_models.timing.time_force_model`."""
    from metatrain_nc.force_models.timing import wall_seconds

    for _ in range(warmup):
        function()
    return statistics.median(wall_seconds(function) for _ in range(repeat))


def interleaved_medians(
    calls: Dict[str, Callable[[], object]], repeat: int
) -> Dict[str, float]:
    """Median wall time (s) of each of ``calls`` over ``repeat`` rounds, each round
    timing every call once after one warm-up call (:func:`median_time`), in turn:
    a change of the machine's load hits all of them alike."""
    rounds: Dict[str, List[float]] = {name: [] for name in calls}
    for _ in range(repeat):
        for name, call in calls.items():
            rounds[name].append(median_time(call, 1, warmup=1))
    return {name: float(statistics.median(times)) for name, times in rounds.items()}


def print_table(title: str, rows: List[Dict[str, str]]) -> None:
    """Print rows (dicts with the same keys) as an aligned table."""
    print(f"\n{title}")
    keys = list(rows[0])
    widths = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in keys}
    print("  ".join(k.ljust(widths[k]) for k in keys))
    for row in rows:
        print("  ".join(str(row[k]).ljust(widths[k]) for k in keys))

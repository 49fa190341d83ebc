"""The published numbers set beside ours (Bigi, Langer, Ceriotti, ICML 2025).

Table 2 (bulk water, 300 K): deviation of the mean temperature from the target, in
K, overall / H / O, per force mode and thermostat; PET conservative forces are PET-C,
direct forces PET-NC, ``mts`` PET-M with multiple time stepping (M = 8).
Table 7: per cent of L-BFGS relaxations converged within 1000 steps (1e-5 eV/A for
the gas phase, 1e-4 eV/A for the liquid).
"""

from typing import Dict, Optional, Tuple

#: (mode, ensemble, tau in fs) -> (overall, H, O) deviations in K
TABLE_2: Dict[Tuple[str, str, float], Tuple[float, float, float]] = {
    ("conservative", "langevin", 100.0): (0.1, 0.0, 0.3),
    ("direct", "langevin", 1000.0): (12.8, 11.2, 16.2),
    ("direct", "langevin", 100.0): (1.4, 1.3, 1.6),
    ("direct", "langevin", 10.0): (0.1, 0.0, 0.2),
    ("conservative", "svr", 10.0): (0.1, -0.4, 1.0),
    ("direct", "svr", 10.0): (0.3, -4.4, 9.9),
    ("mts", "svr", 10.0): (0.0, -0.1, 0.1),
}

#: Langevin tau (fs) -> how much slower diffusion is than without local friction
DIFFUSION_SLOWDOWN: Dict[float, float] = {100.0: 1.5, 10.0: 5.0}

#: (head, phase) -> per cent of L-BFGS relaxations converged
TABLE_7: Dict[Tuple[str, str], float] = {
    ("direct", "gas"): 75.0,
    ("conservative", "gas"): 83.0,
    ("direct", "bulk"): 52.0,
    ("conservative", "bulk"): 58.0,
}


def table_2(mode: str, ensemble: str, tau_fs: float) -> Optional[str]:
    """The paper's deviations for a run, as ``"overall / H / O"`` (or ``None``)."""
    numbers = TABLE_2.get((mode, ensemble, float(tau_fs)))
    if numbers is None:
        return None
    return " / ".join(f"{value:+.1f}" for value in numbers)


def table_7(head: str, phase: str, optimizer: str) -> Optional[str]:
    """The paper's L-BFGS success rate for a head and phase (``None`` for FIRE)."""
    if optimizer != "LBFGS":
        return None
    value = TABLE_7.get((head, phase))
    return None if value is None else f"{value:.0f}%"

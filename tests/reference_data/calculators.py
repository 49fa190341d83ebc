"""Real ASE calculators (EMT) as ``module:callable`` references for the builder tests,
and two that fail the way real references can."""

import numpy as np
from ase.calculators.emt import EMT


def emt():
    """ASE's EMT: a real, fast potential (energy, forces, stress)."""
    return EMT()


class NaNForces(EMT):
    """EMT whose forces are NaN: a reference that breaks silently."""

    def calculate(self, *args, **kwargs):
        super().calculate(*args, **kwargs)
        self.results["forces"] = np.full_like(self.results["forces"], np.nan)


def nan_forces():
    return NaNForces()


class Refusing(EMT):
    """EMT that refuses every structure, as a reference refusing a structure does."""

    def calculate(self, *args, **kwargs):
        raise RuntimeError("this reference refuses the structure")


def refusing():
    return Refusing()


class Interrupting(EMT):
    """EMT that raises KeyboardInterrupt (a Ctrl-C) at its ``after``-th call."""

    after = 10

    def __init__(self):
        super().__init__()
        self.calls = 0

    def calculate(self, *args, **kwargs):
        self.calls += 1
        if self.calls == Interrupting.after:
            raise KeyboardInterrupt
        super().calculate(*args, **kwargs)


def interrupting():
    return Interrupting()

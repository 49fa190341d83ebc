"""Real ASE calculators (EMT) that fail the ways real ones do, or take a known time,
importable as ``module:callable`` (``tests.bad_calculators:nan_forces``) by the
command-line tests.

Units: energies in eV, forces in eV/A, stress in eV/A^3, times in s.
"""

import time

import numpy as np
from ase.calculators.emt import EMT

#: seconds :class:`Sleeping` waits per call
SLEEP_S = 0.05


class NaNForces(EMT):
    """EMT whose forces are NaN."""

    def calculate(self, *args, **kwargs):
        super().calculate(*args, **kwargs)
        self.results["forces"] = np.full_like(self.results["forces"], np.nan)


class NaNEnergy(EMT):
    """EMT whose energy is NaN (forces fine)."""

    def calculate(self, *args, **kwargs):
        super().calculate(*args, **kwargs)
        self.results["energy"] = np.nan
        self.results["free_energy"] = np.nan


class NaNStress(EMT):
    """EMT whose stress is NaN (energy and forces fine)."""

    def calculate(self, *args, **kwargs):
        super().calculate(*args, **kwargs)
        if "stress" in self.results:
            self.results["stress"] = np.full(6, np.nan)


class NaNAfter(EMT):
    """EMT whose forces turn NaN from its ``after``-th call on (a model that breaks
    down during a run)."""

    after = 6

    def __init__(self):
        super().__init__()
        self.calls = 0

    def calculate(self, *args, **kwargs):
        super().calculate(*args, **kwargs)
        self.calls += 1
        if self.calls >= self.after:
            self.results["forces"] = np.full_like(self.results["forces"], np.inf)


class RefusingAfter(EMT):
    """EMT that raises from its ``after``-th call on, as a calculator refusing a
    structure does (``after = 1``: every call)."""

    after = 1

    def __init__(self):
        super().__init__()
        self.calls = 0

    def calculate(self, atoms=None, *args, **kwargs):
        self.calls += 1
        if self.calls >= self.after:
            raise RuntimeError("this calculator only takes periodic structures")
        super().calculate(atoms, *args, **kwargs)


class Sleeping(EMT):
    """EMT that takes :data:`SLEEP_S` more seconds per call (asleep: no CPU time),
    and counts the calls that really compute."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def calculate(self, *args, **kwargs):
        self.calls += 1
        time.sleep(SLEEP_S)
        super().calculate(*args, **kwargs)


def nan_forces():
    return NaNForces()


def nan_energy():
    return NaNEnergy()


def nan_stress():
    return NaNStress()


def nan_after():
    return NaNAfter()


def refusing():
    return RefusingAfter()


def refusing_later():
    calculator = RefusingAfter()
    calculator.after = 6
    return calculator


def sleeping():
    return Sleeping()

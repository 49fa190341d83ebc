"""Thermostat half-steps of the batched MTS integrator, one per system.

:class:`LangevinThermostat` and :class:`SVRThermostat` (Bussi) act on the momenta of
an :class:`~.integrator.MTSState` for a time ``dt`` and return the kinetic energy
they took out of each system (eV), which :func:`~.integrator.mts_step` accumulates
into the conserved energy. Each system draws its noise from its own generator
(``state.generators``), so a batch runs exactly as its systems would one at a time.
"""

import math
from typing import TYPE_CHECKING, Sequence, Union

import torch

from ..errors import UserInputError
from .states import kinetic_energy, n_systems, system_sizes

if TYPE_CHECKING:
    from .integrator import MTSState


class Thermostat:
    """Per-system thermostat half-step: ``apply(state, dt)`` changes
    ``state.md.momenta`` and returns the kinetic energy taken out of each system."""

    name = "nve"
    momentum_conserved = True

    def __init__(self, kT: Union[float, torch.Tensor], tau: float):
        if not float(tau) > 0:
            raise UserInputError(f"the thermostat needs tau > 0, got {tau}")
        self.kT = kT
        self.tau = float(tau)

    def target(self, state: "MTSState") -> torch.Tensor:
        """``kT`` per system (eV)."""
        md = state.md
        kT = torch.as_tensor(
            self.kT, dtype=md.positions.dtype, device=md.positions.device
        )
        if kT.dim() == 0:
            kT = kT.expand(n_systems(md))
        elif state.systems is not None and kT.shape[0] != n_systems(md):
            kT = kT[state.systems]  # per-replica targets of a shrunk batch
        if not bool((kT > 0).all()):
            raise UserInputError("the thermostat target kT must be > 0")
        return kT

    def apply(self, state: "MTSState", dt: float) -> torch.Tensor:
        raise NotImplementedError


class LangevinThermostat(Thermostat):
    """``p <- c p + sqrt((1 - c^2) m kT) xi`` per atom, ``c = exp(-dt / tau)``."""

    name = "langevin"
    momentum_conserved = False

    def apply(self, state: "MTSState", dt: float) -> torch.Tensor:
        md = state.md
        before = kinetic_energy(md)
        c = math.exp(-dt / self.tau)
        kT = self.target(state)[md.system_idx]
        sigma = torch.sqrt((1.0 - c * c) * kT * md.masses)[:, None]
        noise = _normal(state, md.momenta.shape[1:])
        md.momenta = c * md.momenta + sigma * noise
        return before - kinetic_energy(md)


class SVRThermostat(Thermostat):
    """Bussi stochastic velocity rescaling, one factor per system (the kinetic
    energy of each system follows the canonical distribution)."""

    name = "svr"

    def apply(self, state: "MTSState", dt: float) -> torch.Tensor:
        md = state.md
        kinetic = kinetic_energy(md)
        ndof = state.ndof
        c = math.exp(-dt / self.tau)
        per_dof = 0.5 * self.target(state)
        draws = [
            torch.randn(int(n), generator=g, dtype=kinetic.dtype, device=g.device)
            for n, g in zip(ndof.tolist(), state.generators, strict=True)
        ]
        r1 = torch.stack([d[0] for d in draws]).to(kinetic.device)
        rest = torch.stack([(d[1:] ** 2).sum() for d in draws]).to(kinetic.device)
        new = (
            c * kinetic
            + (1.0 - c) * per_dof * (r1 * r1 + rest)
            + 2.0 * r1 * torch.sqrt(c * (1.0 - c) * kinetic * per_dof)
        )
        safe = torch.where(kinetic > 0, kinetic, torch.ones_like(kinetic))
        scale = torch.sqrt(new.clamp(min=0.0) / safe)
        flip = r1 + torch.sqrt(c * kinetic / ((1.0 - c) * per_dof + 1e-300)) < 0.0
        scale = torch.where(flip, -scale, scale)
        scale = torch.where(kinetic > 0, scale, torch.ones_like(scale))
        md.momenta = md.momenta * scale[md.system_idx][:, None]
        return torch.where(kinetic > 0, kinetic - new, torch.zeros_like(kinetic))


def _normal(state: "MTSState", shape: Sequence[int]) -> torch.Tensor:
    """Standard normal noise per atom, each system from its own generator."""
    md = state.md
    parts = [
        torch.randn(
            (size, *shape), generator=g, dtype=md.momenta.dtype, device=g.device
        )
        for size, g in zip(system_sizes(md), state.generators, strict=True)
    ]
    return torch.cat(parts).to(md.momenta.device)

"""Multiple time stepping (r-RESPA) for torch-sim, as init / step functions.

The batched twin of :class:`metatrain_nc.dynamics.MultipleTimeStep`, in torch-sim's
style: ``state = mts_init(sim_state, split, ...)`` computes the forces of the start,
then ``state = mts_step(state, split, dt=dt, stride=M)`` advances every system of the
batch by one outer step ``dt`` made of ``M`` inner velocity-Verlet steps of
``dt / M``. ``split`` is a force split (:mod:`.splits`), with the names of the ASE
protocol (:mod:`metatrain_nc.force_models.force_split`): ``fast`` / ``slow`` /
``both``, ``fast_head`` / ``slow_head``, ``splits`` and the force ``mode``:

- ``mode="mts"``: inner steps with the fast (direct) forces; the outer level kicks
  with ``F_slow - F_fast`` for ``dt / 2`` at both ends. The last inner evaluation of
  an outer step is ``split.both``: one forward and one backward pass for a hybrid
  model (``M`` forward passes and one backward pass per outer step). With
  ``stride=1`` this is velocity Verlet with the slow forces;
- ``mode="conservative"`` / ``"direct"``: ``split.splits`` is false: velocity Verlet
  at ``dt / M`` with the one force kind, no correction kicks (the three modes run
  the same steps over the same time).

Thermostats (:class:`LangevinThermostat`, :class:`SVRThermostat`) act for ``dt / 2``
before and after the outer step, per system, as in the ASE integrator; the kinetic
energy they take out is accumulated per system into the conserved energy. Each
system draws its noise from its own generator (seeded ``seed + k``), so a batch runs
exactly as its systems would one at a time.

Units are torch-sim's (ASE's): A, eV, amu, ``dt`` and ``tau`` in
``torch_sim.units.MetalUnits.time / 1000`` per fs (``ase.units.fs``), ``kT`` in eV.
Positions are not wrapped into the cell (as in ASE; the neighbour lists do not need
it). The direct forces have their mean removed per system (by the split).

A system whose positions, momenta or forces become non-finite does not poison the
others: the split is called on the healthy systems only (and system by system when a
batched call fails), the sick ones get NaN forces, and :func:`runaway_systems` names
them after the step, so that the caller can drop them (:func:`select`).
"""

import math
from dataclasses import dataclass, field
from typing import List, Optional

import torch

from ..errors import UserInputError
from ..force_models.names import CONSERVATIVE, DIRECT, FORCE_MODES
from .splits import ForceBatch
from .states import (
    finite_systems,
    kinetic_energy,
    md_state,
    n_systems,
    per_system_sum,
    select_systems,
    system_sizes,
)
from .thermostats import LangevinThermostat, SVRThermostat, Thermostat

MTS = "mts"


@dataclass
class MTSState:
    """The batch under multiple time stepping.

    :ivar md: torch-sim's ``MDState``: positions, momenta, masses, cell,
        ``system_idx``; ``energy`` (per system) and ``forces`` are the slow forces
        (the split's ``slow_head``: the direct ones in ``"direct"`` mode), as
        torch-sim's integrators keep them.
    :ivar direct: the fast (direct) forces at the current positions, or ``None``.
    :ivar forces: the force mode: ``"mts"``, ``"conservative"`` or ``"direct"``.
    :ivar thermostat: the thermostat, or ``None`` (NVE).
    :ivar thermostat_energy: kinetic energy taken out by the thermostat per system.
    :ivar ndof: kinetic degrees of freedom per system (``3N - 3``, or ``3N`` with a
        Langevin thermostat).
    :ivar generators: one ``torch.Generator`` per system (thermostat noise).
    :ivar nsteps: outer steps done.
    :ivar systems: the original index of each system of the batch (after
        :func:`select` dropped some).
    """

    md: object
    direct: Optional[torch.Tensor]
    forces: str
    thermostat: Optional[Thermostat]
    thermostat_energy: torch.Tensor
    ndof: torch.Tensor
    generators: List[torch.Generator]
    nsteps: int = 0
    systems: Optional[torch.Tensor] = field(default=None)

    @property
    def n_systems(self) -> int:
        return n_systems(self.md)

    @property
    def conservative(self) -> Optional[torch.Tensor]:
        """The slow forces at the current positions (``None`` for ``direct``)."""
        return None if self.forces == DIRECT else self.md.forces

    def kinetic_energy(self) -> torch.Tensor:
        return kinetic_energy(self.md)

    def temperature_kT(self) -> torch.Tensor:
        """``2 K / n_dof`` per system (eV; divide by ``ase.units.kB`` for K)."""
        return 2.0 * self.kinetic_energy() / self.ndof.to(self.md.momenta.dtype)

    def conserved_energy(self) -> torch.Tensor:
        """``E_pot + E_kin + energy taken by the thermostat`` per system (eV)."""
        return self.md.energy + self.kinetic_energy() + self.thermostat_energy


def mts_init(
    state,
    split,
    *,
    forces: Optional[str] = None,
    thermostat: Optional[Thermostat] = None,
    seed: int = 0,
    momenta: Optional[torch.Tensor] = None,
) -> MTSState:
    """The start of MTS dynamics: forces of ``state`` (a torch-sim ``SimState`` or
    ``MDState``) from ``split``.

    :param split: a force split (:mod:`.splits`); its ``mode`` is the force mode.
    :param forces: compatibility: a force mode other than the split's
        (``"mts"``, ``"conservative"`` or ``"direct"``) runs the split's
        ``with_mode(forces)`` twin (same models); default: ``split.mode``.
    :param thermostat: :class:`LangevinThermostat`, :class:`SVRThermostat` or
        ``None`` (NVE).
    :param seed: system ``k`` draws its thermostat noise from a generator seeded
        ``seed + k``.
    :param momenta: initial momenta (amu A / time unit); default: the state's own,
        else zero.
    """
    mode = getattr(split, "mode", MTS) if forces is None else forces
    if mode not in FORCE_MODES:
        raise UserInputError(
            f"unknown force mode '{mode}'; choose one of {list(FORCE_MODES)}"
        )
    split = _in_mode(split, mode)
    if momenta is None:
        momenta = getattr(state, "momenta", None)
    if momenta is None:
        momenta = torch.zeros_like(state.positions)
    count = n_systems(state)
    md = md_state(
        state,
        momenta.to(state.positions),
        torch.zeros(count, dtype=state.positions.dtype, device=state.positions.device),
        torch.zeros_like(state.positions),
    )
    sizes = torch.tensor(system_sizes(md), device=md.positions.device)
    conserved = thermostat is None or thermostat.momentum_conserved
    ndof = (3 * sizes - (3 if conserved else 0)).clamp(min=1)
    device = md.positions.device
    generators = []
    for k in range(count):
        generator = torch.Generator(device=device)
        generator.manual_seed(int(seed) + k)
        generators.append(generator)
    mts = MTSState(
        md=md,
        direct=None,
        forces=mode,
        thermostat=thermostat,
        thermostat_energy=torch.zeros_like(md.energy),
        ndof=ndof,
        generators=generators,
        systems=torch.arange(count, device=device),
    )
    _store(mts, split, _evaluate(split, md, outer=True))
    return mts


def mts_step(state: MTSState, split, *, dt: float, stride: int) -> MTSState:
    """One outer step ``dt`` of ``stride`` inner velocity-Verlet steps (see the
    module doc); returns ``state``, updated in place like torch-sim's steps."""
    if int(stride) != stride or stride < 1:
        raise UserInputError(f"the stride M must be an integer >= 1, got {stride}")
    if not dt > 0:
        raise UserInputError(f"the time step must be positive, got {dt}")
    split = _in_mode(split, state.forces)
    fast_head, _, splits = _protocol(split)
    md = state.md
    h = dt / stride
    _thermostat(state, 0.5 * dt)
    if splits:
        md.momenta = md.momenta + 0.5 * dt * (md.forces - state.direct)
    inner = state.direct if splits else md.forces
    result = None
    for k in range(int(stride)):
        md.momenta = md.momenta + 0.5 * h * inner
        md.positions = md.positions + h * md.momenta / md.masses[:, None]
        result = _evaluate(split, md, outer=k == stride - 1)
        inner = result.forces(fast_head)
        md.momenta = md.momenta + 0.5 * h * inner
    _store(state, split, result)
    if splits:
        md.momenta = md.momenta + 0.5 * dt * (md.forces - state.direct)
    _thermostat(state, 0.5 * dt)
    state.nsteps += 1
    return state


def runaway_systems(state: MTSState) -> torch.Tensor:
    """Bool ``(n_systems,)``: systems with non-finite positions, momenta, forces
    or energy."""
    md = state.md
    healthy = finite_systems(md, md.positions, md.momenta, md.forces, state.direct)
    return ~(healthy & torch.isfinite(md.energy))


def select(state: MTSState, keep: torch.Tensor) -> MTSState:
    """The state with only the systems where ``keep`` is true (a split with
    per-system neighbour lists rebuilds them for the new batch)."""
    keep = keep.to(torch.bool)
    md = state.md
    atoms = keep.to(md.positions.device)[md.system_idx]
    indices = [k for k, flag in enumerate(keep.tolist()) if flag]
    return MTSState(
        md=select_systems(md, keep),
        direct=None if state.direct is None else state.direct[atoms],
        forces=state.forces,
        thermostat=state.thermostat,
        thermostat_energy=state.thermostat_energy[keep],
        ndof=state.ndof[keep],
        generators=[state.generators[k] for k in indices],
        nsteps=state.nsteps,
        systems=state.systems[keep],
    )


def _thermostat(state: MTSState, dt: float) -> None:
    if state.thermostat is not None:
        state.thermostat_energy = state.thermostat_energy + state.thermostat.apply(
            state, dt
        )


def _protocol(split):
    """``(fast_head, slow_head, splits)`` of a split (one without these names,
    such as a test double, runs multiple time stepping)."""
    mode = getattr(split, "mode", MTS)
    default = (CONSERVATIVE, CONSERVATIVE) if mode == CONSERVATIVE else (DIRECT, DIRECT)
    if mode == MTS:
        default = (DIRECT, CONSERVATIVE)
    fast_head = getattr(split, "fast_head", default[0])
    slow_head = getattr(split, "slow_head", default[1])
    return fast_head, slow_head, bool(getattr(split, "splits", mode == MTS))


def _in_mode(split, mode: str):
    """``split`` in force mode ``mode`` (its ``with_mode`` twin when it runs
    another mode; a split without modes runs ``mts`` only)."""
    own = getattr(split, "mode", MTS)
    if own == mode:
        return split
    if not hasattr(split, "with_mode"):
        raise UserInputError(
            f"the force split {split!r} runs '{own}' forces, not '{mode}'"
        )
    return split.with_mode(mode)


def _store(state: MTSState, split, result: ForceBatch) -> None:
    md = state.md
    md.energy = result.energy
    md.forces = result.forces(_protocol(split)[1])
    state.direct = result.direct


def _call(split, md, outer: bool) -> ForceBatch:
    return split.both(md) if outer else split.fast(md)


def _evaluate(split, md, outer: bool) -> ForceBatch:
    """The split's forces (``both`` at an outer step, else ``fast``), computed on
    the systems with finite positions only; a batched call that raises is retried
    system by system; the systems that fail get NaN."""
    healthy = finite_systems(md)
    if bool(healthy.all()):
        try:
            return _complete(_call(split, md, outer), md)
        except Exception:  # noqa: BLE001 - one bad system must not stop the others
            if n_systems(md) == 1:
                return _scatter({}, md, split, outer)
    results = {}
    for k in range(n_systems(md)):
        if not bool(healthy[k]):
            continue
        one = torch.zeros(n_systems(md), dtype=torch.bool, device=healthy.device)
        one[k] = True
        sub = select_systems(md, one)
        try:
            results[k] = _complete(_call(split, sub, outer), sub)
        except Exception:  # noqa: BLE001
            continue
    return _scatter(results, md, split, outer)


def _complete(result: ForceBatch, md) -> ForceBatch:
    if result.energy is None:
        result.energy = torch.full(
            (n_systems(md),),
            math.nan,
            dtype=md.positions.dtype,
            device=md.positions.device,
        )
    return result


def _scatter(results, md, split, outer: bool) -> ForceBatch:
    """One :class:`ForceBatch` from per-system results (NaN where missing)."""
    dtype, device = md.positions.dtype, md.positions.device
    nan = math.nan
    energy = torch.full((n_systems(md),), nan, dtype=dtype, device=device)
    conservative = torch.full_like(md.positions, nan)
    direct = torch.full_like(md.positions, nan)
    has = {CONSERVATIVE: False, DIRECT: False}
    starts = torch.cumsum(torch.tensor([0] + system_sizes(md)), 0).tolist()
    for k, result in results.items():
        part = slice(starts[k], starts[k + 1])
        energy[k] = result.energy.reshape(-1)[0]
        if result.conservative is not None:
            conservative[part] = result.conservative
            has[CONSERVATIVE] = True
        if result.direct is not None:
            direct[part] = result.direct
            has[DIRECT] = True
    fast_head, slow_head, _ = _protocol(split)
    wanted = {fast_head} | ({slow_head} if outer else set())
    return ForceBatch(
        energy=energy,
        conservative=conservative
        if (has[CONSERVATIVE] or CONSERVATIVE in wanted)
        else None,
        direct=direct if (has[DIRECT] or DIRECT in wanted) else None,
    )


__all__ = [
    "LangevinThermostat",
    "MTSState",
    "SVRThermostat",
    "mts_init",
    "mts_step",
    "per_system_sum",
    "runaway_systems",
    "select",
]

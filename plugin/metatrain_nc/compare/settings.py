"""Settings of ``mtt-nc compare``: what each stage runs, in full and quick form."""

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Dict, Tuple

from ..errors import UserInputError

#: the stages of a comparison, in the order they run and appear in the report
STAGES: Tuple[str, ...] = ("accuracy", "cost", "antisymmetry", "nve", "nvt", "relax")


@dataclass
class CompareSettings:
    """Everything a comparison runs (times in fs, temperatures in K, lengths in A).

    ``timestep_fs`` is the inner (velocity-Verlet) step of every force mode; an outer
    step is ``stride`` inner steps (thermostat and logging act once per outer step).
    The conservative and direct modes evaluate their forces at every inner step, the
    multiple-time-step mode (``mts``) evaluates direct forces at inner steps and the
    conservative correction once per outer step: the three modes integrate the fast
    motions alike and differ only in the forces.
    """

    stages: Tuple[str, ...] = STAGES
    #: structures of the test set used for the accuracy table (0: all)
    accuracy_structures: int = 0
    #: structures analysed for lambda (exact Jacobian when 3N <= max_exact_rows)
    lambda_structures: int = 2
    max_exact_rows: int = 1200
    stochastic_probes: int = 16
    square_loops: int = 4
    square_eps_A: float = 0.05
    #: MD (NVE and NVT runs start from the MD structure)
    timestep_fs: float = 0.5
    stride: int = 4
    nve_time_fs: float = 1000.0
    #: SVR equilibration of the MD start before the NVE runs (each model with its own
    #: forces: conservative when it has them), so that NVE heating is not the release
    #: of the start's potential energy on the model's surface (0: none)
    equilibration_fs: float = 100.0
    nvt_time_fs: float = 500.0
    temperature_K: float = 300.0
    tau_fs: float = 50.0
    max_temperature_K: float = 3000.0
    seed: int = 0
    #: geometry optimisations (L-BFGS by default), from randomly displaced structures
    relax_structures: int = 2
    relax_steps: int = 300
    relax_fmax: float = 0.05
    relax_sigma_A: float = 0.05
    relax_optimizers: Tuple[str, ...] = ("LBFGS",)
    #: repeats of the timing of one force evaluation
    cost_repeats: int = 5
    #: evaluate metatomic models in float64 (checkpoints, or float64 exports); ASE
    #: calculators compute in their own precision
    float64: bool = False
    extra: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def quick(cls, **overrides: Any) -> "CompareSettings":
        """Short runs for a first look or for tests (seconds to a few minutes)."""
        base = cls(
            lambda_structures=1,
            stochastic_probes=4,
            square_loops=2,
            nve_time_fs=100.0,
            equilibration_fs=0.0,
            nvt_time_fs=50.0,
            relax_structures=1,
            relax_steps=30,
            cost_repeats=2,
        )
        return replace(base, **overrides)

    @property
    def mts_outer_fs(self) -> float:
        return self.timestep_fs * self.stride

    def outer_steps(self, time_fs: float) -> int:
        """Outer steps of an MD run of ``time_fs``."""
        return max(1, int(round(time_fs / self.mts_outer_fs)))

    def check(self) -> None:
        """Raise :class:`UserInputError` for impossible settings."""
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown:
            raise UserInputError(
                f"unknown stage(s) {unknown}; choose from {list(STAGES)}"
            )
        if not self.timestep_fs > 0:
            raise UserInputError(f"--timestep must be > 0 fs, got {self.timestep_fs}")
        if self.stride < 1:
            raise UserInputError(f"--stride must be >= 1, got {self.stride}")
        for name in ("nve_time_fs", "nvt_time_fs", "temperature_K", "tau_fs"):
            if not getattr(self, name) > 0:
                raise UserInputError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.equilibration_fs < 0:
            raise UserInputError("the equilibration time must be >= 0 fs")
        for name in ("lambda_structures", "relax_structures", "cost_repeats"):
            if getattr(self, name) < 1:
                raise UserInputError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.stochastic_probes < 2:
            raise UserInputError("the stochastic lambda needs at least 2 probes")
        if not self.relax_fmax > 0 or self.relax_steps < 1 or self.relax_sigma_A < 0:
            raise UserInputError("relaxations need fmax > 0, steps >= 1 and sigma >= 0")

    def as_dict(self) -> Dict[str, Any]:
        data = asdict(self)
        data["stages"] = list(self.stages)
        data["relax_optimizers"] = list(self.relax_optimizers)
        data["mts_outer_timestep_fs"] = self.mts_outer_fs
        return data

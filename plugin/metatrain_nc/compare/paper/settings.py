"""What the paper protocol runs (times in fs, temperatures in K, forces in eV/A)."""

import dataclasses
import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Dict, Optional, Tuple

from ...dynamics.monitor import RESOLVED_SIGMA
from ...errors import UserInputError

#: the paper's thermostats (Table 2): (ensemble, time constant in fs)
THERMOSTATS: Tuple[Tuple[str, float], ...] = (
    ("svr", 10.0),
    ("langevin", 1000.0),
    ("langevin", 100.0),
    ("langevin", 10.0),
)
#: the protocol's parts, in the order they run: NVT runs, gas-phase relaxations,
#: bulk relaxations ("relax" on the command line means both relaxation parts)
PARTS = ("nvt", "gas", "bulk")


@dataclass(frozen=True)
class PaperSettings:
    """The paper protocol.

    NVT (Table 2): every force mode of every model (conservative, direct, and ``mts``
    for models with both heads) under each thermostat of ``thermostats``, from the MD
    structure, ``equilibration_fs`` then ``production_fs`` at ``temperature_K``;
    the equilibration runs under ``equilibration_thermostat`` (``"ensemble:tau_fs"``;
    default a local Langevin thermostat, which brings every species to the target
    whatever the start; ``"same"``: the thermostat of the run, one MD run in all);
    inner step ``timestep_fs`` for every mode, MTS outer step ``stride`` inner steps.
    The production part gives the per-species temperature deviations (block averages)
    and the diffusion coefficients (mean-square displacement of frames written every
    ``sample_fs``, ``diffusion_segments`` independent parts).

    Relaxations (Table 7): ``gas_structures`` isolated molecules cut out of the test
    structures, displaced by Gaussian noise of ``gas_sigma_A``, relaxed to
    ``gas_fmax``; ``bulk_structures`` test structures (displaced by ``bulk_sigma_A``)
    relaxed to ``bulk_fmax``; ``relax_steps`` steps, each optimiser of
    ``optimizers``, every force head, in float64 where the model allows it.

    A difference counts as resolved beyond ``sigma`` standard errors.
    """

    parts: Tuple[str, ...] = PARTS
    thermostats: Tuple[Tuple[str, float], ...] = THERMOSTATS
    temperature_K: float = 300.0
    timestep_fs: float = 0.5
    stride: int = 4
    equilibration_fs: float = 250.0
    equilibration_thermostat: str = "langevin:100"
    production_fs: float = 1000.0
    sample_fs: float = 5.0
    diffusion_segments: int = 4
    max_temperature_K: float = 3000.0
    seed: int = 0
    gas_structures: int = 20
    gas_sigma_A: float = 0.5
    gas_fmax: float = 1e-5
    bulk_structures: int = 4
    bulk_sigma_A: float = 0.0
    bulk_fmax: float = 1e-4
    relax_steps: int = 1000
    optimizers: Tuple[str, ...] = ("LBFGS", "FIRE")
    float64: bool = True
    sigma: float = RESOLVED_SIGMA

    @classmethod
    def quick(cls, **overrides: Any) -> "PaperSettings":
        """Minutes instead of hours: for a first look and for tests."""
        base = cls(
            equilibration_fs=20.0,
            production_fs=80.0,
            sample_fs=1.0,
            gas_structures=3,
            bulk_structures=1,
            relax_steps=200,
        )
        return replace(base, **overrides)

    @property
    def outer_fs(self) -> float:
        return self.timestep_fs * self.stride

    def outer_steps(self, time_fs: float) -> int:
        return max(1, int(math.ceil(time_fs / self.outer_fs - 1e-9)))

    @property
    def sample_every(self) -> int:
        """Outer steps between two trajectory frames."""
        return max(1, int(round(self.sample_fs / self.outer_fs)))

    def check(self) -> None:
        """Raise :class:`UserInputError` for settings the protocol cannot run."""
        unknown = [p for p in self.parts if p not in PARTS]
        if unknown or not self.parts:
            raise UserInputError(
                f"unknown or no protocol part(s) {unknown}; choose from {list(PARTS)}"
            )
        self.equilibration_ensemble()
        for ensemble, tau in self.thermostats:
            if ensemble not in ("svr", "langevin") or not tau > 0:
                raise UserInputError(
                    f"a thermostat is svr or langevin with tau > 0 fs, got "
                    f"{ensemble} {tau}"
                )
        positive = (
            "temperature_K",
            "timestep_fs",
            "production_fs",
            "sample_fs",
            "gas_fmax",
            "bulk_fmax",
            "sigma",
        )
        for name in positive:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise UserInputError(f"{name} must be > 0, got {value}")
        for name in ("equilibration_fs", "gas_sigma_A", "bulk_sigma_A"):
            if getattr(self, name) < 0:
                raise UserInputError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.stride < 1 or self.relax_steps < 1:
            raise UserInputError("the stride and relax_steps must be >= 1")
        if self.gas_structures < 0 or self.bulk_structures < 0:
            raise UserInputError("the numbers of structures to relax must be >= 0")
        if "gas" in self.parts and self.gas_structures == 0:
            raise UserInputError("the gas part needs --gas-structures >= 1")
        if "bulk" in self.parts and self.bulk_structures == 0:
            raise UserInputError("the bulk part needs --relax-structures >= 1")
        for name in self.optimizers:
            if name not in ("LBFGS", "FIRE"):
                raise UserInputError(f"unknown optimiser '{name}'; use LBFGS or FIRE")
        frames = self.outer_steps(self.production_fs) // self.sample_every
        if "nvt" in self.parts and frames < 10 * self.diffusion_segments:
            raise UserInputError(
                f"the production run of {self.production_fs} fs gives {frames} "
                f"frames every {self.sample_fs} fs: too few for the diffusion "
                f"coefficient over {self.diffusion_segments} segments (at least "
                f"{10 * self.diffusion_segments}); run longer or sample more often"
            )

    def equilibration_ensemble(self) -> Optional[Tuple[str, float]]:
        """``(ensemble, tau_fs)`` of the equilibration, ``None`` for ``"same"``."""
        spec = self.equilibration_thermostat.strip().lower()
        if spec == "same":
            return None
        ensemble, _, tau = spec.partition(":")
        try:
            value = float(tau)
        except ValueError:
            value = float("nan")
        if ensemble not in ("svr", "langevin") or not value > 0:
            raise UserInputError(
                f"--equilibration-thermostat must be 'same' or ENSEMBLE:TAU_FS with "
                f"svr or langevin and tau > 0, got '{self.equilibration_thermostat}'"
            )
        return ensemble, value

    def as_dict(self) -> Dict[str, Any]:
        data = asdict(self)
        data["parts"] = list(self.parts)
        data["thermostats"] = [list(t) for t in self.thermostats]
        data["optimizers"] = list(self.optimizers)
        data["mts_outer_timestep_fs"] = self.outer_fs
        return data

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "PaperSettings":
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["parts"] = tuple(values.get("parts", PARTS))
        values["thermostats"] = tuple(
            (str(e), float(t)) for e, t in values.get("thermostats", THERMOSTATS)
        )
        values["optimizers"] = tuple(values.get("optimizers", ("LBFGS", "FIRE")))
        return cls(**values)

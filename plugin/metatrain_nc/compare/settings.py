"""Settings of ``mtt-nc compare``: one class for both protocols, with presets.

The standard protocol (the default) runs the stages of :data:`STAGES`, the paper's
(``--protocol paper``, :meth:`CompareSettings.paper`) those of :data:`PAPER_STAGES`
with the paper's thermostats, lengths and thresholds.
"""

import math
from dataclasses import dataclass, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..dynamics.monitor import RESOLVED_SIGMA
from ..errors import UserInputError
from ..force_models.names import FORCE_MODES

#: the stages of the standard protocol, in the order they run and appear in the report
STAGES: Tuple[str, ...] = ("accuracy", "cost", "antisymmetry", "nve", "nvt", "relax")
#: the stages ("parts") of the paper protocol: NVT runs, gas and bulk relaxations
PAPER_STAGES: Tuple[str, ...] = ("nvt", "gas", "bulk")
PROTOCOLS = {"standard": STAGES, "paper": PAPER_STAGES}
#: the paper's thermostats (Table 2): (ensemble, time constant in fs)
THERMOSTATS: Tuple[Tuple[str, float], ...] = (
    ("svr", 10.0),
    ("langevin", 1000.0),
    ("langevin", 100.0),
    ("langevin", 10.0),
)

#: the settings each protocol records (``report.json``, ``protocol.json``), in order
KEYS: Dict[str, Tuple[str, ...]] = {
    "standard": tuple(
        "stages accuracy_structures lambda_structures max_exact_rows stochastic_probes "
        "square_loops square_eps_A timestep_fs stride nve_time_fs equilibration_fs "
        "nvt_time_fs temperature_K tau_fs max_temperature_K seed relax_structures "
        "relax_steps relax_fmax relax_sigma_A relax_optimizers cost_repeats "
        "float64 sigma".split()
    ),
    "paper": tuple(
        "stages thermostats temperature_K timestep_fs stride equilibration_fs "
        "equilibration_thermostat nvt_time_fs sample_fs diffusion_segments "
        "max_temperature_K seed gas_structures gas_sigma_A gas_fmax relax_structures "
        "relax_sigma_A relax_fmax relax_steps relax_optimizers relax_float64 "
        "sigma".split()
    ),
}
#: the names of the paper protocol's records for the settings it shares
PAPER_NAMES = {
    "stages": "parts",
    "nvt_time_fs": "production_fs",
    "relax_structures": "bulk_structures",
    "relax_sigma_A": "bulk_sigma_A",
    "relax_fmax": "bulk_fmax",
    "relax_optimizers": "optimizers",
    "relax_float64": "float64",
}

#: the presets: protocol -> overrides of the defaults, in full and quick form
PRESETS: Dict[Tuple[str, bool], Dict[str, Any]] = {
    ("standard", False): {},
    ("standard", True): dict(
        lambda_structures=1,
        stochastic_probes=4,
        square_loops=2,
        nve_time_fs=100.0,
        equilibration_fs=0.0,
        nvt_time_fs=50.0,
        relax_structures=1,
        relax_steps=30,
        cost_repeats=2,
    ),
    ("paper", False): dict(
        protocol="paper",
        stages=PAPER_STAGES,
        equilibration_fs=250.0,
        nvt_time_fs=1000.0,
        relax_structures=4,
        relax_sigma_A=0.0,
        relax_fmax=1e-4,
        relax_steps=1000,
        relax_optimizers=("LBFGS", "FIRE"),
        relax_float64=True,
    ),
}
PRESETS[("paper", True)] = dict(
    PRESETS[("paper", False)],
    equilibration_fs=20.0,
    nvt_time_fs=80.0,
    sample_fs=1.0,
    gas_structures=3,
    relax_structures=1,
    relax_steps=200,
)


@dataclass
class CompareSettings:
    """Everything a comparison runs (times in fs, temperatures in K, lengths in A,
    forces in eV/A); the defaults are the standard protocol's.

    ``timestep_fs`` is the inner (velocity-Verlet) step of every force mode; an outer
    step is ``stride`` inner steps (thermostat and logging act once per outer step;
    ``mts`` evaluates the conservative correction once per outer step).

    Standard protocol: NVE runs of ``nve_time_fs`` after ``equilibration_fs`` of SVR;
    NVT runs of ``nvt_time_fs`` under SVR with ``tau_fs``; relaxations of
    ``relax_structures`` test structures displaced by ``relax_sigma_A``.

    Paper protocol: NVT under each of ``thermostats``, ``equilibration_fs`` (under
    ``equilibration_thermostat``, ``"ensemble:tau_fs"`` or ``"same"``) then
    ``nvt_time_fs`` analysed: per-species temperatures and diffusion (frames every
    ``sample_fs``, ``diffusion_segments`` parts); relaxations of ``gas_structures``
    molecules (``gas_sigma_A``, to ``gas_fmax``) and ``relax_structures`` bulk frames
    (``relax_sigma_A``, to ``relax_fmax``), in float64 where the model allows it
    (``relax_float64``); a difference is resolved beyond ``sigma`` standard errors.
    """

    protocol: str = "standard"
    stages: Tuple[str, ...] = STAGES
    #: structures of the test set used for the accuracy table (0: all)
    accuracy_structures: int = 0
    #: structures analysed for lambda (exact Jacobian when 3N <= max_exact_rows)
    lambda_structures: int = 2
    max_exact_rows: int = 1200
    stochastic_probes: int = 16
    square_loops: int = 4
    square_eps_A: float = 0.05
    timestep_fs: float = 0.5
    stride: int = 4
    nve_time_fs: float = 1000.0
    #: equilibration of the MD start (standard: SVR with each model's own forces
    #: before the NVE runs; paper: before every NVT run)
    equilibration_fs: float = 100.0
    nvt_time_fs: float = 500.0
    temperature_K: float = 300.0
    tau_fs: float = 50.0
    thermostats: Tuple[Tuple[str, float], ...] = THERMOSTATS
    #: MD force modes to run (empty: every mode of every model); e.g. ``("mts",)``
    #: adds MTS runs at another stride without running the other modes again
    modes: Tuple[str, ...] = ()
    equilibration_thermostat: str = "langevin:100"
    sample_fs: float = 5.0
    diffusion_segments: int = 4
    max_temperature_K: float = 3000.0
    seed: int = 0
    gas_structures: int = 20
    gas_sigma_A: float = 0.5
    gas_fmax: float = 1e-5
    relax_structures: int = 2
    relax_steps: int = 300
    relax_fmax: float = 0.05
    relax_sigma_A: float = 0.05
    relax_optimizers: Tuple[str, ...] = ("LBFGS",)
    relax_float64: bool = False
    #: repeats of the timing of one force evaluation
    cost_repeats: int = 5
    #: evaluate metatomic models in float64 (checkpoints, or float64 exports); ASE
    #: calculators compute in their own precision
    float64: bool = False
    sigma: float = RESOLVED_SIGMA

    @classmethod
    def preset(
        cls, protocol: str = "standard", quick: bool = False, **overrides: Any
    ) -> "CompareSettings":
        """The settings of ``protocol`` (``quick``: minutes, not hours) with
        ``overrides``."""
        if (protocol, quick) not in PRESETS:
            raise UserInputError(f"unknown protocol '{protocol}': {list(PROTOCOLS)}")
        return replace(cls(**PRESETS[(protocol, quick)]), **overrides)

    @classmethod
    def quick(cls, **overrides: Any) -> "CompareSettings":
        """Short runs of the standard protocol: a first look, or tests."""
        return cls.preset("standard", True, **overrides)

    @classmethod
    def paper(cls, quick: bool = False, **overrides: Any) -> "CompareSettings":
        """The paper's protocol: its thermostats (Table 2) and relaxations (Table 7)."""
        return cls.preset("paper", quick, **overrides)

    @property
    def mts_outer_fs(self) -> float:
        return self.timestep_fs * self.stride

    def outer_steps(self, time_fs: float) -> int:
        """Outer steps of an MD run of ``time_fs``: at least that time, at least 1."""
        return max(1, math.ceil(time_fs / self.mts_outer_fs - 1e-9))

    @property
    def sample_every(self) -> int:
        """Outer steps between two trajectory frames."""
        return max(1, int(round(self.sample_fs / self.mts_outer_fs)))

    def check(self) -> None:
        """Raise :class:`UserInputError` for settings the protocol cannot run."""
        paper = self.protocol == "paper"
        allowed = PROTOCOLS.get(self.protocol, ())
        unknown = [s for s in self.stages if s not in allowed]
        if unknown or not allowed or (paper and not self.stages):
            what = "protocol part(s)" if paper else "stage(s)"
            raise UserInputError(
                f"unknown {what} {unknown}; choose from {list(allowed or PROTOCOLS)}"
            )
        if self.stride < 1:
            raise UserInputError(f"--stride must be >= 1, got {self.stride}")
        for name, values, known in (
            ("force mode", self.modes, FORCE_MODES),
            ("optimiser", self.relax_optimizers, ("LBFGS", "FIRE")),
        ):
            if unknown := [v for v in values if v not in known]:
                raise UserInputError(f"unknown {name} {unknown}; use {list(known)}")
        positive = "timestep_fs nvt_time_fs temperature_K relax_fmax " + (
            "gas_fmax sample_fs sigma" if paper else "nve_time_fs tau_fs"
        )
        # the lowest value of each setting (the smallest float above 0: "> 0")
        at_least = dict.fromkeys(positive.split(), math.ulp(0.0))
        at_least.update(equilibration_fs=0, gas_sigma_A=0, relax_sigma_A=0)
        at_least.update(relax_steps=1, stochastic_probes=2)
        if not paper:
            at_least.update(lambda_structures=1, relax_structures=1, cost_repeats=1)
        for name, lowest in at_least.items():
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= lowest):
                limit = "> 0" if lowest == math.ulp(0.0) else f">= {lowest}"
                raise UserInputError(f"{name} must be {limit}, got {value}")
        if paper:
            self._check_paper()

    def _check_paper(self) -> None:
        self.equilibration_ensemble()
        for ensemble, tau in self.thermostats:
            parse_thermostat(f"{ensemble}:{tau}", "a thermostat")
        if self.gas_structures < 0 or self.relax_structures < 0:
            raise UserInputError("the numbers of structures to relax must be >= 0")
        if "gas" in self.stages and self.gas_structures == 0:
            raise UserInputError("the gas part needs --gas-structures >= 1")
        if "bulk" in self.stages and self.relax_structures == 0:
            raise UserInputError("the bulk part needs --relax-structures >= 1")
        frames = self.outer_steps(self.nvt_time_fs) // self.sample_every
        if "nvt" in self.stages and frames < 10 * self.diffusion_segments:
            raise UserInputError(
                f"the production run of {self.nvt_time_fs} fs gives {frames} "
                f"frames every {self.sample_fs} fs: too few for the diffusion "
                f"coefficient over {self.diffusion_segments} segments (at least "
                f"{10 * self.diffusion_segments}); run longer or sample more often"
            )

    def equilibration_ensemble(self) -> Optional[Tuple[str, float]]:
        """``(ensemble, tau_fs)`` of the paper's equilibration, ``None`` for
        ``"same"``."""
        spec = self.equilibration_thermostat
        if spec.strip().lower() == "same":
            return None
        return parse_thermostat(spec, "--equilibration-thermostat", " or 'same'")

    def as_dict(self) -> Dict[str, Any]:
        """The protocol's settings (the keys of :data:`KEYS`), JSON-ready."""

        def plain(value: Any) -> Any:
            return [plain(v) for v in value] if isinstance(value, tuple) else value

        names = PAPER_NAMES if self.protocol == "paper" else {}
        data = {
            names.get(key, key): plain(getattr(self, key))
            for key in KEYS[self.protocol]
        }
        data["mts_outer_timestep_fs"] = self.mts_outer_fs
        if self.modes:  # recorded only when chosen: older reports stay as they were
            data["modes"] = list(self.modes)
        return data

    def run_modes(self, modes: Sequence[str]) -> List[str]:
        """The MD force modes of a model (``modes``) that these settings run."""
        return [m for m in modes if not self.modes or m in self.modes]


def parse_thermostat(spec: str, what: str, other: str = "") -> Tuple[str, float]:
    """``"svr:10"`` -> ``("svr", 10.0)``.

    :raises UserInputError: not svr or langevin with a time constant > 0 fs.
    """
    ensemble, _, tau = spec.strip().lower().partition(":")
    try:
        value = float(tau)
    except ValueError:
        value = math.nan
    if ensemble.strip() not in ("svr", "langevin") or not value > 0:
        raise UserInputError(
            f"{what} must be ENSEMBLE:TAU_FS (svr or langevin, tau > 0 fs, e.g. "
            f"svr:10){other}, got '{spec}'"
        )
    return ensemble.strip(), value

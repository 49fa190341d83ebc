"""What :func:`~.api.evaluate` returns: one :class:`StructureResult` per structure,
gathered in an :class:`AntisymmetryReport` (its ``summary()`` is ``summary.json``,
``write(outdir)`` writes the files of ``mtt-nc antisymmetry``)."""

import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

import ase
import numpy as np

from .decompose import PairTable, bin_pairs


@dataclass
class StructureResult:
    """Everything computed for one structure."""

    index: int
    n_atoms: int
    method: str  # "exact", "finite-difference" or "stochastic"
    lambda_: float
    error: Optional[float] = None  # standard error (stochastic only)
    probes: Optional[int] = None
    target_error: Optional[float] = None  # stochastic with a target only
    converged: Optional[bool] = None
    per_atom: Optional[np.ndarray] = None  # (N,) lambda_i, exact only
    pairs: Optional[PairTable] = None
    rotation_loop: Optional[Dict[str, Any]] = None
    square_loops: Optional[Dict[str, Any]] = None
    forces: Dict[str, np.ndarray] = field(default_factory=dict)  # name -> (N, 3)
    fd_step: Optional[float] = None  # A, finite differences only
    fd_noise: Optional[float] = None  # estimated FD error / ||J||, idem

    def as_dict(self) -> Dict[str, Any]:
        data: Dict[str, Any] = {
            "index": self.index,
            "n_atoms": self.n_atoms,
            "lambda": self.lambda_,
            "method": self.method,
        }
        if self.method == "stochastic":
            data["lambda_error"] = self.error
            data["probes"] = self.probes
            if self.target_error is not None:
                data["target_error"] = self.target_error
                data["target_reached"] = self.converged
        if self.fd_step is not None:
            data["fd_step_A"] = self.fd_step
            data["fd_noise"] = self.fd_noise
        if self.per_atom is not None:
            data["lambda_atom_max"] = float(np.max(self.per_atom))
        if self.rotation_loop is not None:
            data["rotation_loop"] = self.rotation_loop
        if self.square_loops is not None:
            data["square_loops"] = self.square_loops
        return data


@dataclass
class AntisymmetryReport:
    """Results of :func:`~.api.evaluate` for a list of structures."""

    frames: List[ase.Atoms]
    structures: List[StructureResult]
    model: Dict[str, Any]
    output: str
    settings: Dict[str, Any]
    bin_width: float = 0.25

    @property
    def lambdas(self) -> np.ndarray:
        return np.array([s.lambda_ for s in self.structures])

    def pair_bins(self) -> Dict[str, np.ndarray]:
        """Pairs of all structures binned by distance (see ``decompose.bin_pairs``)."""
        tables = [s.pairs for s in self.structures if s.pairs is not None]
        if not tables:
            return {}
        return bin_pairs(tables, self.bin_width)

    def summary(self) -> Dict[str, Any]:
        """The content of ``summary.json``."""
        lambdas = self.lambdas
        data = {
            "model": self.model,
            "output": self.output,
            "settings": self.settings,
            "n_structures": len(self.structures),
            "lambda_mean": float(np.mean(lambdas)),
            "lambda_max": float(np.max(lambdas)),
        }
        noise = [s.fd_noise for s in self.structures if s.fd_noise is not None]
        if noise:
            data["fd_noise_max"] = float(np.max(noise))
        data["structures"] = [s.as_dict() for s in self.structures]
        return data

    def write(self, outdir: Union[str, os.PathLike], force: bool = False) -> str:
        """Write JSON, CSV, PNG and chemiscope files into ``outdir`` (atomically)."""
        from .outputs import write_report

        return write_report(self, outdir, force=force)

"""What a reference data set is made of: the plan of ``mtt-nc reference``.

A :class:`ReferencePlan` fixes everything that decides the frames and their labels:
the reference and the sampler, the starting structures, one entry per independent
trajectory (temperature, start frame, seed), the sampling dynamics, the cell strains
and which trajectories form the train / validation / test splits. It is written as
``plan.json`` in the work folder when a build starts; a build resumes only with the
same plan (runtime options such as the number of workers may change).

Units: temperatures in K, times in fs, friction in 1/fs, masses in amu, strains
dimensionless.
"""

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from ..errors import UserInputError

#: version of the plan file
PLAN_FORMAT = 1
#: split names, in the order files are written
SPLITS = ("train", "validation", "test")


@dataclass
class TrajectorySpec:
    """One independent sampling trajectory.

    :ivar index: trajectory number (0-based), also its id in every frame.
    :ivar temperature: target temperature (K).
    :ivar start_frame: frame of the structures file it starts from.
    :ivar seed: seed of its velocities, thermostat noise and cell strains.
    :ivar split: ``"train"``, ``"validation"`` or ``"test"``.
    """

    index: int
    temperature: float
    start_frame: int
    seed: int
    split: str


@dataclass
class ReferencePlan:
    """Settings of one reference data set (see the module docstring).

    :ivar reference: the labelling model as named by the user (``module:callable`` or
        a model file).
    :ivar sampler: the model whose Langevin dynamics samples the frames (``None``:
        the reference itself).
    :ivar structures: the starting structures file; ``structures_sha256`` its hash.
    :ivar trajectories: one :class:`TrajectorySpec` per trajectory.
    :ivar frames_per_trajectory: frames kept per trajectory.
    :ivar timestep: sampling time step (fs).
    :ivar friction: Langevin friction (1/fs).
    :ivar hydrogen_mass: mass given to H during sampling (amu): heavier hydrogen
        allows a longer step and does not change the configurational (Boltzmann)
        distribution that is sampled; the labels never depend on masses.
    :ivar equilibration_steps: steps before the first kept frame.
    :ivar interval_steps: steps between kept frames.
    :ivar max_strain: each labelled frame is the sampled one under a random symmetric
        strain whose components are uniform in ``[-max_strain, max_strain]``
        (positions scaled with the cell), so that stress varies across the set.
    :ivar method: what the reference computes, written in every frame.
    :ivar seed: the seed every trajectory seed derives from.
    """

    reference: str
    structures: str
    structures_sha256: str
    trajectories: List[TrajectorySpec]
    frames_per_trajectory: int
    sampler: Optional[str] = None
    timestep: float = 2.0
    friction: float = 0.02
    hydrogen_mass: float = 4.0
    equilibration_steps: int = 50
    interval_steps: int = 8
    max_strain: float = 0.02
    method: str = ""
    seed: int = 0
    format: int = field(default=PLAN_FORMAT)

    @property
    def n_frames(self) -> int:
        """Frames of the whole set."""
        return self.frames_per_trajectory * len(self.trajectories)

    @property
    def steps_per_trajectory(self) -> int:
        """Sampler calls of one trajectory (equilibration included)."""
        return self.equilibration_steps + self.frames_per_trajectory * (
            self.interval_steps
        )

    @property
    def structures_name(self) -> str:
        """The starting structures' file name."""
        return os.path.basename(self.structures)

    def split_of(self, trajectory: int) -> str:
        """The split a trajectory belongs to."""
        return self.trajectories[trajectory].split

    def to_json(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> "ReferencePlan":
        data = dict(data)
        data["trajectories"] = [TrajectorySpec(**t) for t in data["trajectories"]]
        return cls(**data)

    def save(self, path: Path) -> None:
        """Write ``plan.json`` atomically."""
        partial = Path(f"{path}.partial")
        partial.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        os.replace(partial, path)

    @classmethod
    def load(cls, path: Path) -> "ReferencePlan":
        try:
            return cls.from_json(json.loads(Path(path).read_text()))
        except (OSError, ValueError, TypeError, KeyError) as error:
            raise UserInputError(
                f"'{path}' is not a plan written by mtt-nc reference ({error}): "
                "choose another --out folder"
            ) from error

    def differences(self, other: "ReferencePlan") -> List[str]:
        """Settings that differ from ``other``, as ``name: this vs other``."""
        mine, theirs = self.to_json(), other.to_json()
        return [
            f"{key}: {theirs.get(key)!r} vs {mine.get(key)!r}"
            for key in mine
            if mine.get(key) != theirs.get(key)
        ]


def parse_temperatures(text: str, n_trajectories: Optional[int]) -> List[float]:
    """Temperatures (K) from ``"250,300,350"`` (one per trajectory) or
    ``"250:450"`` (``n_trajectories`` evenly spaced, both ends included).

    :raises UserInputError: unreadable, non-positive, or a count that does not match.
    """
    text = str(text).strip()
    try:
        if ":" in text:
            low, high = (float(v) for v in text.split(":"))
            if not n_trajectories or n_trajectories < 1:
                raise UserInputError(
                    f"--temperatures {text} is a range: say how many trajectories "
                    "with --trajectories N"
                )
            if n_trajectories == 1:
                values = [low]
            else:
                step = (high - low) / (n_trajectories - 1)
                values = [low + i * step for i in range(n_trajectories)]
        else:
            values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as error:
        raise UserInputError(
            f"--temperatures '{text}': give kelvin as 'LOW:HIGH' or a list "
            "'250,300,350'"
        ) from error
    if not values or any(not (v > 0) for v in values):
        raise UserInputError(f"--temperatures '{text}': temperatures must be > 0 K")
    if n_trajectories and ":" not in text and len(values) != n_trajectories:
        raise UserInputError(
            f"--temperatures lists {len(values)} temperatures for "
            f"--trajectories {n_trajectories}: give one per trajectory or a range "
            "LOW:HIGH"
        )
    return [round(v, 6) for v in values]


def default_splits(temperatures: Sequence[float]) -> Dict[str, List[int]]:
    """Trajectory indices of each split: ``test`` the trajectory nearest 300 K (where
    models are used), ``validation`` the one nearest the middle of the others'
    temperature range, ``train`` the rest. Fewer than 3 trajectories: all train."""
    n = len(temperatures)
    if n < 3:
        return {"train": list(range(n)), "validation": [], "test": []}
    test = min(range(n), key=lambda i: (abs(temperatures[i] - 300.0), i))
    rest = [i for i in range(n) if i != test]
    middle = 0.5 * (
        min(temperatures[i] for i in rest) + max(temperatures[i] for i in rest)
    )
    validation = min(rest, key=lambda i: (abs(temperatures[i] - middle), i))
    train = [i for i in rest if i != validation]
    return {"train": train, "validation": [validation], "test": [test]}


def parse_split(text: Optional[str], n: int, name: str) -> Optional[List[int]]:
    """Trajectory indices from ``"3"`` or ``"3,5"`` (``None``: not given)."""
    if text is None:
        return None
    try:
        values = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError as error:
        raise UserInputError(
            f"--{name}-trajectories '{text}': give trajectory numbers, e.g. '2' or "
            "'2,5'"
        ) from error
    bad = [v for v in values if not 0 <= v < n]
    if bad:
        raise UserInputError(
            f"--{name}-trajectories: trajectory {bad[0]} does not exist (there are "
            f"{n}, numbered 0 to {n - 1})"
        )
    return values


def resolve_splits(
    temperatures: Sequence[float],
    validation: Optional[List[int]] = None,
    test: Optional[List[int]] = None,
) -> List[str]:
    """The split of each trajectory: given ones, the defaults of
    :func:`default_splits` otherwise.

    :raises UserInputError: a trajectory in both, or no training trajectory left.
    """
    n = len(temperatures)
    defaults = default_splits(temperatures)
    if validation is None and test is None:
        chosen = defaults
    else:
        test = list(test if test is not None else [])
        validation = list(validation if validation is not None else [])
        both = sorted(set(test) & set(validation))
        if both:
            raise UserInputError(
                f"trajectory {both[0]} is in both --validation-trajectories and "
                "--test-trajectories: splits are disjoint by trajectory"
            )
        train = [i for i in range(n) if i not in test and i not in validation]
        chosen = {"train": train, "validation": validation, "test": test}
    if not chosen["train"]:
        raise UserInputError(
            "no trajectory is left for training: use more --trajectories or fewer "
            "validation/test trajectories"
        )
    split = ["train"] * n
    for name in ("validation", "test"):
        for i in chosen[name]:
            split[i] = name
    return split


def trajectory_seeds(seed: int, n: int) -> List[int]:
    """Independent per-trajectory seeds derived from ``seed`` (numpy SeedSequence)."""
    import numpy as np

    children = np.random.SeedSequence(int(seed)).spawn(n)
    return [int(c.generate_state(1, dtype=np.uint32)[0]) for c in children]


def file_sha256(path: str) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

"""What one distillation run does: :class:`DistillSettings` and the student sizes.

Times in fs, temperatures in K.
"""

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from ..errors import UserInputError

#: student sizes: model hypers on top of the student options (width, message-passing
#: layers, cutoff in the name)
SIZES: Dict[str, Dict[str, object]] = {
    "d8-L1-c3.5": dict(d_pet=8, d_head=8, d_node=8, d_feedforward=16,
                       num_heads=1, num_gnn_layers=1, cutoff=3.5),
    "d16-L1-c3.5": dict(d_pet=16, d_head=16, d_node=16, d_feedforward=32,
                        num_heads=2, num_gnn_layers=1, cutoff=3.5),
    "d32-L1-c4.5": dict(d_pet=32, d_head=32, d_node=32, d_feedforward=64,
                        num_heads=2, num_gnn_layers=1, cutoff=4.5),
    # on molecules (ethanol) the one-layer students stay on the direct heads'
    # initial plateau, this one learns (docs/distill.md)
    "d16-L2-c4.5": dict(d_pet=16, d_head=16, d_node=16, d_feedforward=32,
                        num_heads=2, num_gnn_layers=2, cutoff=4.5),
    # the demo size (recipes/demo, recipes/water_chgnet): a real teacher's student
    "d32-L2-c4.5": dict(d_pet=32, d_head=32, d_node=32, d_feedforward=64,
                        num_heads=2, num_gnn_layers=2, cutoff=4.5),
}  # fmt: skip
DEFAULT_SIZES = ("d8-L1-c3.5", "d16-L1-c3.5", "d32-L1-c4.5")


@dataclass
class DistillSettings:
    """Settings of one run.

    Data (unless a labelled set is given): one Langevin trajectory of the teacher per
    temperature (``mtt-nc reference``: heavier hydrogen, a frame every
    ``interval_steps``), labelled by the teacher; the trajectory at the middle
    temperature is held out as the test set.
    """

    temperatures: Tuple[float, ...] = (300.0, 350.0, 400.0)
    #: structure-file frames the trajectories start from (``None``: spread)
    start_frames: Optional[Tuple[int, ...]] = None
    frames_per_trajectory: int = 60
    equilibration_steps: int = 50
    interval_steps: int = 8
    #: inner step of the stride scans, the NVE runs and the timing; the teacher's
    #: own MD is timed at ``teacher_timestep_fs``
    inner_fs: float = 0.25
    teacher_timestep_fs: float = 0.5
    sizes: Tuple[str, ...] = DEFAULT_SIZES
    epochs: int = 30
    learning_rate: Optional[float] = None
    batch_size: Optional[int] = None
    #: stride scan: NVE segments of ``scan_fs`` at ``inner_fs``
    scan_fs: float = 60.0
    max_stride: int = 8
    #: NVE production runs (teacher conservative, each pair at its stride)
    run_fs: float = 100.0
    #: timing: repeats of ``timing_inner_steps`` inner steps per dynamics
    timing_repeats: int = 3
    timing_inner_steps: int = 32
    cost_repeats: int = 7
    jobs: int = 2

    def timing_outer_steps(self, stride: int) -> int:
        """Outer steps of one timed repeat at ``stride``."""
        return max(1, self.timing_inner_steps // stride)

    @property
    def test_trajectory(self) -> int:
        """The held-out trajectory: the one at the middle temperature."""
        order = sorted(range(len(self.temperatures)), key=self.temperatures.__getitem__)
        return order[len(order) // 2]

    def reference_options(self) -> Dict[str, object]:
        """The plan options of the data's reference build (``mtt-nc reference``)."""
        return dict(
            trajectories=len(self.temperatures),
            temperatures=",".join(f"{t:g}" for t in self.temperatures),
            frames_per_trajectory=self.frames_per_trajectory,
            start_frames=self.start_frames,
            equilibration_steps=self.equilibration_steps,
            interval_steps=self.interval_steps,
            validation_trajectories=[],
            test_trajectories=[self.test_trajectory],
        )

    @classmethod
    def quick(cls) -> "DistillSettings":
        """A test of the pipeline (a couple of minutes)."""
        return cls(
            frames_per_trajectory=4,
            equilibration_steps=4,
            interval_steps=4,
            sizes=("d8-L1-c3.5",),
            epochs=1,
            scan_fs=4.0,
            max_stride=4,
            run_fs=5.0,
            timing_repeats=1,
            timing_inner_steps=8,
            cost_repeats=2,
        )

    def check(self) -> None:
        """Raise :class:`UserInputError` for settings that cannot run."""
        if len(self.temperatures) < 2:
            raise UserInputError(
                "--temperatures: give at least two (one trajectory is held out as "
                "the test set)"
            )
        unknown = [s for s in self.sizes if s not in SIZES]
        if unknown:
            raise UserInputError(
                f"unknown student size(s) {unknown}: choose from {list(SIZES)}"
            )
        if self.epochs < 1:
            raise UserInputError("--epochs must be at least 1")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise UserInputError("--learning-rate must be positive")
        if self.batch_size is not None and self.batch_size < 1:
            raise UserInputError("--batch-size must be at least 1")
        if self.jobs < 1:
            raise UserInputError("--jobs must be at least 1")

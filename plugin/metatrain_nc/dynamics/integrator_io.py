"""ASE outputs of :class:`~.integrator.MultipleTimeStep` without a calculator on the
atoms: :meth:`~IntegratorOutputs.snapshot` frames, and the ``trajectory=`` and
``logfile=`` writers built from them (the same frames and log lines as ASE writes
with a calculator attached: the energy and the forces of record).

:class:`IntegratorOutputs` is a mixin of the integrator: it reads the dynamics'
``atoms``, ``potential_energy()``, ``forces()`` and ASE's ``attach``,
``closelater``, ``comm`` and ``todict``.
"""

import ase


class IntegratorOutputs:
    """``snapshot()`` and the ``trajectory=`` / ``logfile=`` writers of the
    integrator (a mixin of :class:`~.integrator.MultipleTimeStep`)."""

    def snapshot(self) -> ase.Atoms:
        """A copy of the atoms (momenta and constraints included) with a
        single-point calculator holding what the integrator reports at the current
        positions: the energy (eV) and the forces of record (eV/A, (N, 3): the slow
        ones, conservative for ``mts``/``conservative``, direct for ``direct``)."""
        from ase.calculators.singlepoint import SinglePointCalculator

        frame = self.atoms.copy()
        energy = self.potential_energy()
        calc = SinglePointCalculator(
            frame, energy=energy, free_energy=energy, forces=self.forces()
        )
        calc.name = "modelcalculator"  # what trajectories said before: same frames
        frame.calc = calc
        return frame

    def _attach_trajectory(self, trajectory, interval: int, append, master) -> None:
        """ASE's ``trajectory=``: a frame every ``interval`` steps from
        :meth:`snapshot` (what ASE writes from a calculator attached to the atoms)."""
        from ase.io.trajectory import Trajectory

        if not hasattr(trajectory, "write"):
            trajectory = self.closelater(
                Trajectory(
                    trajectory,
                    mode="a" if append else "w",
                    master=master,
                    comm=self.comm,
                )
            )
        description = {"interval": interval}

        def write() -> None:
            if hasattr(trajectory, "set_description"):
                trajectory.set_description(dict(self.todict(), **description))
            trajectory.write(self.snapshot())

        self.attach(write, interval=interval)
        self.trajectory = trajectory

    def _attach_logger(self, logfile, interval: int) -> None:
        """ASE's ``logfile=``: :class:`ase.md.MDLogger` lines with the integrator's
        potential energy."""
        from ase.md import MDLogger

        class _Logger(MDLogger):
            def _potential_energy(inner):
                return inner.dyn.potential_energy()

        logger = self.closelater(
            _Logger(dyn=self, atoms=self.atoms, logfile=logfile, comm=self.comm)
        )
        self.attach(logger, interval)

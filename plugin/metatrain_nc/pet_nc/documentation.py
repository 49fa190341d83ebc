"""
PET-NC: PET with direct (non-conservative) forces
=================================================

``pet_nc`` is metatrain's PET whose forces and stress are predicted *directly* by
heads instead of as derivatives of the energy (the PET-NC model of Bigi, Langer and
Ceriotti, "The dark side of the forces", ICML 2025). Evaluating it needs no backward
pass: about 3x cheaper than a conservative PET of the same size, at the price of
forces that are not the gradient of any energy.

The options file is the one of stock ``pet``: an ``energy`` target with ``forces``
(and ``stress`` for periodic data). The force and stress labels are routed to the
direct heads (no backward pass happens in training); the energy head is trained on
energies only. Loss weights are written as for ``pet``::

    architecture:
      name: pet_nc
      training:
        loss:
          energy:
            weight: 1.0
            forces: {weight: 10.0}   # weight of the direct forces
            stress: {weight: 1.0}    # weight of the direct stress

The exported model has the outputs ``energy``, ``non_conservative_force`` and, for
periodic training data, ``non_conservative_stress``: use it with metatomic's ASE
calculator (``non_conservative=True``, or ``"forces"`` without stress), i-PI or
LAMMPS. The direct forces sum to zero per structure inside the model.

Fine-tuning (``training.finetune``) and ``--restart`` route the labels of the *new*
data set, so a change of periodicity or labels goes as with stock ``pet``: a model
trained on periodic data with stress fine-tunes on molecules (its direct stress head,
without labels, is dropped by the ``full`` and ``lora`` methods and kept untrained
otherwise), and a molecular model fine-tunes on periodic data with stress (a direct
stress head is added). A data set without force labels is refused, naming them.

Zero net force: with the default ``edge`` head the direct forces are pair forces
(Newton's third law), so they sum to zero over every system the model evaluates; the
``atom`` head removes the mean force of each system before ``selected_atoms`` are
sliced out. When an engine hands the model a domain with ghost atoms (LAMMPS with
domain decomposition), "the system" is that domain: the sum is zero over local and
ghost atoms together, and the engine's own reduction decides the rest.

After training, one line of the log gives lambda of the direct head, the
antisymmetry ratio ``||(J - J^T)/2||_F / ||J||_F`` of its force Jacobian (0 for
conservative forces), measured on the exported (best) model and up to 10 validation
structures, with its error bar, the number of structures and the method; the value
is stored in the checkpoint and in the exported model's metadata. See the trainer
hyperparameter ``lambda_estimate`` below and ``docs/antisymmetry.md``.

All of PET's hyperparameters are accepted with the same names and defaults; the
additions and the trainer defaults that differ from PET are documented below.
"""

from metatrain_nc.direct.documentation import DirectModelHypers, DirectTrainerHypers


class ModelHypers(DirectModelHypers):
    """Hyperparameters of the ``pet_nc`` model."""


class TrainerHypers(DirectTrainerHypers):
    """Hyperparameters of the ``pet_nc`` trainer."""

"""
PET-M: conservative and direct forces from one PET
==================================================

``pet_m`` is metatrain's PET with a conservative energy head (forces and stress by
automatic differentiation) *and* direct force and stress heads on the same
backbone, trained jointly on the same labels (the PET-M model of Bigi, Langer and
Ceriotti, "The dark side of the forces", ICML 2025). One evaluation of the exported
model returns both kinds of forces: the direct forces drive the cheap inner steps
of multiple-time-step dynamics and the conservative forces correct them every few
steps (``mtt-nc md --forces mts``, i-PI's ``mts_weights``, LAMMPS ``run_style
respa``).

The options file is the one of stock ``pet``: an ``energy`` target with ``forces``
(and ``stress`` for periodic data). Each head has its own loss weight::

    architecture:
      name: pet_m
      training:
        loss:
          energy:
            weight: 1.0
            forces: {weight: 10.0}   # conservative forces (-dE/dr)
        direct_forces_weight: 10.0   # direct forces (default: the same as above)

A ``pet_nc`` checkpoint can be continued as ``pet_m`` with metatrain's fine-tuning
(``training.finetune.read_from``): pre-train direct, fine-tune conservative (the
paper's Appendix H). Stock ``pet`` starts from a ``pet_nc`` or ``pet_m`` checkpoint
the same way (it keeps the backbone and the energy head, the direct heads are
dropped).

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
antisymmetry ratio ``||(J - J^T)/2||_F / ||J||_F`` of its force Jacobian, measured on
the exported (best) model and up to 10 validation structures, with its error bar, the
number of structures and the method, and says that the conservative head's lambda is
0 by construction (its Jacobian is minus the Hessian of the energy; it is not
computed). The value is stored in the checkpoint and in the exported model's
metadata. See the trainer hyperparameter ``lambda_estimate`` below and
``docs/antisymmetry.md``.

The exported model has the outputs ``energy``, ``non_conservative_force`` and, for
periodic training data, ``non_conservative_stress``. All of PET's hyperparameters are
accepted with the same names and defaults; the additions and the trainer defaults
that differ from PET are documented below.
"""

from typing import Optional

from metatrain_nc.direct.documentation import DirectModelHypers, DirectTrainerHypers


class ModelHypers(DirectModelHypers):
    """Hyperparameters of the ``pet_m`` model."""


class TrainerHypers(DirectTrainerHypers):
    """Hyperparameters of the ``pet_m`` trainer."""

    direct_forces_weight: Optional[float] = None
    """Loss weight of the direct forces (``non_conservative_force``).

    ``None``: the weight of the conservative forces, i.e. the ``forces`` weight of
    the ``energy`` loss, so that both heads count the same. The loss type is the
    one of the conservative forces. Use a small weight (e.g. ``0.1``) when
    fine-tuning a ``pet_nc`` checkpoint as ``pet_m`` (the paper's Appendix H), to
    keep the direct head while the conservative head catches up.
    """

    direct_stress_weight: Optional[float] = None
    """Loss weight of the direct stress (``non_conservative_stress``); ``None``: the
    weight of the conservative stress."""

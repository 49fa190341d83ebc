"""Hyperparameters shared by ``pet_nc`` and ``pet_m`` (on top of PET's)."""

from typing import Literal

from metatrain.pet.documentation import ModelHypers as PETModelHypers
from metatrain.pet.documentation import TrainerHypers as PETTrainerHypers


class DirectModelHypers(PETModelHypers):
    """PET's model hyperparameters (same names, same defaults) plus the direct head."""

    direct_force_head: Literal["edge", "atom"] = "edge"
    """How direct forces are built from PET's features.

    ``"edge"``: pair forces along the bonds, ``f_i = sum_j w_ij r_ij/|r_ij|`` with
    ``w_ij = w_ji`` predicted from PET's edge features. Zero net force per structure
    by construction (Newton's third law), the better rotational behaviour, and about
    the accuracy of ``"atom"``. ``"atom"``: PET's generic per-atom vector head, with
    the mean force of each structure removed.
    """


class DirectTrainerHypers(PETTrainerHypers):
    """PET's trainer hyperparameters, with defaults tuned for direct heads."""

"""Hyperparameters shared by ``pet_nc`` and ``pet_m`` (on top of PET's)."""

from typing import Callable, Literal, Optional

from metatrain.pet.documentation import ModelHypers as PETModelHypers
from metatrain.pet.documentation import TrainerHypers as PETTrainerHypers
from pydantic import AfterValidator
from typing_extensions import Annotated, TypedDict

from metatrain_nc.antisymmetry.settings import MAX_EXACT_ROWS

#: most probes per structure of the training-time lambda estimate
MAX_LAMBDA_PROBES = 1024


def _bounded(
    name: str, low: int, high: Optional[int], why: str
) -> Callable[[int], int]:
    """A pydantic validator refusing ``lambda_estimate.<name>`` outside
    ``[low, high]`` (no upper bound for ``None``) with a message saying why."""

    def check(value: int) -> int:
        if value < low or (high is not None and value > high):
            bounds = f">= {low}" if high is None else f"between {low} and {high}"
            raise ValueError(
                f"lambda_estimate.{name} must be {bounds} ({why}), got {value}"
            )
        return value

    return check


class LambdaEstimateHypers(TypedDict):
    """How the trainer estimates lambda of the direct head after training.

    The defaults cost 0.2-3% of the training time of the bundled small recipes
    (measured; see ``docs/antisymmetry.md``).
    """

    structures: Annotated[
        int,
        AfterValidator(_bounded("structures", 0, None, "0 switches the estimate off")),
    ] = 10
    """Validation structures to estimate lambda on (the first ones of the
    validation set, all of them if it has fewer); ``0`` switches the estimate off."""

    probes: Annotated[
        int,
        AfterValidator(
            _bounded(
                "probes",
                2,
                MAX_LAMBDA_PROBES,
                "an error bar needs 2 probes; more than "
                f"{MAX_LAMBDA_PROBES} cost more than an exact Jacobian of most "
                "structures",
            )
        ),
    ] = 4
    """Random probes per structure of the stochastic estimate (structures larger
    than ``exact_max_atoms``); the error bar shrinks as 1/sqrt(probes)."""

    exact_max_atoms: Annotated[
        int,
        AfterValidator(
            _bounded(
                "exact_max_atoms",
                0,
                MAX_EXACT_ROWS // 3,
                f"exact Jacobians are limited to {MAX_EXACT_ROWS} rows, i.e. "
                f"{MAX_EXACT_ROWS // 3} atoms; 0 makes every estimate stochastic",
            )
        ),
    ] = 100
    """Structures with at most this many atoms get the exact lambda (3N backward
    passes, packed with the other small structures); larger ones the stochastic
    estimate with ``probes`` probes and an error bar."""

    every_checkpoints: Annotated[
        int,
        AfterValidator(
            _bounded("every_checkpoints", 0, None, "0: only at the end of training")
        ),
    ] = 0
    """Also estimate lambda at every K-th intermediate checkpoint (see
    ``checkpoint_interval``) and store it in that checkpoint; ``0``: only at the
    end of training."""


LAMBDA_ESTIMATE_DEFAULTS: LambdaEstimateHypers = {
    "structures": 10,
    "probes": 4,
    "exact_max_atoms": 100,
    "every_checkpoints": 0,
}


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

    learning_rate: float = 1e-3
    """Base learning rate (PET's default is ``1e-4``).

    Direct force heads start on a long plateau where they predict almost zero
    forces (the error equals the force RMS) and only leave it after tens of epochs
    at ``1e-3``. At PET's ``1e-4`` they stay there for hundreds of epochs: measured
    on 90 ethanol frames with a 272k-parameter model, the direct-force validation
    RMSE after 150 epochs was 1201 meV/A at ``1e-4`` and 692 meV/A at ``1e-3``
    (force RMS 1200 meV/A), the same as a plain PyTorch loop with Adam at ``1e-3``
    on the same frames, and as the conservative ``pet`` at ``1e-3`` (786-848 meV/A
    after 70-80 epochs). Lower it for very large data sets or batches.
    """

    lambda_estimate: LambdaEstimateHypers = LAMBDA_ESTIMATE_DEFAULTS
    """Lambda of the direct head, ``||(J - J^T)/2||_F / ||J||_F`` of its force
    Jacobian (0 for conservative forces), estimated after training on the model
    that is exported (the best one) and on ``structures`` validation structures:
    exact up to ``exact_max_atoms`` atoms, stochastic with ``probes`` probes
    above. One line in the training log gives its mean over the structures with
    an error bar, the number of structures and the method; the value is stored in
    the model's metadata (``extra["lambda_estimate"]``, JSON), i.e. in the
    checkpoint and in the exported model (read it with
    ``metatrain_nc.direct.lambda_estimate.read_estimate``). It never stops
    training: an estimate that cannot run is reported and skipped. Estimates run
    on the CPU. Example::

        lambda_estimate: {structures: 20, probes: 8, every_checkpoints: 5}
        lambda_estimate: {structures: 0}     # off
    """

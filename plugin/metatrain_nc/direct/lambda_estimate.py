"""Lambda of the direct head, estimated by the trainer on validation structures.

After training (and, with ``lambda_estimate.every_checkpoints: K``, at every K-th
intermediate checkpoint) the ``pet_nc`` / ``pet_m`` trainers measure how
non-conservative the direct force head is: the antisymmetry ratio
``lambda = ||(J - J^T)/2||_F / ||J||_F`` of its force Jacobian, averaged over up to
``lambda_estimate.structures`` validation structures. The work is the antisymmetry
evaluator's (:func:`metatrain_nc.antisymmetry.evaluate`): structures with at most
``exact_max_atoms`` atoms get the exact lambda, packed into few model evaluations;
larger ones the stochastic estimate with ``probes`` probes and its error bar.

The result is one line of metatrain's log and a JSON record (:class:`LambdaEstimate`)
stored in the model's metadata (``extra["lambda_estimate"]``, a JSON string:
``ModelMetadata.extra`` holds strings): it reaches the checkpoint
(``checkpoint["metadata"]``) and the exported model (``model.metadata()``).
:func:`read_estimate` reads it back from either.
"""

import copy
import json
import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import ase
import numpy as np
import torch

#: key of the record in ``ModelMetadata.extra`` (a JSON string)
LAMBDA_KEY = "lambda_estimate"

#: rows (sum of 3N) packed into one evaluation by the trainer's estimate: less than
#: the evaluator's default, so that the second-order graph of the stochastic path
#: stays within the memory of a training batch of the bundled recipes
TRAINER_PACK_ROWS = 1500

CONSERVATIVE_NOTE = (
    "the conservative head (-dE/dr of energy) has lambda = 0 by construction "
    "(not computed)"
)


@dataclass
class LambdaEstimate:
    """Lambda of the direct head on validation structures.

    :ivar value: mean of the per-structure lambdas (dimensionless).
    :ivar error: standard error of ``value`` from the stochastic estimates (0 when
        every structure is exact).
    :ivar structures: structures used; ``exact`` and ``stochastic`` of them by
        each method, ``probes`` per stochastic structure.
    :ivar model: ``"best"`` (the model that is exported) or ``"latest"`` (the
        weights at an intermediate checkpoint); ``epoch``: its epoch.
    :ivar validation: ``[dataset, index]`` of each structure in metatrain's
        validation datasets.
    :ivar per_structure: lambda of each structure, in that order.
    :ivar seconds: wall time of the estimate.
    """

    value: float
    error: float
    structures: int
    exact: int
    stochastic: int
    probes: int
    model: str = "best"
    epoch: Optional[int] = None
    output: str = "non_conservative_force"
    architecture: str = ""
    validation: List[List[int]] = field(default_factory=list)
    per_structure: List[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def method(self) -> str:
        """``exact``, ``stochastic, P probes`` or both with their counts."""
        stochastic = f"stochastic, {self.probes} probes"
        if self.stochastic == 0:
            return "exact"
        if self.exact == 0:
            return stochastic
        return f"{self.exact} exact, {self.stochastic} {stochastic}"

    def line(self, requested: Optional[int] = None) -> str:
        """The line of the training log.

        :param requested: structures asked for (said when the validation set has
            fewer).
        """
        epoch = "" if self.epoch is None else f", epoch {self.epoch}"
        plural = "s" if self.structures != 1 else ""
        where = f"on {self.structures} validation structure{plural}"
        if requested is not None and requested > self.structures:
            where += " (the whole validation set)"
        text = (
            f"lambda of the direct head ({self.output}), {self.model} model{epoch}, "
            f"{where}: {self.value:.4g} +- {self.error:.2g} ({self.method}; "
            f"{self.seconds:.1f} s)"
        )
        if self.architecture == "pet_m":
            text += f"; {CONSERVATIVE_NOTE}"
        return text

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "LambdaEstimate":
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})


def validation_frames(
    datasets: Sequence[Any], count: int, length_unit: str = "angstrom"
) -> Tuple[List[ase.Atoms], List[List[int]]]:
    """The first ``count`` structures of metatrain's validation datasets as ASE
    structures (positions converted to A), with ``[dataset, index]`` of each."""
    from metatomic.torch import unit_conversion_factor

    factor = unit_conversion_factor(length_unit or "angstrom", "angstrom")
    frames: List[ase.Atoms] = []
    where: List[List[int]] = []
    for d, dataset in enumerate(datasets):
        for index in range(len(dataset)):
            if len(frames) >= count:
                return frames, where
            system = dataset[index]["system"]
            frames.append(
                ase.Atoms(
                    numbers=system.types.detach().cpu().numpy(),
                    positions=system.positions.detach().cpu().double().numpy() * factor,
                    cell=system.cell.detach().cpu().double().numpy() * factor,
                    pbc=system.pbc.detach().cpu().numpy(),
                )
            )
            where.append([d, index])
    return frames, where


def estimate_lambda(
    model: Any,
    frames: Sequence[ase.Atoms],
    hypers: Dict[str, int],
    state_dict: Optional[Dict[str, Any]] = None,
) -> LambdaEstimate:
    """Lambda of ``model``'s direct head on ``frames``.

    ``model`` (a :class:`~.model.DirectPET`, left untouched) is copied, given
    ``state_dict`` if any (the best weights), exported in memory and evaluated by
    :func:`metatrain_nc.antisymmetry.evaluate`: exact for structures of at most
    ``hypers["exact_max_atoms"]`` atoms, stochastic with ``hypers["probes"]`` probes
    above.
    """
    from ..antisymmetry import AntisymmetrySettings, evaluate
    from ..force_models.metatomic import MetatomicModel
    from ..force_models.timing import WallClock
    from .routing import FORCE_OUTPUT

    clock = WallClock().start()
    if FORCE_OUTPUT not in model.outputs:
        raise ValueError(f"the model has no '{FORCE_OUTPUT}' output")
    copied = copy.deepcopy(model).cpu()
    if state_dict is not None:
        state = {k: v for k, v in state_dict.items() if k != "finetune_config"}
        copied.load_state_dict(state)
    force_model = MetatomicModel(copied.eval().export())
    settings = AntisymmetrySettings(
        output=FORCE_OUTPUT,
        pairs=False,
        keep_forces=False,
        packing="packed",  # never slower; no timing trial to pay for
        pack_rows=TRAINER_PACK_ROWS,
    )
    small = [i for i, a in enumerate(frames) if len(a) <= hypers["exact_max_atoms"]]
    large = [i for i, a in enumerate(frames) if len(a) > hypers["exact_max_atoms"]]
    lambdas = np.zeros(len(frames))
    errors = np.zeros(len(frames))
    with torch.enable_grad():
        if small:
            report = evaluate([frames[i] for i in small], force_model, settings)
            lambdas[small] = report.lambdas
        if large:
            report = evaluate(
                [frames[i] for i in large],
                force_model,
                settings,
                stochastic=True,
                probes=hypers["probes"],
            )
            lambdas[large] = report.lambdas
            errors[large] = [s.error for s in report.structures]
    return LambdaEstimate(
        value=float(lambdas.mean()),
        error=float(math.sqrt(float((errors**2).sum())) / len(frames)),
        structures=len(frames),
        exact=len(small),
        stochastic=len(large),
        probes=int(hypers["probes"]),
        architecture=str(getattr(model, "architecture_name", "")),
        per_structure=[float(x) for x in lambdas],
        seconds=clock.stop(),
    )


def run_estimate(
    model: Any,
    datasets: Sequence[Any],
    hypers: Dict[str, int],
    *,
    which: str,
    epoch: Optional[int],
    state_dict: Optional[Dict[str, Any]] = None,
) -> Optional[LambdaEstimate]:
    """Estimate, log and store lambda; report and skip whatever prevents it.

    Never raises: training must not fail because of the estimate. The record is
    stored in ``model.metadata`` (replacing an older one) when the estimate ran.

    :param which: ``"best"`` or ``"latest"`` (which weights are estimated).
    :return: the estimate, or ``None`` if it was skipped.
    """
    count = int(hypers["structures"])
    if count <= 0:
        logging.info(
            "lambda of the direct head: not estimated (lambda_estimate.structures is 0)"
        )
        return None
    try:
        available = sum(len(d) for d in datasets)
        if available == 0:
            logging.warning(
                "lambda of the direct head: skipped, there are no validation "
                "structures (give a validation_set to estimate it)"
            )
            return None
        length_unit = model.dataset_info.length_unit
        frames, where = validation_frames(datasets, count, length_unit)
        estimate = estimate_lambda(model, frames, hypers, state_dict=state_dict)
    except Exception as error:  # noqa: BLE001 (reported, never fatal)
        logging.warning(
            "lambda of the direct head: skipped, the estimate could not run "
            f"({type(error).__name__}: {error})"
        )
        return None
    estimate.model = which
    estimate.epoch = epoch
    estimate.validation = where
    logging.info(estimate.line(requested=count))
    store_estimate(model, estimate)
    return estimate


def store_estimate(model: Any, estimate: Optional[LambdaEstimate]) -> None:
    """Put ``estimate`` into ``model.metadata.extra`` (remove it for ``None``)."""
    from metatomic.torch import ModelMetadata

    metadata = getattr(model, "metadata", None)
    if metadata is None:
        return
    state = json.loads(metadata._get_method("__getstate__")())
    state.pop("class", None)
    extra = dict(state.get("extra") or {})
    extra.pop(LAMBDA_KEY, None)
    if estimate is not None:
        extra[LAMBDA_KEY] = estimate.to_json()
    state["extra"] = extra
    model.metadata = ModelMetadata(**state)


def read_estimate(source: Any) -> Optional[Dict[str, Any]]:
    """The stored record as a dictionary, or ``None``.

    :param source: a checkpoint dictionary (``torch.load("model.ckpt")``), a
        ``ModelMetadata``, or a model with ``metadata`` (an exported
        ``AtomisticModel`` or a metatrain model).
    """
    if isinstance(source, dict):
        source = source.get("metadata")
    metadata = source
    if callable(getattr(source, "metadata", None)):
        metadata = source.metadata()
    elif getattr(source, "metadata", None) is not None:
        metadata = source.metadata
    extra = getattr(metadata, "extra", None)
    if not extra or LAMBDA_KEY not in extra:
        return None
    return json.loads(extra[LAMBDA_KEY])

"""Route force and stress labels of an ``energy`` target to the direct heads.

A stock-``pet`` dataset section declares forces and stress as *gradients* of the
``energy`` target (``positions`` and ``strain`` gradients). The direct heads learn
them as ordinary targets instead:

- ``non_conservative_force``: per atom, Cartesian rank 1, ``F = -dE/dr``;
- ``non_conservative_stress``: per structure, Cartesian rank 2,
  ``sigma = (dE/d strain) / V``.

Both names are the metatomic standard outputs that ASE, i-PI, LAMMPS and torch-sim
use with their ``non_conservative`` switch.

Routing is a function of one data set's dataset info (:func:`route_dataset_info`):
a direct target the data set already declares is never routed. Which targets of a
model routing made is recorded explicitly (:data:`ROUTED_TARGETS_KEY`), never
recognised by a description.
"""

from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

import torch
from metatensor.learn.data._namedtuple import namedtuple
from metatensor.torch import Labels, TensorBlock, TensorMap
from metatrain.utils.data import DatasetInfo, TargetInfo
from metatrain.utils.data.target_info import get_energy_target_info

from ..force_models.names import DIRECT_FORCE as FORCE_OUTPUT
from ..force_models.names import DIRECT_STRESS as STRESS_OUTPUT
from ..force_models.names import ENERGY

#: the explicit mark of routed targets: the key, in a checkpoint's ``model_data``,
#: of ``{direct target: energy gradient it is learned from}`` for the targets of the
#: stored dataset info that routing made (the other direct targets, if any, were
#: declared by the user). Nothing is recognised by its description.
ROUTED_TARGETS_KEY = "routed_targets"

#: the energy gradient each direct target is routed from
GRADIENTS = {FORCE_OUTPUT: "positions", STRESS_OUTPUT: "strain"}

#: the label behind each energy gradient, as written in the options file
LABELS = {"positions": "forces", "strain": "stress"}

#: descriptions given to the targets routing makes (shown by exported models). Text
#: only: a restart keeps the description its checkpoint stored, so rewording these
#: never makes an older checkpoint's targets incompatible with new ones
DESCRIPTIONS = {
    FORCE_OUTPUT: "direct forces, learned from the energy's force labels",
    STRESS_OUTPUT: "direct stress, learned from the energy's stress labels",
}


@dataclass(frozen=True)
class Routes:
    """Which labels of a data set feed which direct target.

    :param forces: whether ``non_conservative_force`` is built from the energy's
        ``positions`` gradients (False if absent or given explicitly by the user).
    :param stress: same for ``non_conservative_stress`` from ``strain`` gradients.
    :param keep_conservative: whether the ``energy`` target keeps its gradients
        (``pet_m``) or loses them (``pet_nc``).
    :param targets: the targets of that data set once routed (names).
    """

    forces: bool
    stress: bool
    keep_conservative: bool
    targets: Tuple[str, ...] = ()

    @property
    def any(self) -> bool:
        return self.forces or self.stress

    @property
    def routed(self) -> Dict[str, str]:
        """``{direct target: energy gradient}`` for the targets these routes make."""
        made = {FORCE_OUTPUT: self.forces, STRESS_OUTPUT: self.stress}
        return {name: GRADIENTS[name] for name, on in made.items() if on}

    @classmethod
    def of_model(
        cls,
        routed_targets: Mapping[str, str],
        keep_conservative: bool,
        targets: Iterable[str],
    ) -> "Routes":
        """The routes that made a model's routed targets (a loaded checkpoint).

        :param routed_targets: the model's ``{direct target: energy gradient}``.
        :param keep_conservative: as in :class:`Routes`.
        :param targets: the names of the model's targets.
        """
        return cls(
            forces=FORCE_OUTPUT in routed_targets,
            stress=STRESS_OUTPUT in routed_targets,
            keep_conservative=keep_conservative,
            targets=tuple(targets),
        )


def _rank1_layout() -> TensorMap:
    block = TensorBlock(
        values=torch.empty(0, 3, 1, dtype=torch.float64),
        samples=Labels(["system", "atom"], torch.empty((0, 2), dtype=torch.int32)),
        components=[Labels(["xyz"], torch.arange(3, dtype=torch.int32).reshape(-1, 1))],
        properties=Labels.range(FORCE_OUTPUT, 1),
    )
    return TensorMap(Labels.single(), [block])


def _rank2_layout() -> TensorMap:
    xyz = torch.arange(3, dtype=torch.int32).reshape(-1, 1)
    block = TensorBlock(
        values=torch.empty(0, 3, 3, 1, dtype=torch.float64),
        samples=Labels(["system"], torch.empty((0, 1), dtype=torch.int32)),
        components=[Labels(["xyz_1"], xyz), Labels(["xyz_2"], xyz.clone())],
        properties=Labels.range(STRESS_OUTPUT, 1),
    )
    return TensorMap(Labels.single(), [block])


def energy_without_gradients(energy: TargetInfo) -> TargetInfo:
    """The ``energy`` target without its gradients (``pet_nc`` trains no
    conservative forces)."""
    block = energy.layout.block()
    stripped = TensorBlock(
        values=block.values,
        samples=block.samples,
        components=block.components,
        properties=block.properties,
    )
    return TargetInfo(
        layout=TensorMap(energy.layout.keys, [stripped]),
        quantity=energy.quantity,
        unit=energy.unit,
        description=energy.description,
    )


def energy_with_gradients(energy: TargetInfo, gradients: Iterable[str]) -> TargetInfo:
    """The ``energy`` target with its gradients plus ``gradients`` (``positions``,
    ``strain``): conservative forces / stress trained on those labels."""
    wanted = set(gradients) | set(energy.gradients)
    return get_energy_target_info(
        ENERGY,
        {"unit": energy.unit, "description": energy.description},
        add_position_gradients="positions" in wanted,
        add_strain_gradients="strain" in wanted,
    )


def _with_targets(
    dataset_info: DatasetInfo, targets: Dict[str, TargetInfo]
) -> DatasetInfo:
    return DatasetInfo(
        length_unit=dataset_info.length_unit,
        atomic_types=dataset_info.atomic_types,
        targets=targets,
        extra_data=dict(dataset_info.extra_data),
    )


def force_unit(energy_unit: str, length_unit: str) -> str:
    """The unit of forces for an energy unit and a length unit (``"eV/A"``)."""
    if energy_unit == "" or length_unit == "":
        return ""
    return f"{energy_unit}/{length_unit}"


def stress_unit(energy_unit: str, length_unit: str) -> str:
    """The unit of stress for an energy unit and a length unit (``"eV/A^3"``)."""
    if energy_unit == "" or length_unit == "":
        return ""
    return f"{energy_unit}/{length_unit}^3"


def with_energy_gradients(
    dataset_info: DatasetInfo, gradients: Optional[Iterable[str]]
) -> DatasetInfo:
    """A dataset info whose ``energy`` has ``gradients`` added, or none (``None``).

    Used when a model changes architecture: a ``pet_nc`` model continued as
    ``pet_m`` or stock ``pet`` gives back to the energy the gradients whose labels
    fed its direct heads; a ``pet_m`` model continued as ``pet_nc`` loses them.

    :param dataset_info: a routed dataset info (not modified).
    :param gradients: energy gradients to add (``"positions"``, ``"strain"``), or
        ``None`` to drop them all.
    :return: a new dataset info.
    """
    targets = dict(dataset_info.targets)
    energy = targets.get(ENERGY)
    if energy is not None:
        if gradients is None:
            targets[ENERGY] = energy_without_gradients(energy)
        else:
            targets[ENERGY] = energy_with_gradients(energy, gradients)
    return _with_targets(dataset_info, targets)


def route_dataset_info(
    dataset_info: DatasetInfo,
    keep_conservative: bool,
    descriptions: Optional[Mapping[str, str]] = None,
) -> Tuple[DatasetInfo, Routes]:
    """Build the dataset info the direct heads train on, from a data set's.

    A direct target the dataset info already has (declared by the user, or made
    by an earlier routing, as in a stored checkpoint) is kept as it is and never
    routed: routing an already routed dataset info changes nothing.

    :param dataset_info: the dataset info ``mtt train`` built from the options file.
    :param keep_conservative: keep the energy's gradients (``pet_m``) or drop them
        (``pet_nc``).
    :param descriptions: descriptions to give routed targets instead of
        :data:`DESCRIPTIONS` (a restart passes those its checkpoint stored, which
        metatrain compares with the new ones).
    :return: the routed dataset info (a new object; the input is not modified) and
        the routes taken.
    """
    targets: Dict[str, TargetInfo] = dict(dataset_info.targets)
    energy = targets.get(ENERGY)
    gradients: List[str] = [] if energy is None else list(energy.gradients)
    descriptions = dict(DESCRIPTIONS, **(descriptions or {}))
    forces = "positions" in gradients and FORCE_OUTPUT not in targets
    stress = "strain" in gradients and STRESS_OUTPUT not in targets
    if energy is not None and not keep_conservative and gradients:
        targets[ENERGY] = energy_without_gradients(energy)
    for routed, output, layout, quantity, unit in (
        (forces, FORCE_OUTPUT, _rank1_layout, "force", force_unit),
        (stress, STRESS_OUTPUT, _rank2_layout, "pressure", stress_unit),
    ):
        if routed and energy is not None:
            targets[output] = TargetInfo(
                layout=layout(),
                quantity=quantity,
                unit=unit(energy.unit, dataset_info.length_unit),
                description=descriptions[output],
            )
    routes = Routes(
        forces=forces,
        stress=stress,
        keep_conservative=keep_conservative,
        targets=tuple(targets),
    )
    return _with_targets(dataset_info, targets), routes


def _forces_from_gradient(gradient: TensorBlock) -> TensorMap:
    # positions gradient: samples (sample, system, atom) -> direct forces: (system,
    # atom); values dE/dr -> F = -dE/dr
    samples = Labels(
        ["system", "atom"],
        gradient.samples.values[:, 1:].to(torch.int32),
    )
    block = TensorBlock(
        values=-gradient.values,
        samples=samples,
        components=gradient.components,
        properties=Labels.range(FORCE_OUTPUT, 1),
    )
    return TensorMap(Labels.single(), [block])


def _stress_from_gradient(
    energy_block: TensorBlock, gradient: TensorBlock, cell: torch.Tensor
) -> TensorMap:
    volume = torch.abs(torch.det(cell.to(gradient.values.dtype)))
    values = gradient.values
    if volume == 0.0:
        # metatrain's rule (its ASE reader): a structure without a cell may have
        # stress labels only if they are all NaN, i.e. absent; its losses and
        # metrics skip NaN labels, so they stay NaN here
        if not bool(torch.all(torch.isnan(values))):
            system = int(energy_block.samples.values[0, 0])
            raise ValueError(
                f"structure {system} of the data set has finite stress labels but "
                "no periodic cell (zero cell volume), so it has no stress. Label "
                "the stress (or virial) of structures without a cell with NaN, as "
                "metatrain does, or remove `stress` from the energy target, or "
                "give the structure its cell"
            )
    else:
        values = values / volume
    xyz = torch.arange(3, dtype=torch.int32).reshape(-1, 1)
    block = TensorBlock(
        values=values,
        samples=energy_block.samples,
        components=[Labels(["xyz_1"], xyz), Labels(["xyz_2"], xyz.clone())],
        properties=Labels.range(STRESS_OUTPUT, 1),
    )
    return TensorMap(Labels.single(), [block])


def route_sample_fields(fields: Dict[str, Any], routes: Routes) -> Dict[str, Any]:
    """Route the labels of one dataset sample (a dict of its fields).

    :param fields: the sample as a dict (``system``, ``energy`` with gradients, ...).
    :param routes: what to route, from :func:`route_dataset_info`.
    :return: a new dict with the direct targets added, and the energy's gradients
        dropped unless ``routes.keep_conservative``.
    """
    energy: Optional[TensorMap] = fields.get(ENERGY)
    if energy is None or (not routes.any and routes.keep_conservative):
        return fields
    fields = dict(fields)
    block = energy.block()
    if routes.forces:
        fields[FORCE_OUTPUT] = _forces_from_gradient(block.gradient("positions"))
    if routes.stress:
        fields[STRESS_OUTPUT] = _stress_from_gradient(
            block, block.gradient("strain"), fields["system"].cell
        )
    if not routes.keep_conservative and len(block.gradients_list()) > 0:
        fields[ENERGY] = TensorMap(
            energy.keys,
            [
                TensorBlock(
                    values=block.values,
                    samples=block.samples,
                    components=block.components,
                    properties=block.properties,
                )
            ],
        )
    return fields


class RoutedDataset(torch.utils.data.Dataset):
    """A view of a metatrain dataset whose samples carry the routed labels.

    Samples are returned as named tuples with the original fields plus the direct
    targets. Nothing is copied up front: routing happens per sample, on access.

    :param dataset: a metatrain ``Dataset``, ``DiskDataset`` or ``Subset`` of them.
    :param routes: what to route, from :func:`route_dataset_info`.
    """

    def __init__(self, dataset: Any, routes: Routes) -> None:
        self.dataset = dataset
        self.routes = routes
        self._sample_class: Any = None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        fields = route_sample_fields(self.dataset[index]._asdict(), self.routes)
        if self._sample_class is None or self._sample_class._fields != tuple(fields):
            # metatensor-learn's named tuple: metatrain indexes samples by field name
            self._sample_class = namedtuple("Sample", list(fields))
        return self._sample_class(*fields.values())

    def __getstate__(self) -> Dict[str, Any]:
        # the dynamically created sample class cannot be pickled (spawned workers)
        state = dict(self.__dict__)
        state["_sample_class"] = None
        return state

    def get_num_atoms(self, index: int) -> int:
        """Number of atoms of sample ``index`` (used by metatrain's batch samplers)."""
        from metatrain.utils.data.samplers import _get_num_atoms

        return _get_num_atoms(self.dataset, index)

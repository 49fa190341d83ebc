"""Bonded topology of a structure and its census of molecules: did a run keep its
molecules?

Two atoms are bonded when they are closer than the sum of their covalent radii
(``ase.data.covalent_radii``, A) times :data:`BOND_FACTOR`, periodic images
included; a hydrogen atom keeps only its shortest bond (it is monovalent: a proton
shared between two oxygens in a hydrogen bond belongs to the nearer one, so that a
short hydrogen bond does not merge two molecules, and a proton transfer shows as
soon as the proton is nearer the other oxygen). The molecules are the connected
components of the bond graph (:func:`molecules`); the *census* is how many
molecules of each formula there are, in ASE's Hill notation (:func:`census`:
``Counter({"H2O": 64})``).

:func:`compare` compares a start census with a later one, or with a series of
``(time in fs, census)``: a :class:`TopologyChange` with the molecules broken and
formed, the first time the census differed, and a one-line message such as "the
bonded topology changed: start 64 H2O; now 47 H2O, 15 HO, 1 H3O, 1 H2O2 (first at
250 fs)".

Extended structures: when the start has a component bonded to its own periodic
image (a crystal, a metal, a polymer through the cell: :attr:`Molecules.extended`),
its census does not count molecules and :class:`TopologyWatch` skips the check
(``checked: False`` with the reason, no warning). A non-periodic cluster or a
single molecule in a box is checked (an atom that leaves it is a change).

Choice of :data:`BOND_FACTOR` (1.3): the O-H bond of the reference water of
``recipes/data/water_chgnet`` (CHGNet, 250-450 K) reaches 1.19 A while its shortest
hydrogen bonds come down to 1.23 A, so no cutoff alone separates them with a
margin; the nearest-partner rule of hydrogens does, and 1.3 x (0.31 + 0.66) =
1.26 A leaves 0.07 A above the longest O-H bond. Other cutoffs at 1.3: O-O 1.72 A
(liquid water: above 2.3 A; a peroxide bond, 1.47 A, shows), H-H 0.81 A (H2:
0.74 A), C-H 1.39 A, C-C 1.98 A, C-O 1.85 A.
"""

from collections import Counter
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import ase
import numpy as np

#: bond when closer than this times the sum of the covalent radii
BOND_FACTOR = 1.3

Census = Counter  # molecule formula (Hill notation) -> number of molecules


@dataclass
class Bonds:
    """Bonds of a structure, each once (``first < second``) or as a self-bond to a
    periodic image: atom ``second`` in the image ``shift`` (integer cell vectors)
    is bonded to atom ``first``; ``distance`` in A."""

    first: np.ndarray
    second: np.ndarray
    shift: np.ndarray
    distance: np.ndarray


def bonds(atoms: ase.Atoms, factor: float = BOND_FACTOR) -> Bonds:
    """The bonds of ``atoms``: pairs closer than ``factor`` times the sum of their
    covalent radii (A), across periodic boundaries; a hydrogen keeps only its
    shortest bond."""
    from ase.neighborlist import natural_cutoffs, neighbor_list

    n = len(atoms)
    cutoffs = natural_cutoffs(atoms, mult=factor)
    i, j, d, S = neighbor_list("ijdS", atoms, cutoffs, self_interaction=False)
    if len(i) == 0:
        return Bonds(i, j, S, d)
    hydrogen = atoms.numbers == 1
    # each pair is listed both ways: the nearest entry of each atom
    order = np.lexsort((d, i))
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = i[order][1:] != i[order][:-1]
    nearest = np.full(n, -1)
    nearest[i[order][starts]] = order[starts]
    entries = np.arange(len(i))
    keep_i = ~hydrogen[i] | (entries == nearest[i])
    partner = np.where(nearest >= 0, j[np.maximum(nearest, 0)], -1)
    partner_shift = S[np.maximum(nearest, 0)]
    keep_j = ~hydrogen[j] | ((partner[j] == i) & np.all(partner_shift[j] == -S, axis=1))
    # one direction of each pair: i < j, or i == j with the first nonzero shift > 0
    first_nonzero = np.take_along_axis(
        S, np.argmax(S != 0, axis=1)[:, None], axis=1
    ).ravel()
    once = (i < j) | ((i == j) & (first_nonzero > 0))
    keep = keep_i & keep_j & once
    return Bonds(i[keep], j[keep], S[keep], d[keep])


@dataclass
class Molecules:
    """The connected components of the bond graph of a structure.

    :ivar labels: the component of each atom (0, 1, ...).
    :ivar formulas: the formula of each component (Hill notation).
    :ivar extended: of each component, whether it is bonded to its own periodic
        image (an infinite network: a crystal, a metal, a chain through the cell).
    """

    labels: np.ndarray
    formulas: List[str]
    extended: List[bool]

    @property
    def census(self) -> Census:
        """How many components of each formula."""
        return Counter(self.formulas)

    @property
    def any_extended(self) -> bool:
        return any(self.extended)


def molecules(
    atoms: ase.Atoms,
    factor: float = BOND_FACTOR,
    find_extended: bool = True,
    found: Optional[Bonds] = None,
) -> Molecules:
    """The molecules (connected components of :func:`bonds`) of ``atoms``.

    :param find_extended: look for components bonded to their own periodic image
        (a walk over the bonds; ``False``: every component is marked finite).
    :param found: the :func:`bonds` of ``atoms``, if already computed.
    """
    from ase.data import chemical_symbols
    from ase.formula import Formula
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(atoms)
    found = bonds(atoms, factor) if found is None else found
    graph = coo_matrix(
        (np.ones(len(found.first)), (found.first, found.second)), shape=(n, n)
    ).tocsr()
    count, labels = connected_components(graph, directed=False)
    numbers = atoms.numbers
    pairs, sizes = np.unique(
        np.stack([labels, numbers], axis=1), axis=0, return_counts=True
    )
    contents: List[Dict[str, int]] = [{} for _ in range(count)]
    for (label, z), size in zip(pairs, sizes, strict=True):
        contents[label][chemical_symbols[z]] = int(size)
    formulas = [Formula.from_dict(c).format("hill") for c in contents]
    extended = [False] * count
    if find_extended and np.any(atoms.pbc) and len(found.first):
        extended = _extended(found, labels, count, n)
    return Molecules(labels, formulas, extended)


def _images(found: Bonds, n: int) -> np.ndarray:
    """The periodic image (integer cell vectors) of every atom that makes its
    molecule whole: a walk over the bonds from a root of each component."""
    neighbours: List[List[Tuple[int, np.ndarray]]] = [[] for _ in range(n)]
    for a, b, s in zip(found.first, found.second, found.shift, strict=True):
        neighbours[a].append((b, s))
        neighbours[b].append((a, -s))
    image = np.zeros((n, 3), dtype=int)
    placed = np.zeros(n, dtype=bool)
    for root in range(n):
        if placed[root]:
            continue
        placed[root] = True
        stack = [root]
        while stack:
            a = stack.pop()
            for b, s in neighbours[a]:
                if not placed[b]:
                    placed[b] = True
                    image[b] = image[a] + s
                    stack.append(b)
    return image


def _extended(found: Bonds, labels: np.ndarray, count: int, n: int) -> List[bool]:
    """Which components reach their own periodic image: a bond that disagrees with
    the placement of :func:`_images` closes a loop through the cell."""
    image = _images(found, n)
    wrong = np.any(image[found.second] != image[found.first] + found.shift, axis=1)
    extended = np.zeros(count, dtype=bool)
    extended[labels[found.first[wrong]]] = True
    return [bool(x) for x in extended]


def whole_molecules(atoms: ase.Atoms, factor: float = BOND_FACTOR) -> List[ase.Atoms]:
    """Every molecule of ``atoms`` (:func:`molecules`) as a structure of its own,
    whole across periodic boundaries, without a cell (lengths in A)."""
    found = bonds(atoms, factor)
    labels = molecules(atoms, factor, find_extended=False, found=found).labels
    positions = atoms.positions + _images(found, len(atoms)) @ np.asarray(atoms.cell)
    return [
        ase.Atoms(numbers=atoms.numbers[mask], positions=positions[mask])
        for mask in (labels == label for label in range(labels.max() + 1))
    ]


def census(atoms: ase.Atoms, factor: float = BOND_FACTOR) -> Census:
    """How many molecules of each formula ``atoms`` holds, e.g.
    ``Counter({"H2O": 64})`` (see :func:`molecules`)."""
    return molecules(atoms, factor, find_extended=False).census


def describe(counts: Mapping[str, int]) -> str:
    """``"47 H2O, 15 HO, 1 H3O"``: most numerous first; ``"none"`` when empty."""
    items = sorted(((int(k), f) for f, k in counts.items() if k), key=_most_first)
    return ", ".join(f"{k} {f}" for k, f in items) or "none"


def _most_first(item: Tuple[int, str]) -> Tuple[int, str]:
    return (-item[0], item[1])


@dataclass
class TopologyChange:
    """A start census against later ones (:func:`compare`).

    :ivar changed: some later census differs from the start.
    :ivar start: the start census; ``final``: the last one.
    :ivar broken: molecules of the start missing at the end (``start - final``).
    :ivar formed: molecules at the end that the start did not have.
    :ivar first_change_fs: time (fs) of the first census that differed (``None``:
        none did, or no times given); ``first_change``: that census.
    :ivar n_frames: later censuses (frames) compared; ``n_changed``: how many
        differed.
    :ivar final_time_fs: time (fs) of the last census, if known.
    """

    changed: bool
    start: Census
    final: Census
    broken: Census
    formed: Census
    first_change_fs: Optional[float] = None
    first_change: Optional[Census] = None
    n_frames: int = 1
    n_changed: int = 0
    final_time_fs: Optional[float] = None

    @property
    def message(self) -> str:
        """One line for a person, e.g. "the bonded topology changed: start 64 H2O;
        now 47 H2O, 15 HO, 1 H3O, 1 H2O2 (first at 250 fs)"."""
        if not self.changed:
            return (
                f"the bonded topology is unchanged: {describe(self.start)} "
                f"({self.n_frames} frames)"
            )
        when = ""
        if self.first_change_fs is not None:
            when = f" (first at {self.first_change_fs:.0f} fs"
            if self.n_frames > 1:
                when += f"; {self.n_changed} of {self.n_frames} frames differ"
            when += ")"
        text = f"the bonded topology changed: start {describe(self.start)}; "
        if self.final != self.start:
            return text + f"now {describe(self.final)}{when}"
        return (
            text + f"{describe(self.first_change or Counter())}{when}, back to the "
            "start at the end"
        )

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready: every field (censuses as dictionaries) and ``message``."""
        out: Dict[str, Any] = {}
        for name, value in self.__dict__.items():
            out[name] = dict(value) if isinstance(value, Counter) else value
        out["message"] = self.message
        return out


def compare(
    start: Mapping[str, int],
    later: Union[Mapping[str, int], Sequence[Tuple[Optional[float], Mapping]]],
) -> TopologyChange:
    """Compare the ``start`` census with a ``later`` one, or with a series of
    ``(time in fs or None, census)`` in time order (the last one is ``final``)."""
    start = Counter(start)
    if isinstance(later, Mapping):
        series: List[Tuple[Optional[float], Mapping]] = [(None, later)]
    else:
        series = list(later)
    if not series:
        series = [(None, start)]
    first = None
    n_changed = 0
    for time, counts in series:
        if Counter(counts) != start:
            n_changed += 1
            if first is None:
                first = (time, Counter(counts))
    final_time, final = series[-1][0], Counter(series[-1][1])
    return TopologyChange(
        changed=first is not None,
        start=start,
        final=final,
        broken=start - final,
        formed=final - start,
        first_change_fs=None if first is None else first[0],
        first_change=None if first is None else first[1],
        n_frames=len(series),
        n_changed=n_changed,
        final_time_fs=final_time,
    )


class TopologyWatch:
    """The census of a run's start and of the frames it writes (called by the
    trajectory writer at its frames and at the end, never every step).

    :param start: the start structure; its census is taken here, and an extended
        start (:attr:`Molecules.any_extended`) turns the watch off.
    :param factor: :data:`BOND_FACTOR`.
    """

    def __init__(self, start: ase.Atoms, factor: float = BOND_FACTOR):
        self.factor = float(factor)
        found = molecules(start, self.factor)
        self.start_census: Census = found.census
        #: ``(time in fs, census)`` of each frame watched
        self.series: List[Tuple[float, Census]] = []
        #: why the run is not checked (``None``: it is)
        self.skipped: Optional[str] = None
        if found.any_extended:
            extended = sorted(
                {f for f, e in zip(found.formulas, found.extended, strict=True) if e}
            )
            self.skipped = (
                "the start is an extended bonded network (bonded to its own "
                f"periodic image: {', '.join(extended)}), not molecules"
            )

    def __call__(self, atoms: ase.Atoms, time_fs: float) -> None:
        """Take the census of ``atoms`` at ``time_fs`` (fs); nothing when skipped
        or when a position is not finite (a run that ran away)."""
        if self.skipped is None and np.all(np.isfinite(atoms.positions)):
            self.series.append((float(time_fs), census(atoms, self.factor)))

    def result(self) -> Dict[str, Any]:
        """For ``summary.json``: ``checked``, ``bond_factor``, ``start`` and, when
        checked, :meth:`TopologyChange.to_dict`; when skipped, ``reason``."""
        out: Dict[str, Any] = {
            "checked": self.skipped is None,
            "bond_factor": self.factor,
            "start": dict(self.start_census),
        }
        if self.skipped is not None:
            out["reason"] = self.skipped
            return out
        out.update(self.change().to_dict())
        return out

    def change(self) -> TopologyChange:
        return compare(self.start_census, self.series)

    def state(self) -> Dict[str, Any]:
        """What the watch has seen (JSON-ready), for :meth:`restore` in a run that
        continues from a restart point (:mod:`.restart`)."""
        return {
            "factor": self.factor,
            "start": dict(self.start_census),
            "series": [[time, dict(found)] for time, found in self.series],
            "skipped": self.skipped,
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Take back the :meth:`state` of the run's earlier part (its start census,
        not that of the structure the run continues from)."""
        self.factor = float(state["factor"])
        self.start_census = Counter(state["start"])
        self.series = [(float(t), Counter(found)) for t, found in state["series"]]
        self.skipped = state["skipped"]


def topology_warning(topology: Optional[Mapping[str, Any]]) -> Optional[Dict[str, str]]:
    """The warning of a bonded-topology check that found molecules broken or formed
    (``topology``: :meth:`~.topology.TopologyWatch.result`); ``None`` when there is
    no check, it was skipped (an extended start) or nothing changed."""
    if not topology or not topology.get("checked") or not topology.get("changed"):
        return None
    return {
        "kind": "topology",
        "message": (
            f"{topology['message']}; if the reference keeps these molecules "
            "intact, the model's energy surface is wrong there, whatever its energy "
            "conservation and temperatures say: look at the trajectory (bonds: "
            f"closer than {topology['bond_factor']:g} x the sum of covalent radii) "
            "and add such configurations to the training set"
        ),
    }

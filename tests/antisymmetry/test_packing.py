"""Several structures in one model evaluation: packed results equal one-at-a-time
results to round-off (exact and stochastic, per atom and per pair, analytic and
trained models)."""

import ase
import ase.build
import ase.io
import numpy as np
import pytest

from metatrain_nc.antisymmetry import (
    DIRECT_FORCE,
    evaluate,
    exact_jacobian,
    load_force_model,
)
from metatrain_nc.antisymmetry.jacobian import exact_jacobians, stochastic_lambdas
from metatrain_nc.antisymmetry.packing import packable, plan_packs

from ..analytic_models import analytic_lambda
from .conftest import STRENGTH


@pytest.fixture
def mixed_frames(water_cluster_periodic):
    """Molecules of different sizes and a periodic cluster (not size-sorted)."""
    frames = []
    for k, name in enumerate(["CH3CH2OH", "H2O", "CH4", "CH3CH2OH", "CH3OH"]):
        atoms = ase.build.molecule(name)
        atoms.rattle(0.05, seed=k)
        frames.append(atoms)
    frames.insert(2, water_cluster_periodic)
    return frames


def _compare(single, packed, atol):
    assert single.settings["packing_used"] == "single"
    assert packed.settings["packing_used"] == "packed"
    assert packed.settings["forward_graphs"] < single.settings["forward_graphs"]
    np.testing.assert_allclose(packed.lambdas, single.lambdas, rtol=atol, atol=atol)
    for a, b in zip(single.structures, packed.structures, strict=True):
        assert (a.index, a.n_atoms, a.method, a.probes) == (
            b.index,
            b.n_atoms,
            b.method,
            b.probes,
        )
        if a.per_atom is not None:
            np.testing.assert_allclose(b.per_atom, a.per_atom, atol=atol)
        if a.pairs is not None:
            np.testing.assert_allclose(
                b.pairs.block_norm, a.pairs.block_norm, rtol=atol, atol=atol
            )
            np.testing.assert_allclose(
                b.pairs.anti_norm, a.pairs.anti_norm, rtol=atol, atol=atol
            )
        if a.error is not None:
            assert b.error == pytest.approx(a.error, rel=atol, abs=atol)
        assert a.forces.keys() == b.forces.keys()
        for name in a.forces:
            np.testing.assert_allclose(b.forces[name], a.forces[name], atol=atol)


def test_plan_packs_sorted_within_budget():
    sizes = [9, 3, 200, 9, 5, 1500, 4]
    packs = plan_packs(sizes, pack_rows=60)
    assert sorted(i for pack in packs for i in pack) == list(range(len(sizes)))
    order = [sizes[i] for pack in packs for i in pack]
    assert order == sorted(sizes)  # similar sizes together
    for pack in packs:
        assert len(pack) == 1 or sum(3 * sizes[i] for i in pack) <= 60
    assert [5] in packs and [2] in packs  # above the budget: alone


def test_exact_packed_equals_single_analytic(pair_nc, mixed_frames):
    single = evaluate(mixed_frames, pair_nc, packing="single", chunk_size=7)
    packed = evaluate(mixed_frames, pair_nc, packing="packed", chunk_size=7)
    _compare(single, packed, 1e-12)
    for atoms, result in zip(mixed_frames, packed.structures, strict=True):
        assert result.lambda_ == pytest.approx(
            analytic_lambda(atoms, STRENGTH), rel=1e-10
        )
    # a small pack budget gives several packs, same numbers
    small = evaluate(mixed_frames, pair_nc, packing="packed", pack_rows=40)
    assert small.settings["forward_graphs"] > packed.settings["forward_graphs"]
    np.testing.assert_allclose(small.lambdas, single.lambdas, atol=1e-12)


def test_exact_packed_conservative_output(pair_nc, mixed_frames):
    # -dE/dr needs a differentiable graph of the forces: packed as well
    model = load_force_model(pair_nc)
    forces = [model.structure_forces(a, "conservative") for a in mixed_frames]
    assert packable(forces)
    packed = exact_jacobians(forces, packing="packed", strategy="loop")
    for force_model, jacobian in zip(forces, packed, strict=True):
        np.testing.assert_allclose(
            jacobian, exact_jacobian(force_model, strategy="loop"), atol=1e-12
        )
        np.testing.assert_allclose(jacobian, jacobian.T, atol=1e-10)


def test_stochastic_packed_equals_single_with_target(pair_nc, mixed_frames):
    # with a target error structures stop after different numbers of probes
    options = dict(stochastic=True, probes=4, chunk_size=3, target_error=0.2)
    single = evaluate(mixed_frames, pair_nc, packing="single", **options)
    packed = evaluate(mixed_frames, pair_nc, packing="packed", **options)
    assert len({s.probes for s in packed.structures}) > 1
    _compare(single, packed, 1e-12)
    # the same probes as a lone stochastic estimate of each structure
    model = load_force_model(pair_nc)
    forces = [model.structure_forces(a, DIRECT_FORCE) for a in mixed_frames]
    lone = stochastic_lambdas(
        forces, probes=4, chunk_size=3, target_error=0.2, packing="single"
    )
    np.testing.assert_allclose(
        packed.lambdas, [estimate.value for estimate in lone], atol=1e-12
    )


def test_trained_pet_nc_packed_equals_single(tiny_pet_nc, ethanol_frames):
    frames = ase.io.read(ethanol_frames, ":6")
    second = frames[3].copy()
    second.translate([7.0, 0.0, 0.0])
    frames[3] = frames[3] + second  # two molecules: another size
    model = load_force_model(tiny_pet_nc.checkpoint, float64=True)
    single = evaluate(frames, model, packing="single")
    packed = evaluate(frames, model, packing="packed")
    _compare(single, packed, 1e-10)
    auto = evaluate(frames, model)  # the default: timed, either way
    np.testing.assert_allclose(auto.lambdas, single.lambdas, rtol=1e-10)
    stochastic = dict(stochastic=True, probes=4)
    _compare(
        evaluate(frames, model, packing="single", **stochastic),
        evaluate(frames, model, packing="packed", **stochastic),
        1e-10,
    )
    # float32 export: round-off of float32
    exported = load_force_model(tiny_pet_nc.exported)
    _compare(
        evaluate(frames, exported, packing="single", pairs=False),
        evaluate(frames, exported, packing="packed", pairs=False),
        1e-5,
    )


def test_bad_packing_settings(pair_nc, ethanol):
    with pytest.raises(ValueError, match="packing"):
        evaluate([ethanol], pair_nc, packing="sometimes")
    with pytest.raises(ValueError, match="pack-rows"):
        evaluate([ethanol], pair_nc, pack_rows=0)

"""Physics of the evaluator on analytic models with known Jacobians and loop work."""

import numpy as np
import pytest

from metatrain_nc.antisymmetry import (
    DIRECT_FORCE,
    antisymmetry_ratio,
    exact_jacobian,
    finite_difference_jacobian,
    lambda_from_jacobian,
    load_force_model,
    molecule_of,
    pair_table,
    per_atom_lambda,
    rotation_loop_work,
    square_loop_work,
    stochastic_lambda,
)
from metatrain_nc.antisymmetry.loops import random_square_directions

from ..analytic_models import (
    analytic_jacobian,
    analytic_lambda,
    analytic_rotation_work,
    analytic_square_loop_work,
)
from .conftest import STRENGTH


def forces_of(path, atoms, output=DIRECT_FORCE):
    """Forces of ``atoms`` by the model at ``path``, as a function of positions."""
    return load_force_model(path).structure_forces(atoms, output)


def test_exact_equals_finite_differences_and_analytic(pair_nc, ethanol):
    force_model = forces_of(pair_nc, ethanol)
    jacobian = exact_jacobian(force_model, chunk_size=5)  # several chunks
    fd = finite_difference_jacobian(force_model, delta=1e-4)
    exact = lambda_from_jacobian(jacobian)
    assert exact == pytest.approx(lambda_from_jacobian(fd), rel=1e-5)
    assert exact == pytest.approx(analytic_lambda(ethanol, STRENGTH), rel=1e-10)
    np.testing.assert_allclose(
        jacobian, analytic_jacobian(ethanol, STRENGTH), atol=1e-10
    )
    # every strategy gives the same matrix
    for strategy in ("loop", "batched"):
        np.testing.assert_allclose(
            exact_jacobian(force_model, strategy=strategy), jacobian, atol=1e-12
        )


def test_periodic_lambda_and_minimum_image(pair_nc, water_cluster_periodic):
    atoms = water_cluster_periodic
    jacobian = exact_jacobian(forces_of(pair_nc, atoms))
    assert lambda_from_jacobian(jacobian) == pytest.approx(
        analytic_lambda(atoms, STRENGTH), rel=1e-10
    )
    table = pair_table(jacobian, atoms)
    half_diagonal = 0.5 * np.linalg.norm(atoms.cell.array.sum(axis=0))
    assert table.distance.max() <= half_diagonal + 1e-9
    # the pair potential has a 4 A cutoff: farther pairs only see the rotation field
    far = table.distance > 4.0
    n = len(atoms)
    np.testing.assert_allclose(table.block_norm[far], STRENGTH * np.sqrt(2) / n)
    assert np.all(table.pair_lambda[far] == pytest.approx(1.0))


def test_pair_and_atom_decomposition(pair_nc, ethanol):
    jacobian = exact_jacobian(forces_of(pair_nc, ethanol))
    n = len(ethanol)
    table = pair_table(jacobian, ethanol)
    # antisymmetric part of every off-diagonal block is the rotation field's: s K / N
    np.testing.assert_allclose(table.anti_norm, STRENGTH * np.sqrt(2) / n, rtol=1e-9)
    # on-site blocks: s K (1 - 1/N), antisymmetric as well
    np.testing.assert_allclose(
        table.onsite_anti_norm, STRENGTH * np.sqrt(2) * (1 - 1 / n), rtol=1e-9
    )
    assert len(table.i) == n * (n - 1)
    lam_i = per_atom_lambda(jacobian)
    reference = analytic_jacobian(ethanol, STRENGTH)
    anti = 0.5 * (reference - reference.T)
    for i in range(n):
        rows = slice(3 * i, 3 * i + 3)
        expected = np.linalg.norm(anti[rows]) / np.linalg.norm(reference[rows])
        assert lam_i[i] == pytest.approx(expected, rel=1e-9)


def test_conservative_output_is_symmetric(pair_nc, water_cluster_periodic):
    model = load_force_model(pair_nc)
    atoms = water_cluster_periodic
    force_model = model.structure_forces(atoms, "conservative")
    lam = lambda_from_jacobian(exact_jacobian(force_model))
    assert lam < 1e-5
    # while the direct head of the same model is not (Python API: a loaded force
    # model, and the AtomisticModel object itself)
    assert antisymmetry_ratio(atoms, model) > 1e-3
    assert antisymmetry_ratio(atoms, model.model) > 1e-3
    loop = rotation_loop_work(force_model, molecule_of(atoms, 0), n_points=48)
    assert abs(loop.work) < 1e-6
    squares = square_loop_work(force_model, eps=0.02, n_loops=2)
    assert max(abs(w) for w in squares.work) < 1e-5


def test_direct_equal_to_conservative_gives_zero(pair_c, ethanol):
    assert antisymmetry_ratio(ethanol, pair_c) < 1e-5


def test_analytic_loop_work(pair_nc, water_cluster_periodic):
    atoms = water_cluster_periodic
    force_model = forces_of(pair_nc, atoms)
    molecule = molecule_of(atoms, 0)
    assert len(molecule) == 3
    rigid = rotation_loop_work(force_model, molecule, n_points=48, deformation=0.0)
    expected = analytic_rotation_work(atoms, molecule, STRENGTH)
    assert rigid.work == pytest.approx(expected, rel=1e-6)
    # with a deformation the loop still closes: converged with few points
    coarse = rotation_loop_work(force_model, molecule, n_points=48, deformation=0.1)
    fine = rotation_loop_work(force_model, molecule, n_points=96, deformation=0.1)
    assert coarse.work == pytest.approx(fine.work, rel=1e-5)

    rng = np.random.default_rng(3)
    directions = [random_square_directions(len(atoms), rng) for _ in range(3)]
    squares = square_loop_work(force_model, eps=0.02, directions=directions)
    for (u, v), work, floor in zip(
        directions, squares.work, squares.force_floor, strict=True
    ):
        exact = analytic_square_loop_work(u, v, 0.02, STRENGTH)
        assert work == pytest.approx(exact, rel=0.02, abs=1e-9)
        assert floor == pytest.approx(abs(work) / (4 * 0.02 * len(atoms)))


def test_stochastic_within_error_bar_and_converges(pair_nc, ethanol):
    force_model = forces_of(pair_nc, ethanol)
    exact = lambda_from_jacobian(exact_jacobian(force_model))
    few = stochastic_lambda(force_model, probes=16, seed=1)
    many = stochastic_lambda(force_model, probes=256, seed=2, batched=True)
    for estimate in (few, many):
        assert abs(estimate.value - exact) < 3.5 * estimate.error
    assert many.error < 0.5 * few.error
    # the estimates of the squared norms are unbiased: check the full norm too
    jacobian = exact_jacobian(force_model)
    assert many.jacobian_norm_sq == pytest.approx(float((jacobian**2).sum()), rel=0.1)


def test_stochastic_error_over_seeds(pair_nc, ethanol):
    """The reported error bar matches the spread of independent estimates."""
    force_model = forces_of(pair_nc, ethanol)
    exact = lambda_from_jacobian(exact_jacobian(force_model))
    estimates = [stochastic_lambda(force_model, probes=32, seed=s) for s in range(12)]
    values = np.array([e.value for e in estimates])
    errors = np.array([e.error for e in estimates])
    assert np.std(values) == pytest.approx(np.mean(errors), rel=0.6)
    assert (
        abs(np.mean(values) - exact) < 3 * np.mean(errors) / np.sqrt(12) + 0.02 * exact
    )


def test_stochastic_finite_difference_jvp(pair_nc, ethanol):
    """The graph-free JVP gives the same estimate as the double-backward one."""
    force_model = forces_of(pair_nc, ethanol)
    exact = stochastic_lambda(force_model, probes=16, seed=4)
    cheap = stochastic_lambda(
        force_model, probes=16, seed=4, jvp="finite-difference", fd_step=1e-4
    )
    assert cheap.value == pytest.approx(exact.value, rel=1e-5)
    assert cheap.error == pytest.approx(exact.error, rel=1e-3)


def test_stochastic_target_error(pair_nc, ethanol):
    """With a target, probes are added until error / lambda reaches it; a tighter
    target costs more probes; the budget is honoured and reported."""
    force_model = forces_of(pair_nc, ethanol)
    exact = lambda_from_jacobian(exact_jacobian(force_model))
    loose = stochastic_lambda(
        force_model, probes=4, chunk_size=4, seed=3, target_error=0.1
    )
    tight = stochastic_lambda(
        force_model, probes=4, chunk_size=4, seed=3, target_error=0.03
    )
    for estimate, target in ((loose, 0.1), (tight, 0.03)):
        assert estimate.converged is True
        assert estimate.error / estimate.value <= target
        assert len(estimate.anti_sq) == estimate.probes
        assert abs(estimate.value - exact) < 3.5 * estimate.error
    assert tight.probes > loose.probes >= 4
    # the first probes of both runs are the same (same seed): only more were added
    assert tight.anti_sq[: loose.probes] == loose.anti_sq
    budget = stochastic_lambda(
        force_model, probes=4, chunk_size=4, seed=3, target_error=1e-4, max_probes=12
    )
    assert budget.probes == 12 and budget.converged is False
    plain = stochastic_lambda(force_model, probes=6, chunk_size=4, seed=3)
    assert plain.probes == 6 and plain.converged is None


def test_target_error_needs_four_probes(pair_nc, ethanol):
    """Two probes that happen to agree do not stop a run with a target."""
    force_model = forces_of(pair_nc, ethanol)
    estimate = stochastic_lambda(
        force_model, probes=2, chunk_size=1, seed=0, target_error=10.0
    )
    assert estimate.probes == 4 and estimate.converged is True
    # a budget below 4 probes stops there, and does not claim the target
    capped = stochastic_lambda(
        force_model, probes=2, seed=0, target_error=10.0, max_probes=2
    )
    assert capped.probes == 2 and capped.converged is False

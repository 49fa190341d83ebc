"""The force-model layer stops bad results for every tool (issue 24, item 5).

Real ASE calculators (EMT, :mod:`tests.bad_calculators`) that return NaN energies,
forces or stress, or raise: :meth:`ForceModel.evaluate` raises one line naming the
model and the structure, so that ``mtt-nc label`` never writes a NaN label,
``mtt-nc antisymmetry`` exits non-zero instead of printing ``lambda = nan``,
``mtt-nc accuracy`` computes no error from NaN, and tables never show a NaN as "-".
"""

import contextlib
import io

import ase.build
import ase.io
import numpy as np
import pytest

from metatrain_nc.cli import main
from metatrain_nc.errors import ModelError, NonFiniteError, UserInputError
from metatrain_nc.force_models import ForceResult, check_finite, load_force_model

NAN_FORCES = "tests.bad_calculators:nan_forces"
NAN_ENERGY = "tests.bad_calculators:nan_energy"
NAN_STRESS = "tests.bad_calculators:nan_stress"
REFUSING = "tests.bad_calculators:refusing"


def _run(argv):
    """``mtt-nc`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def _error_line(stderr: str) -> str:
    (line,) = [x for x in stderr.splitlines() if "error:" in x]
    return line


@pytest.fixture
def copper():
    """8 copper atoms, periodic (EMT knows copper)."""
    atoms = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 1, 1))
    atoms.rattle(0.02, seed=1)
    return atoms


@pytest.fixture
def cluster(copper):
    atoms = copper.copy()
    atoms.pbc = False
    atoms.center(vacuum=4.0)
    return atoms


# -- the layer -------------------------------------------------------------------
@pytest.mark.parametrize(
    "spec, what",
    [
        (NAN_FORCES, "non-finite forces (-dE/dr; 24 of 24 components)"),
        (NAN_ENERGY, "non-finite energy"),
        (NAN_STRESS, "non-finite stress (9 of 9 components)"),
    ],
)
def test_evaluate_refuses_non_finite_results(copper, spec, what):
    model = load_force_model(spec)
    with pytest.raises(NonFiniteError) as caught:
        model.evaluate(copper, direct=False, stress=True, where="structure 7")
    message = str(caught.value)
    assert message.startswith(f"model '{spec}' returned {what} for structure 7")
    assert "\n" not in message
    assert isinstance(caught.value, UserInputError)  # the CLI: exit 2, no traceback


def test_unnamed_structures_are_described(copper):
    with pytest.raises(NonFiniteError, match=r"a Cu8 structure \(8 atoms, periodic\)"):
        load_force_model(NAN_FORCES).evaluate(copper, direct=False)


def test_calculator_errors_are_wrapped_with_model_and_structure(cluster):
    with pytest.raises(ModelError) as caught:
        load_force_model(REFUSING).evaluate(cluster, direct=False, where="frame 3")
    assert str(caught.value) == (
        f"model '{REFUSING}' failed on frame 3: RuntimeError: this calculator only "
        "takes periodic structures"
    )
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_check_finite_names_every_bad_quantity():
    result = ForceResult(
        energy=1.0,
        conservative=np.zeros((2, 3)),
        direct=np.array([[np.nan, 0, 0], [0, np.inf, 0]]),
    )
    with pytest.raises(NonFiniteError) as caught:
        check_finite(result, "m.pt", "structure 0")
    assert caught.value.quantities == ["direct"]
    assert "direct forces (2 of 6 components)" in str(caught.value)
    fine = ForceResult(energy=1.0, conservative=np.zeros((2, 3)))
    assert check_finite(fine, "m.pt", "structure 0") is fine


# -- mtt-nc label -------------------------------------------------------------------
@pytest.mark.parametrize(
    "spec, what",
    [
        (NAN_FORCES, "non-finite forces"),
        (NAN_ENERGY, "non-finite energy"),
        (NAN_STRESS, "non-finite stress"),
        (REFUSING, "RuntimeError: this calculator only takes periodic structures"),
    ],
)
def test_label_never_writes_a_bad_label(copper, tmp_path, spec, what):
    structures = tmp_path / "in.xyz"
    ase.io.write(structures, [copper, copper], format="extxyz")
    out = tmp_path / "labels.xyz"
    code, _, stderr = _run(["label", spec, structures, "-o", out])
    assert code == 2
    line = _error_line(stderr)
    assert f"model '{spec}'" in line and what in line
    assert f"structure 0 of '{structures}'" in line
    assert "Traceback" not in stderr
    assert not out.exists() and list(tmp_path.iterdir()) == [structures]


# -- mtt-nc antisymmetry ------------------------------------------------------------
def test_antisymmetry_with_nan_forces_fails_instead_of_lambda_nan(cluster, tmp_path):
    structures = tmp_path / "in.xyz"
    ase.io.write(structures, cluster, format="extxyz")
    out = tmp_path / "out"
    code, stdout, stderr = _run(
        ["antisymmetry", NAN_FORCES, structures, "-o", out, "--no-progress"]
    )
    assert code == 2
    line = _error_line(stderr)
    assert f"model '{NAN_FORCES}' returned non-finite forces" in line
    assert "for structure 0" in line
    assert "nan" not in stdout and not out.exists()


def test_antisymmetry_wraps_a_refusing_calculator(cluster, tmp_path):
    structures = tmp_path / "in.xyz"
    ase.io.write(structures, cluster, format="extxyz")
    code, _, stderr = _run(
        ["antisymmetry", REFUSING, structures, "-o", tmp_path / "out", "--no-progress"]
    )
    assert code == 2
    line = _error_line(stderr)
    assert f"model '{REFUSING}' failed on structure 0: RuntimeError" in line


def test_a_non_finite_lambda_is_an_error():
    from metatrain_nc.antisymmetry.api import check_lambda

    model = load_force_model(NAN_FORCES)
    assert check_lambda(0.25, model, "structure 2") == 0.25
    with pytest.raises(NonFiniteError, match="non-finite lambda .* structure 2"):
        check_lambda(float("nan"), model, "structure 2")


# -- mtt-nc accuracy ----------------------------------------------------------------
def test_accuracy_refuses_nan_from_the_model_and_from_the_labels(copper):
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator

    from metatrain_nc.evaluation.accuracy import model_accuracy

    labelled = copper.copy()
    labelled.calc = EMT()
    labelled.calc = SinglePointCalculator(
        labelled,
        energy=labelled.get_potential_energy(),
        forces=labelled.get_forces(),
    )
    with pytest.raises(NonFiniteError, match="structure 0"):
        model_accuracy(NAN_FORCES, [labelled])
    bad = labelled.copy()
    bad.calc = SinglePointCalculator(
        bad, energy=float("nan"), forces=labelled.get_forces()
    )
    with pytest.raises(UserInputError, match="structure 0: the 'energy' label is nan"):
        model_accuracy("tests.bad_calculators:sleeping", [bad])


# -- tables -------------------------------------------------------------------------
def test_tables_show_nan_as_nan_and_missing_as_dash():
    from metatrain_nc.compare.nvt_reading import verdict
    from metatrain_nc.compare.sections import fmt, fmt_error
    from metatrain_nc.dynamics.stride import _fmt

    assert fmt(None) == "-"
    assert fmt(float("nan")) == "nan"
    assert fmt(float("inf")) == "inf"
    assert fmt_error(1.0, float("nan")) == "1.0 ± nan"
    assert verdict(1.0, None, 2.0) == "-"
    assert verdict(1.0, float("nan"), 2.0) == "nan"
    assert _fmt(None) == "n/a" and _fmt(float("nan")) == "nan"


# -- relaxations --------------------------------------------------------------------
def test_a_relaxation_with_non_finite_forces_ends_in_error_not_the_others(cluster):
    from metatrain_nc.dynamics.relax import relaxation_check

    result = relaxation_check(
        NAN_FORCES, [cluster], force_modes=["conservative"], optimizers=["FIRE"]
    )
    (record,) = result["records"]
    assert record["stop_reason"] == "error" and record["converged"] is False

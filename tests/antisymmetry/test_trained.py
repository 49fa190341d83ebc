"""A trained direct head is measurably non-conservative; its energy head is not.

Uses the session fixtures ``tiny_pet_nc`` / ``tiny_pet_m`` (tiny models trained by the
real ``mtt train``, see tests/conftest.py).
"""

import ase.io
import pytest

from metatrain_nc.antisymmetry import (
    DIRECT_FORCE,
    antisymmetry_ratio,
    exact_jacobian,
    lambda_from_jacobian,
    load_force_model,
    stochastic_lambda,
)
from metatrain_nc.cli import main


@pytest.fixture
def frame(ethanol_frames):
    return ase.io.read(ethanol_frames, 0)


def test_pet_nc_direct_head_is_not_conservative(tiny_pet_nc, frame):
    exported = antisymmetry_ratio(frame, tiny_pet_nc.exported)
    assert exported > 1e-3
    # the checkpoint gives the same model (exported on the fly)
    from_checkpoint = antisymmetry_ratio(frame, tiny_pet_nc.checkpoint)
    assert from_checkpoint == pytest.approx(exported, rel=1e-3)
    # the stochastic estimate agrees within its error bar
    force_model = load_force_model(tiny_pet_nc.exported).structure_forces(
        frame, DIRECT_FORCE
    )
    estimate = stochastic_lambda(force_model, probes=32)
    assert abs(estimate.value - exported) < 4 * estimate.error + 0.05 * exported


def test_pet_nc_energy_head_is_conservative_in_float64(tiny_pet_nc, frame):
    model = load_force_model(tiny_pet_nc.checkpoint, float64=True)
    jacobian = exact_jacobian(model.structure_forces(frame, "conservative"))
    assert lambda_from_jacobian(jacobian) < 1e-5
    # float64 from an exported float32 model is refused with a clear message
    with pytest.raises(ValueError, match="checkpoint"):
        load_force_model(tiny_pet_nc.exported, float64=True)


def test_pet_m_both_heads_on_the_command_line(tiny_pet_m, ethanol_frames, tmp_path):
    import json

    out = tmp_path / "pet_m"
    code = main(
        [
            "antisymmetry",
            str(tiny_pet_m.checkpoint),
            str(ethanol_frames),
            "--index",
            ":2",
            "-o",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["lambda_mean"] > 1e-3
    assert "energy" in summary["model"]["outputs"]

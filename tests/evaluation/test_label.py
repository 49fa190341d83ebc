"""``mtt-nc label``: labels that metatrain reads back, from any kind of model."""

import ase.build
import ase.io
import numpy as np
import pytest
from metatrain.utils.data.readers.ase import read as metatrain_read

from metatrain_nc.cli import main
from metatrain_nc.force_models import load_force_model

from ..analytic_models import export_pair_model


@pytest.fixture(scope="module")
def pair_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("label_models")
    return {
        "nc": export_pair_model(
            str(folder / "nc.pt"), nonconservative_strength=0.01, stress=True
        ),
        "energy": export_pair_model(str(folder / "energy.pt"), direct_forces=False),
    }


def _mixed_frames():
    """Two periodic ethanol boxes and one ethanol molecule (no cell)."""
    molecule = ase.build.molecule("CH3CH2OH")
    frames = []
    for shift in (0.0, 0.1):
        box = molecule.copy()
        box.cell = [7.0, 7.5, 8.0]
        box.pbc = True
        box.center()
        box.positions[0] += shift
        frames.append(box)
    frames.append(molecule)
    return frames


def test_labels_are_what_the_model_says(pair_models, tmp_path, capsys):
    """Energies, forces and stress read back by metatrain's reader equal the model's
    (extended XYZ keeps 8 decimals)."""
    frames = _mixed_frames()
    structures = tmp_path / "in.xyz"
    ase.io.write(structures, frames)
    out = tmp_path / "labelled.xyz"
    assert main(["label", pair_models["nc"], str(structures), "-o", str(out)]) == 0
    assert "energy (eV), forces (eV/A), stress (eV/A^3)" in capsys.readouterr().out
    model = load_force_model(pair_models["nc"])
    read_back = metatrain_read(str(out), ":")
    assert len(read_back) == 3
    for atoms, labelled in zip(frames, read_back, strict=True):
        periodic = bool(np.all(atoms.pbc))
        expected = model.evaluate(atoms, direct=False, stress=periodic)
        assert labelled.info["energy"] == pytest.approx(expected.energy, abs=1e-7)
        np.testing.assert_allclose(
            labelled.arrays["forces"], expected.conservative, atol=1e-7
        )
        if periodic:
            np.testing.assert_allclose(
                labelled.info["stress"], expected.stress, atol=1e-7
            )
        else:  # metatrain's "no stress" for a structure without a cell
            assert np.all(np.isnan(labelled.info["stress"]))

    direct = tmp_path / "direct.xyz"
    argv = ["label", pair_models["nc"], str(structures), "-o", str(direct)]
    assert main(argv + ["--forces", "direct", "--no-stress"]) == 0
    labelled = metatrain_read(str(direct), ":")[2]
    expected = model.evaluate(frames[2], conservative=False, direct=True)
    np.testing.assert_allclose(labelled.arrays["forces"], expected.direct, atol=1e-7)
    assert "stress" not in labelled.info


def test_label_an_md_trajectory_with_an_ase_calculator(
    pair_models, tmp_path, monkeypatch
):
    """An mtt-nc md trajectory (momenta, per-atom force arrays) is labelled by an
    ASE calculator named module:callable; only the new labels are kept."""
    molecule = ase.build.molecule("CH3CH2OH")
    start = tmp_path / "start.xyz"
    ase.io.write(start, molecule)
    md = tmp_path / "md"
    argv = ["md", pair_models["nc"], str(start), "-o", str(md), "--steps", "4"]
    assert main(argv + ["--trajectory-every", "2", "--stride", "2"]) == 0
    monkeypatch.chdir(tmp_path)
    (tmp_path / "calcs.py").write_text(
        "from ase.calculators.lj import LennardJones\n"
        "def lj():\n    return LennardJones(sigma=1.0, epsilon=0.01, rc=4.0)\n"
    )
    out = tmp_path / "lj.xyz"
    trajectory = md / "trajectory.extxyz"
    assert main(["label", "calcs:lj", str(trajectory), "-o", str(out)]) == 0
    frames = ase.io.read(trajectory, ":")
    labelled = metatrain_read(str(out), ":")
    assert len(labelled) == len(frames) == 3
    from ase.calculators.lj import LennardJones

    reference = frames[-1].copy()
    reference.calc = LennardJones(sigma=1.0, epsilon=0.01, rc=4.0)
    np.testing.assert_allclose(
        labelled[-1].arrays["forces"], reference.get_forces(), atol=1e-7
    )
    assert "momenta" not in labelled[-1].arrays
    assert "forces_conservative" not in labelled[-1].arrays
    # the frames' own metadata is kept (old labels are not), the labeller recorded
    kept = {k for k in frames[-1].info if k not in ("energy", "stress", "free_energy")}
    assert kept, "the md trajectory's frames carry metadata"
    assert kept <= set(labelled[-1].info)
    assert labelled[-1].info["label_model"] == "calcs:lj"
    assert labelled[-1].info["label_forces"] == "conservative"


def test_label_bad_input(pair_models, tmp_path, capsys):
    structures = tmp_path / "in.xyz"
    ase.io.write(structures, _mixed_frames())
    out = tmp_path / "labelled.xyz"
    argv = ["label", pair_models["energy"], str(structures), "-o", str(out)]
    assert main(argv + ["--forces", "direct"]) == 2
    assert "no direct force head" in capsys.readouterr().err
    assert not out.exists()
    out.write_text("keep me")
    assert main(argv) == 2
    assert "already exists" in capsys.readouterr().err
    assert out.read_text() == "keep me"
    gold = _mixed_frames()
    gold[1][0].symbol = "Au"
    ase.io.write(structures, gold)
    fresh = tmp_path / "fresh.xyz"
    argv = ["label", pair_models["energy"], str(structures), "-o", str(fresh)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "structure 1 of '" in err and "contains species ['Au']" in err
    assert not fresh.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []

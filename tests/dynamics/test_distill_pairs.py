"""Teacher-student pairs of multiple time stepping (distillation, issue 12): a good
pair runs, a bad one is told what is wrong and how to fix it (exit 2, nothing
written). Tiny models trained by ``mtt train`` (the session fixtures) and analytic
models with chosen cutoffs."""

import json
import re

import ase.build
import ase.io
import numpy as np
import pytest

from metatrain_nc.cli import main
from metatrain_nc.force_models import load_force_model

from ..analytic_models import export_pair_model


@pytest.fixture
def ethanol_file(tiny_pet_m, tmp_path):
    path = tmp_path / "ethanol.xyz"
    ase.io.write(path, ase.io.read(tiny_pet_m.data, 0))
    return path


def _nothing_written(tmp_path, out):
    assert not out.exists()
    assert [
        p.name for p in tmp_path.iterdir() if p.name.startswith(f".{out.name}")
    ] == []


def test_teacher_without_conservative_forces(
    tiny_pet_nc, tiny_pet_m, ethanol_file, tmp_path, capsys
):
    """A pet_nc model's -dE/dr was never trained: it is no teacher, neither with a
    --fast student (exported or checkpoint, fixed stride or scan) nor alone."""
    out = tmp_path / "md"
    for teacher, extra in [
        (tiny_pet_nc.exported, ["--fast", tiny_pet_m.exported]),
        (tiny_pet_nc.checkpoint, ["--fast", tiny_pet_m.exported, "--stride", "auto"]),
        (tiny_pet_nc.exported, []),
    ]:
        argv = ["md", str(teacher), str(ethanol_file), "-o", str(out), "--steps", "2"]
        assert main(argv + ["--forces", "mts", *map(str, extra)]) == 2
        err = capsys.readouterr().err
        assert "is a pet_nc model: its energy head was never trained" in err
        assert "use a conservative model (stock pet, pet_m" in err
        _nothing_written(tmp_path, out)


def test_student_without_the_species_of_the_structure(
    tiny_pet_m, tiny_pet_nc_periodic, ethanol_file, tmp_path, capsys
):
    """A student trained on water (H, O) cannot drive ethanol (C)."""
    out = tmp_path / "md"
    argv = ["md", str(tiny_pet_m.exported), str(ethanol_file), "-o", str(out)]
    argv += ["--forces", "mts", "--fast", str(tiny_pet_nc_periodic.exported)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "does not know species ['C'] of the structure (it knows ['H', 'O']" in err
    assert "(mtt-nc label) and train the student on them" in err
    _nothing_written(tmp_path, out)


def test_student_may_know_more_species_than_the_teacher(tiny_pet_nc, tmp_path):
    """What matters is the structure: a water-only teacher with an H, C, O student
    runs water (before, a pair had to know exactly the same species)."""
    teacher = export_pair_model(
        str(tmp_path / "ho.pt"), atomic_types=(1, 8), direct_forces=False
    )
    water = tmp_path / "water.xyz"
    ase.io.write(water, ase.build.molecule("H2O"))
    out = tmp_path / "md"
    argv = ["md", teacher, str(water), "-o", str(out), "--forces", "mts"]
    argv += ["--fast", str(tiny_pet_nc.exported), "--steps", "2", "--stride", "2"]
    assert main(argv + ["--timestep", "0.5", "--max-temperature", "0"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pair"]["fast"] == str(tiny_pet_nc.exported)
    assert summary["pair"]["fast_cutoff_A"] == 4.5  # PET's default
    assert summary["fast_model_forward_passes"] == 1 + 2 * 2


@pytest.fixture(scope="module")
def cutoff_models(tmp_path_factory):
    """Analytic teacher (energy only, 4 A) and direct students of other cutoffs."""
    folder = tmp_path_factory.mktemp("cutoffs")
    models = {"teacher": export_pair_model(str(folder / "t.pt"), direct_forces=False)}
    for cutoff in (1.0, 2.0, 5.0):
        models[cutoff] = export_pair_model(
            str(folder / f"s{cutoff}.pt"), nonconservative_strength=0.005, cutoff=cutoff
        )
    return models


def test_student_cutoff(cutoff_models, ethanol_box_file, tmp_path, capsys):
    """Shorter: a warning with the share of pairs the student misses; so short that
    atoms are isolated for the student but not for the teacher: refused, with the
    cutoff that would do; longer: a warning about its cost."""
    teacher = cutoff_models["teacher"]

    def run(student, name):
        out = tmp_path / name
        argv = ["md", teacher, str(ethanol_box_file), "-o", str(out), "--steps", "2"]
        argv += ["--forces", "mts", "--fast", student, "--stride", "2"]
        code = main(argv + ["--timestep", "1", "--no-chemiscope"])
        return code, out, capsys.readouterr().err

    code, out, err = run(cutoff_models[2.0], "short")
    assert code == 0
    assert "sees neighbours within 2 A, the slow model" in err
    assert "the inner forces miss" in err and "(--stride auto)" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["warnings"][0]["kind"] == "pair"
    assert summary["pair"]["fast_cutoff_A"] == 2.0
    assert summary["pair"]["slow_interaction_range_A"] == 4.0

    code, out, err = run(cutoff_models[1.0], "too_short")
    assert code == 2
    assert "have neighbours within 4 A but none within 1 A" in err
    # the cutoff that would do: the largest nearest-neighbour distance of those
    # atoms (bonds of the analytic model's relaxed ethanol, 1-1.5 A)
    match = re.search(r"train the student with a cutoff of at least ([\d.]+) A", err)
    assert match and 1.0 < float(match.group(1)) < 1.5
    _nothing_written(tmp_path, out)

    code, out, err = run(cutoff_models[5.0], "long")
    assert code == 0
    assert "farther than the slow model" in err


def test_trained_pair_with_stride_scan(tiny_pet_m, tiny_pet_nc, ethanol_file, tmp_path):
    """A trained teacher (pet_m's conservative forces) and a trained pet_nc student:
    the scan runs from stride 1 (the teacher's velocity Verlet) and the run uses the
    stride it chose."""
    out = tmp_path / "pair"
    argv = ["md", str(tiny_pet_m.exported), str(ethanol_file), "-o", str(out)]
    argv += ["--forces", "mts", "--fast", str(tiny_pet_nc.exported)]
    argv += ["--stride", "auto", "--inner-timestep", "0.25", "--scan-time", "3"]
    argv += ["--max-stride", "4", "--timestep", "1", "--steps", "2"]
    assert main(argv + ["--max-temperature", "0", "--no-chemiscope"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    scan = summary["stride_scan"]
    assert scan["rows"][0]["stride"] == 1 and scan["rows"][0]["status"] == "reference"
    assert summary["settings"]["stride"] == scan["stride"]
    assert summary["pair"]["inner_head"] == "direct"
    # the run's own calls (the scan's are in stride_scan): the first evaluation,
    # then M student calls and one teacher call per outer step
    outer, stride = summary["outer_steps_done"], summary["settings"]["stride"]
    assert summary["fast_model_forward_passes"] == 1 + outer * stride
    assert summary["model_backward_passes"] == 1 + outer
    assert scan["fast_model_forward_passes"] > 0


def test_label_the_head_a_model_was_trained_for(
    tiny_pet_nc, ethanol_file, tmp_path, capsys
):
    """pet_nc labels are its direct forces: the conservative default is refused
    (its energy head never saw forces), --forces direct writes them."""
    out = tmp_path / "labels.xyz"
    for model in (tiny_pet_nc.exported, tiny_pet_nc.checkpoint):
        assert main(["label", str(model), str(ethanol_file), "-o", str(out)]) == 2
        err = capsys.readouterr().err
        assert "energy head was never trained on forces" in err
        assert "label with --forces direct" in err
        assert not out.exists()
    argv = ["label", str(tiny_pet_nc.exported), str(ethanol_file), "-o", str(out)]
    assert main(argv + ["--forces", "direct"]) == 0
    labelled = ase.io.read(out)
    expected = load_force_model(tiny_pet_nc.exported).evaluate(
        ase.io.read(ethanol_file), conservative=False, direct=True
    )
    np.testing.assert_allclose(labelled.get_forces(), expected.direct, atol=1e-6)

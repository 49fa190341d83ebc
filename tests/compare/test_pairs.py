"""``mtt-nc compare --pair SLOW+FAST``: a teacher-student pair as one more MTS row
(cost, NVE drift and heating, NVT) next to a hybrid model's own MTS; bad pairs are
refused before any work. Tiny models trained by ``mtt train`` (session fixtures)."""

import csv
import json

import ase.io
import pytest

from metatrain_nc.cli import main

#: seconds, not minutes
QUICK = ["--quick", "--nve-time", "8", "--nvt-time", "4", "--equilibration", "4"]
QUICK += ["--timestep", "0.5", "--stride", "4", "--stages", "cost,nve,nvt"]


def _first_row(folder):
    with open(folder / "md_log.csv", newline="") as handle:
        return next(csv.DictReader(handle))


def test_pair_next_to_a_hybrid(
    tiny_pet, tiny_pet_nc, tiny_pet_m, ethanol_frames, tmp_path, capsys
):
    out = tmp_path / "report"
    argv = ["compare", str(tiny_pet.exported), str(tiny_pet_m.exported)]
    argv += ["--names", "pet_c,pet_m", "--structures", str(ethanol_frames)]
    argv += ["--pair", f"pet_c+{tiny_pet_nc.exported}", "-o", str(out), *QUICK]
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["failures"] == []
    assert list(report["models"]) == ["pet_c", "pet_m", "pet_c+model"]
    pair = report["models"]["pet_c+model"]
    assert pair["info"]["kind"] == "pair" and pair["info"]["md_modes"] == ["mts"]
    assert pair["info"]["slow"] == "pet_c"
    assert pair["info"]["fast_path"] == str(tiny_pet_nc.exported)
    assert "accuracy" not in pair  # no head of its own: the models' rows say it

    # cost: the teacher's conservative call, the student's direct call, and their
    # MTS average per inner step, against the reference (the conservative pet_c)
    ms = pair["cost"]["ms"]
    assert ms["mts_per_inner_step"] == pytest.approx(
        ms["fast"] + ms["conservative"] / 4
    )
    assert pair["cost"]["reference"] == "pet_c"
    assert pair["cost"]["fast_head"] == "direct"

    # MTS: 4 student calls per outer step, one teacher call with its backward pass
    nve = pair["nve"]["mts"]
    steps = nve["outer_steps_done"]
    assert nve["model_backward_passes"] == steps + 1
    assert nve["fast_model_forward_passes"] == 4 * steps + 1
    # the pair's NVT row carries the equipartition check as a hybrid model's does
    nvt = {(r["model"], r["mode"]): r for r in report["nvt"]}
    hybrid_nvt, pair_nvt = nvt["pet_m", "mts"], nvt[pair["info"]["name"], "mts"]
    assert isinstance(hybrid_nvt.get("equipartition"), dict)
    assert pair_nvt["teacher"] == "pet_c"
    assert pair_nvt["equipartition"].keys() == hybrid_nvt["equipartition"].keys()
    # the pair starts from the teacher's own equilibrated state: the teacher's
    # conservative run and the pair's run begin with the same potential energy
    start_teacher = _first_row(
        out / report["models"]["pet_c"]["nve"]["conservative"]["folder"]
    )
    start_pair = _first_row(out / nve["folder"])
    assert float(start_pair["potential_eV"]) == pytest.approx(
        float(start_teacher["potential_eV"]), abs=1e-6
    )

    markdown = (out / "report.md").read_text()
    assert "| pet_c+model | - + pet_nc | pair | mts |" in markdown
    assert "| pet_c+model | mts | completed |" in markdown
    assert "| pet_c+model | fast |" in markdown


@pytest.mark.parametrize(
    "pair, message",
    [
        ("pet_c", "joined by '+', e.g. pet_c.pt+student.pt"),
        ("pet_c+missing.pt", "'missing.pt' is not a model file"),
        ("NC+pet_c", "is a pet_nc model: its energy head was never trained"),
        ("pet_c+WATER", "does not know species ['C'] of the structure"),
    ],
)
def test_bad_pairs(
    tiny_pet,
    tiny_pet_nc,
    tiny_pet_nc_periodic,
    ethanol_frames,
    tmp_path,
    capsys,
    pair,
    message,
):
    """Refused before any work: exit 2, the problem and the fix, no folder."""
    pair = pair.replace("NC", str(tiny_pet_nc.exported))
    pair = pair.replace("WATER", str(tiny_pet_nc_periodic.exported))
    out = tmp_path / "report"
    argv = ["compare", str(tiny_pet.exported), "--names", "pet_c"]
    argv += ["--structures", str(ethanol_frames), "--pair", pair, "-o", str(out)]
    assert main(argv + QUICK) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".report")] == []


def test_pair_is_not_for_the_paper_protocol(tiny_pet, ethanol_frames, tmp_path, capsys):
    out = tmp_path / "paper"
    argv = ["compare", str(tiny_pet.exported), "--structures", str(ethanol_frames)]
    argv += ["--pair", f"{tiny_pet.exported}+{tiny_pet.exported}", "-o", str(out)]
    assert main(argv + ["--protocol", "paper"]) == 2
    assert "drop --pair or --protocol paper" in capsys.readouterr().err
    assert not out.exists()


def test_label_a_head_the_model_lacks(tiny_pet, ethanol_frames, tmp_path, capsys):
    """Stock pet has no direct head: --forces direct is refused, nothing written."""
    out = tmp_path / "labels.xyz"
    argv = ["label", str(tiny_pet.exported), str(ethanol_frames), "-o", str(out)]
    assert main(argv + ["--forces", "direct"]) == 2
    err = capsys.readouterr().err
    assert "has no direct force head" in err
    assert "label with --forces conservative" in err
    assert not out.exists()
    assert main(argv) == 0
    assert len(ase.io.read(out, ":")) == len(ase.io.read(ethanol_frames, ":"))


def test_pair_nvt_is_read_against_its_teacher():
    """A pair's NVT splits are read against its teacher's conservative run, not the
    first conservative model of the comparison."""
    from metatrain_nc.compare.nvt_reading import conservative_run

    def run(model, mode, split, teacher=None):
        return {
            "model": model,
            "mode": mode,
            "teacher": teacher,
            "ensemble": "svr",
            "tau_fs": 10.0,
            "status": "completed",
            "equipartition": {"splits": {"H-O": {"difference": split}}},
        }

    runs = {
        r["model"]: r
        for r in [
            run("other", "conservative", -5.0),
            run("teacher", "conservative", -40.0),
            run("teacher+student", "mts", -42.0, teacher="teacher"),
            run("hybrid", "mts", 3.0),
        ]
    }
    reference = conservative_run(list(runs.values()), runs["teacher+student"])
    assert reference["model"] == "teacher"
    assert reference["equipartition"]["splits"]["H-O"]["difference"] == -40.0
    # a model without a conservative run of its own: the first conservative run
    assert conservative_run(list(runs.values()), runs["hybrid"])["model"] == "other"

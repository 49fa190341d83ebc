"""``mtt-nc md`` and ``mtt-nc relax`` end to end on analytic models; bad input."""

import gzip
import json

import ase.io
import pytest

from metatrain_nc.cli import main


def _md(model, structure, outdir, *extra):
    return main(
        [
            "md",
            str(model),
            str(structure),
            "-o",
            str(outdir),
            "--steps",
            "10",
            "--timestep",
            "2",
            "--stride",
            "4",
            "--trajectory-every",
            "5",
            *extra,
        ]
    )


def test_md_outputs(models, ethanol_box_file, tmp_path, capsys):
    out = tmp_path / "md"
    assert _md(models["nc"], ethanol_box_file, out, "--forces", "mts") == 0
    printed = capsys.readouterr().out
    assert "completed" in printed and "drift" in printed
    names = {p.name for p in out.iterdir()}
    assert names == {
        "trajectory.extxyz",
        "md_log.csv",
        "summary.json",
        "temperature_energy.png",
        "temperature_species.png",
        "trajectory.chemiscope.json.gz",
    }
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["outer_steps_done"] == 10
    assert summary["inner_timestep_fs"] == 0.5
    assert summary["model_backward_passes"] == 11
    assert summary["velocity_source"] == "maxwell-boltzmann"
    for key in ["heating_rate_K_per_ps", "drift_meV_per_atom_per_ps"]:
        assert isinstance(summary[key], float)
    assert {"mean_temperature_H_K", "mean_temperature_C_K", "mean_temperature_O_K"} <= (
        set(summary)
    )
    header = (out / "md_log.csv").read_text().splitlines()[0].split(",")
    assert "conserved_eV" in header and "temperature_O_K" in header
    assert len((out / "md_log.csv").read_text().splitlines()) == 12
    frames = ase.io.read(out / "trajectory.extxyz", ":")
    assert len(frames) == 3
    assert "force_difference" in frames[0].arrays
    with gzip.open(out / "trajectory.chemiscope.json.gz", "rt") as stream:
        dataset = json.load(stream)
    assert len(dataset["structures"]) == 3
    props = dataset["properties"]
    assert len(props["temperature"]["values"]) == 3
    assert len(props["|F_c - F_nc|"]["values"]) == 3 * 72
    assert max(props["|F_c - F_nc|"]["values"]) > 0
    # the same dataset as the compare viewer's: log columns joined by step
    assert len(props["temperature O"]["values"]) == 3
    assert props["conserved energy change"]["values"][0] == 0.0


def test_md_reproducible_and_velocities_from_structure(
    models, ethanol_box_file, tmp_path
):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        extra = ["--ensemble", "langevin", "--tau", "50", "--seed", "7"]
        assert _md(models["nc"], ethanol_box_file, out, *extra) == 0
    assert (a / "md_log.csv").read_text() == (b / "md_log.csv").read_text()
    # restart from the last frame: its momenta are used
    last = tmp_path / "last.extxyz"
    ase.io.write(last, ase.io.read(a / "trajectory.extxyz", -1))
    c = tmp_path / "c"
    assert _md(models["nc"], last, c, "--velocities", "structure") == 0
    summary = json.loads((c / "summary.json").read_text())
    assert summary["velocity_source"] == "structure"


def test_md_runaway_keeps_trajectory(models, ethanol_box_file, tmp_path, capsys):
    out = tmp_path / "hot"
    code = _md(
        models["nc"],
        ethanol_box_file,
        out,
        "--forces",
        "direct",
        "--temperature",
        "200",
        "--max-temperature",
        "260",
        "--steps",
        "150",
    )
    assert code == 3
    assert "runaway" in capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "runaway"
    assert "260" in summary["message"]
    assert 5 < summary["outer_steps_done"] < 150
    frames = ase.io.read(out / "trajectory.extxyz", ":")
    # every 5th step plus the frame that ran away
    assert frames[-1].info["step"] == summary["outer_steps_done"]
    assert frames[-1].info["temperature_K"] > 260


def test_md_bad_input(models, ethanol_box_file, tmp_path, capsys):
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("precious")
    cases = [
        (
            [models["energy"], ethanol_box_file, "--forces", "direct"],
            "non_conservative",
        ),
        ([models["energy"], ethanol_box_file, "--forces", "mts"], "non_conservative"),
        ([models["nc"], ethanol_box_file, "--timestep", "0"], "timestep"),
        ([models["nc"], ethanol_box_file, "--timestep", "-1"], "timestep"),
        ([models["nc"], ethanol_box_file, "--stride", "0"], "stride"),
        ([models["nc"], tmp_path / "missing.xyz"], "does not exist"),
        ([tmp_path / "missing.pt", ethanol_box_file], "does not exist"),
    ]
    gold = ase.io.read(ethanol_box_file)
    gold[0].symbol = "Au"
    ase.io.write(tmp_path / "gold.xyz", gold)
    cases.append(([models["nc"], tmp_path / "gold.xyz"], "Au"))
    (tmp_path / "empty.xyz").write_text("")
    cases.append(([models["nc"], tmp_path / "empty.xyz"], "empty"))
    for i, (args, message) in enumerate(cases):
        out = tmp_path / f"out{i}"
        argv = ["md", *map(str, args[:2]), "-o", str(out), *args[2:]]
        assert main(argv) == 2, argv
        assert message in capsys.readouterr().err, argv
        assert not out.exists()
    # an existing folder is refused and left alone
    assert main(["md", models["nc"], str(ethanol_box_file), "-o", str(existing)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (existing / "keep.txt").read_text() == "precious"
    # bad input with --force does not destroy it either
    argv = ["md", models["energy"], str(ethanol_box_file), "-o", str(existing)]
    assert main([*argv, "--forces", "direct", "--force"]) == 2
    assert (existing / "keep.txt").read_text() == "precious"
    # a good run with --force replaces it
    assert _md(models["nc"], ethanol_box_file, existing, "--force") == 0
    assert not (existing / "keep.txt").exists()
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_relax(models, relaxed_ethanol, tmp_path, capsys):
    structures = tmp_path / "molecules.xyz"
    ase.io.write(structures, [relaxed_ethanol, relaxed_ethanol[:3]])
    out = tmp_path / "relax"
    argv = [
        "relax",
        models["nc"],
        str(structures),
        "-o",
        str(out),
        "--sigma",
        "0.05",
        "--steps",
        "150",
        "--fmax",
        "1e-3",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "LBFGS" in printed and "FIRE" in printed
    summary = json.loads((out / "summary.json").read_text())
    fractions = summary["fraction_converged"]
    # the rotation field has no zero: direct relaxations never converge
    assert fractions["conservative"]["FIRE"] == 1.0
    assert fractions["direct"]["LBFGS"] == 0.0
    assert fractions["direct"]["FIRE"] == 0.0
    # Wilson 95% intervals of 2 structures: 2/2 -> [0.34, 1], 0/2 -> [0, 0.66]
    intervals = summary["fraction_interval_95"]
    low, high = intervals["conservative"]["FIRE"]
    assert high == 1.0 and 0.2 < low < 0.5
    low, high = intervals["direct"]["LBFGS"]
    assert low == 0.0 and 0.5 < high < 0.8
    assert "1.00 [0.34, 1.00]" in printed and "0.00 [0.00, 0.66]" in printed
    rows = (out / "relax_results.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 2 * 2
    # bad input
    assert main([*argv[:4], str(tmp_path / "r2"), "--optimizers", "BFGS"]) == 2
    assert "BFGS" in capsys.readouterr().err
    assert (
        main(
            [
                "relax",
                models["energy"],
                str(structures),
                "-o",
                str(tmp_path / "r3"),
                "--forces",
                "direct",
            ]
        )
        == 2
    )
    assert not (tmp_path / "r2").exists() and not (tmp_path / "r3").exists()


@pytest.mark.parametrize("command", ["md", "relax"])
def test_help_is_listed(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "--output-dir" in capsys.readouterr().out


def test_relax_says_where_direct_relaxations_end():
    from metatrain_nc.dynamics.command_relax import _direct_endpoints

    records = [
        {"forces": "direct", "optimizer": "LBFGS", "converged": True,
         "conservative_fmax_final": value}
        for value in (0.3, 0.1, 0.2)
    ] + [
        {"forces": "direct", "optimizer": "FIRE", "converged": False,
         "conservative_fmax_final": 5.0},
        {"forces": "conservative", "optimizer": "LBFGS", "converged": True,
         "conservative_fmax_final": 1e-6},
    ]  # fmt: skip
    lines = _direct_endpoints(records, ["conservative", "direct"])
    assert len(lines) == 1  # FIRE never converged: nothing to say about it
    assert "LBFGS, 3 runs" in lines[0]
    assert "fmax 0.2 eV/A (median; largest 0.3)" in lines[0]
    # without a trained conservative head (pet_nc) there is nothing to compare with
    assert _direct_endpoints(records, ["direct"]) == []


def test_md_says_when_a_stride_divides_a_plain_step(
    models, ethanol_box_file, tmp_path, capsys
):
    """Conservative or direct forces with a stride > 1 move the atoms in inner steps
    of TIMESTEP / STRIDE: the command says so (a user who meant velocity Verlet at
    TIMESTEP pays STRIDE times the cost otherwise)."""
    out = tmp_path / "strided"
    assert _md(models["nc"], ethanol_box_file, out, "--forces", "conservative") == 0
    assert "inner steps of 0.5 fs" in capsys.readouterr().err
    plain = tmp_path / "plain"
    extra = ["--forces", "conservative", "--stride", "1"]
    assert _md(models["nc"], ethanol_box_file, plain, *extra) == 0
    assert "inner steps of" not in capsys.readouterr().err

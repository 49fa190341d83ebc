"""Lambda of the direct head at the end of ``mtt train`` (pet_nc, pet_m): the log line,
the value stored with the checkpoint and the exported model, agreement with
``mtt-nc antisymmetry``, bad hypers, and estimates that cannot run."""

import json
import logging
import re
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
from metatomic.torch import load_atomistic_model
from metatrain.utils.architectures import (
    check_architecture_options,
    get_default_hypers,
)

from metatrain_nc.cli import main
from metatrain_nc.direct.lambda_estimate import (
    CONSERVATIVE_NOTE,
    read_estimate,
    run_estimate,
)

from ..conftest import run_mtt, write_options

LINE = re.compile(
    r"lambda of the direct head \(non_conservative_force\), (best|latest) model, "
    r"epoch (\d+), on (\d+) validation structures?(?: \(the whole validation set\))?"
    r": (\S+) \+- (\S+) \(([^;]+); "
)


def _lines(log: str):
    return [m.groups() for m in LINE.finditer(log)]


def _validation_frames(run, count):
    """The first ``count`` validation structures of an ``mtt train`` run."""
    (indices,) = list(Path(run.workdir).glob("outputs/*/*/indices/validation.txt"))
    frames = ase.io.read(run.data, ":")
    return [frames[i] for i in np.loadtxt(indices, dtype=int, ndmin=1)[:count]]


def test_pet_nc_lambda_line_agrees_with_antisymmetry_command(tiny_pet_nc, tmp_path):
    lines = _lines(tiny_pet_nc.log)
    assert len(lines) == 1
    which, epoch, structures, value, error, method = lines[0]
    assert (which, method, float(error)) == ("best", "exact", 0.0)
    record = read_estimate(torch.load(tiny_pet_nc.checkpoint, weights_only=False))
    assert record["structures"] == int(structures) == 4  # 0.2 x 20 frames
    assert record["epoch"] == int(epoch)
    assert float(value) == pytest.approx(record["value"], rel=1e-3)
    assert record["value"] > 1e-3  # a direct head is not conservative
    # the exported model carries the same record
    exported = load_atomistic_model(str(tiny_pet_nc.exported))
    assert read_estimate(exported) == record
    assert CONSERVATIVE_NOTE not in tiny_pet_nc.log  # pet_nc: no such head
    # the evaluator on the same validation structures
    path = tmp_path / "validation.xyz"
    ase.io.write(path, _validation_frames(tiny_pet_nc, record["structures"]))
    out = tmp_path / "lambda"
    args = ["antisymmetry", str(tiny_pet_nc.exported), str(path), "-o", str(out)]
    assert main(args + ["--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["lambda_mean"] == pytest.approx(record["value"], rel=1e-4)
    np.testing.assert_allclose(
        [s["lambda"] for s in summary["structures"]],
        record["per_structure"],
        rtol=1e-4,
    )


def test_pet_m_line_names_direct_head_and_conservative_zero(tiny_pet_m):
    lines = _lines(tiny_pet_m.log)
    assert len(lines) == 1 and lines[0][0] == "best"
    assert tiny_pet_m.log.count(CONSERVATIVE_NOTE) == 1
    assert "lambda = 0 by construction" in CONSERVATIVE_NOTE
    record = read_estimate(torch.load(tiny_pet_m.checkpoint, weights_only=False))
    assert record["architecture"] == "pet_m"
    assert record["output"] == "non_conservative_force"


def test_stochastic_estimate_and_intermediate_checkpoints(tiny_pet_nc_atom_head):
    """One epoch, every structure stochastic, an estimate at every checkpoint (the
    hypers of the fixture, tests/conftest.py)."""
    run = tiny_pet_nc_atom_head
    hypers = torch.load(run.checkpoint, weights_only=False)["train_hypers"]
    assert hypers["lambda_estimate"]["exact_max_atoms"] == 0
    lines = _lines(run.log)
    assert [line[:3] for line in lines] == [("latest", "0", "2"), ("best", "0", "2")]
    for line in lines:
        assert line[5] == "stochastic, 4 probes" and float(line[4]) > 0
    (intermediate,) = list(run.workdir.glob("outputs/*/*/model_0.ckpt"))
    stored = read_estimate(torch.load(intermediate, weights_only=False))
    assert (stored["model"], stored["epoch"], stored["stochastic"]) == ("latest", 0, 2)
    final = read_estimate(torch.load(run.checkpoint, weights_only=False))
    assert final["model"] == "best" and final["error"] > 0


def test_bad_lambda_hypers(tmp_path, ethanol_frames):
    write_options(
        tmp_path / "options.yaml",
        "pet_m",
        str(ethanol_frames),
        training={
            "lambda_estimate": {
                "structures": -1,
                "probes": 5000,
                "exact_max_atoms": 2000,
                "every_checkpoints": -3,
            }
        },
    )
    run = run_mtt(["train", "options.yaml"], cwd=tmp_path, check=False)
    log = run.stdout + run.stderr
    assert run.returncode != 0
    assert (
        "lambda_estimate.structures must be >= 0 (0 switches the estimate off)" in log
    )
    assert "lambda_estimate.probes must be between 2 and 1024" in log
    assert "lambda_estimate.exact_max_atoms must be between 0 and 1000" in log
    assert "lambda_estimate.every_checkpoints must be >= 0" in log
    assert not (tmp_path / "model.ckpt").exists()
    # too few probes for an error bar (the same validation, without a subprocess)
    options = get_default_hypers("pet_nc")
    options["training"]["lambda_estimate"]["probes"] = 1
    with pytest.raises(Exception, match="an error bar needs 2 probes"):
        check_architecture_options(name="pet_nc", options=dict(options, name="pet_nc"))


@pytest.fixture
def trained_model(tiny_pet_nc):
    from metatrain.utils.io import load_model

    return load_model(tiny_pet_nc.checkpoint)


HYPERS = {"structures": 3, "probes": 4, "exact_max_atoms": 100, "every_checkpoints": 0}


def test_no_validation_set_is_reported_and_skipped(trained_model, caplog):
    caplog.set_level(logging.INFO)
    assert run_estimate(trained_model, [[]], HYPERS, which="best", epoch=1) is None
    assert "skipped, there are no validation structures" in caplog.text
    off = dict(HYPERS, structures=0)
    assert run_estimate(trained_model, [[]], off, which="best", epoch=1) is None
    assert "not estimated (lambda_estimate.structures is 0)" in caplog.text


def test_estimate_that_cannot_run_is_reported_and_skipped(trained_model, caplog):
    class Broken:
        def __len__(self):
            return 3

        def __getitem__(self, index):
            raise RuntimeError("unreadable structure")

    before = read_estimate(trained_model.metadata)
    caplog.set_level(logging.INFO)
    assert (
        run_estimate(trained_model, [Broken()], HYPERS, which="best", epoch=1) is None
    )
    assert "skipped, the estimate could not run" in caplog.text
    assert "unreadable structure" in caplog.text
    assert read_estimate(trained_model.metadata) == before

"""The paper's findings (2) and (3) in seconds with the analytic models, the monitors
that catch them, and the stride finder.

Finding (2): a thermostat hides the heating of direct forces but breaks equipartition
between species. The system: 8 ethanol molecules fused into one cluster by the pair
energy (72 atoms, ``data/ethanol_cluster_1000K.extxyz``, made by :func:`make_cluster`),
with zero total momentum and angular momentum, SVR with tau 10 fs at 1000 K, 1 fs
steps, 2 ps, the second half analysed. The rotational direct force (0.005 eV/A^2)
spins the cluster: H ~650 K, C ~1600 K, O ~2050 K, splits of 13-23 standard errors
(6 seeds of the thermostat); its conservative force and MTS (M = 4) stay below 3.1
standard errors on the same 6 seeds. What did not work, and why:

- separate molecules: under a global thermostat each keeps its own momentum and
  angular momentum, so their species never equilibrate, even with conservative forces;
- the cluster at 300 K: a glass whose species exchange energy over picoseconds; the
  block errors of 1 ps are then too small by ~2x, and a third of conservative runs
  look resolved;
- 2 fs steps: the fast H vibrations alone make H ~15 K colder than C (1% at 1 fs);
- a start with a moving centre of mass: SVR keeps its kinetic energy, which sits
  mostly on C and O.

Finding (3): L-BFGS at 1e-5 eV/A converges with the conservative force and stalls
with a weak rotational force (1e-4 eV/A^2), which still converges at 1e-3 eV/A.
"""

import contextlib
import io
import json
import math
from pathlib import Path

import ase
import ase.build
import ase.io
import numpy as np
import pytest
from ase import units

from metatrain_nc.cli import main
from metatrain_nc.dynamics.integrator import MultipleTimeStep
from metatrain_nc.dynamics.statistics import block_average
from metatrain_nc.dynamics.stride import find_stride
from metatrain_nc.dynamics.structures import maxwell_boltzmann
from metatrain_nc.dynamics.thermostats import correlation_time_fs
from metatrain_nc.dynamics.verdicts import RESOLVED_SIGMA, diagnose, equipartition

from ..analytic_models import export_pair_model
from .conftest import molecules_in_box, run_nve

DATA = Path(__file__).parent / "data" / "ethanol_cluster_1000K.extxyz"
#: temperature of the equipartition runs (K)
TEMPERATURE = 1000.0

#: strength (eV/A^2) of a rotational force that breaks every stride above 1
STRONG = 2.0
#: strength (eV/A^2) of a rotational force that stalls L-BFGS only at tight thresholds
WEAK = 1e-4


def make_cluster(model_path: str, relaxed_ethanol: ase.Atoms) -> ase.Atoms:
    """Remake ``DATA``: 8 relaxed ethanol molecules 4.5 A apart fuse into one cluster
    (FIRE to 0.05 eV/A), then 6 ps of Langevin at 1000 K (tau 50 fs, 1 fs steps) with
    the conservative forces; zero total momentum and angular momentum at the end."""
    from ase.md.velocitydistribution import Stationary, ZeroRotation
    from ase.optimize import FIRE

    from metatrain_nc.force_models import ModelCalculator

    atoms = molecules_in_box(relaxed_ethanol, n_side=2, spacing=4.5)
    atoms.calc = ModelCalculator(model_path, forces="conservative")
    FIRE(atoms, logfile=None).run(fmax=0.05, steps=3000)
    atoms.calc = None
    maxwell_boltzmann(atoms, TEMPERATURE, seed=0)
    dyn = MultipleTimeStep(
        atoms,
        1 * units.fs,
        model_path,
        forces="conservative",
        stride=1,
        ensemble="langevin",
        temperature_K=TEMPERATURE,
        tau=50 * units.fs,
        rng=1,
    )
    dyn.run(6000)
    atoms.calc = None
    Stationary(atoms)
    ZeroRotation(atoms)
    return atoms


if __name__ == "__main__":  # remake DATA: python -m tests.dynamics.test_findings
    import tempfile

    from ase.optimize import LBFGS

    from metatrain_nc.force_models import ModelCalculator

    with tempfile.TemporaryDirectory() as folder:
        path = export_pair_model(f"{folder}/c.pt")
        ethanol = ase.build.molecule("CH3CH2OH")
        ethanol.calc = ModelCalculator(path, forces="conservative")
        LBFGS(ethanol, logfile=None).run(fmax=1e-4, steps=500)
        ethanol.calc = None
        DATA.parent.mkdir(exist_ok=True)
        ase.io.write(DATA, make_cluster(path, ethanol), format="extxyz")


def _run(argv):
    """``mtt-nc`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


# -- finding (2): equipartition under SVR ----------------------------------------------
SVR = ["--ensemble", "svr", "--tau", "10", "--temperature", "1000", "--seed", "1"]
#: 2 ps with 1 fs (inner) steps
RUNS = {
    "direct": ["--forces", "direct", "--timestep", "1", "--stride", "1"],
    "conservative": ["--forces", "direct", "--timestep", "1", "--stride", "1"],
    "mts": ["--forces", "mts", "--timestep", "4", "--stride", "4"],
}
STEPS = {"direct": 2000, "conservative": 2000, "mts": 500}


@pytest.fixture(scope="module")
def svr_runs(models, tmp_path_factory):
    """``mtt-nc md --ensemble svr`` from the equilibrated cluster: the rotational
    model's direct head, the conservative model's direct head (= -dE/dr) and the
    rotational model with MTS: ``{name: (code, stdout, stderr, summary)}``."""
    folder = tmp_path_factory.mktemp("svr")
    results = {}
    for name, options in RUNS.items():
        model = models["c"] if name == "conservative" else models["nc"]
        out = folder / name
        code, stdout, stderr = _run(
            ["md", model, DATA, "-o", out, *options, *SVR]
            + ["--steps", STEPS[name], "--velocities", "structure"]
            + ["--trajectory-every", "1000", "--no-chemiscope"]
        )
        summary = json.loads((out / "summary.json").read_text())
        results[name] = (code, stdout, stderr, summary)
    return results


def test_cluster_data_is_at_rest():
    atoms = ase.io.read(DATA)
    assert len(atoms) == 72
    momentum = atoms.get_momenta().sum(axis=0)
    assert np.abs(momentum).max() < 1e-6  # extxyz keeps 8 decimals
    temperature = atoms.get_kinetic_energy() / (1.5 * len(atoms) * units.kB)
    assert 0.8 * TEMPERATURE < temperature < 1.2 * TEMPERATURE


def test_direct_force_breaks_equipartition_under_svr(svr_runs):
    code, stdout, stderr, summary = svr_runs["direct"]
    assert code == 0 and summary["status"] == "completed"
    check = summary["equipartition"]
    assert check["resolved"] is True
    species = check["species"]
    # the rotational field spins the cluster: the heavy atoms carry its energy
    assert species["C"]["mean"] > species["H"]["mean"] + 500
    assert species["O"]["mean"] > species["H"]["mean"] + 500
    assert check["max_split_K"] > 8 * check["max_split_error_K"]
    split = check["splits"]["H-C"]
    assert split["resolved"] and split["sigma"] > RESOLVED_SIGMA
    kinds = [w["kind"] for w in summary["warnings"]]
    assert "equipartition" in kinds
    # printed: one line per warning, with the way out
    assert "warning: equipartition broken" in stderr
    assert "--forces mts" in stderr
    assert "largest split" in stdout and "(resolved)" in stdout


@pytest.mark.parametrize("name", ["conservative", "mts"])
def test_conservative_force_and_mts_keep_equipartition(svr_runs, name):
    code, stdout, stderr, summary = svr_runs[name]
    assert code == 0 and summary["status"] == "completed"
    check = summary["equipartition"]
    assert check["resolved"] is False and check["stationary"] is True
    assert check["n_records"] >= 250
    # the analytic pair energy is no chemistry: at 1000 K its cluster trades
    # hydrogens, and the bonded-topology check may say so
    warnings = [w for w in summary["warnings"] if w["kind"] != "topology"]
    assert warnings == []
    lines = [x for x in stderr.splitlines() if "warning" in x]
    assert all("warning: the bonded topology" in x for x in lines)
    direct = svr_runs["direct"][3]["equipartition"]
    assert check["max_split_K"] < direct["max_split_K"] / 5
    # the thermostat holds its target
    assert check["temperature"]["resolved"] is False


def test_block_average_of_correlated_samples():
    rng = np.random.default_rng(0)
    # AR(1) with correlation 0.9: integrated correlation time 19 samples
    n, phi = 2**14, 0.9
    noise = rng.standard_normal(n)
    x = np.empty(n)
    x[0] = noise[0]
    for i in range(1, n):
        x[i] = phi * x[i - 1] + math.sqrt(1 - phi**2) * noise[i]
    mean, error, blocks = block_average(x + 5.0)
    exact = math.sqrt((1 + phi) / (1 - phi) / n)
    assert 0.7 * exact < error < 1.5 * exact
    assert abs(mean - 5.0) < 5 * exact
    assert 8 <= blocks < n
    # uncorrelated samples: the plain standard error
    mean, error, blocks = block_average(noise)
    assert error == pytest.approx(1 / math.sqrt(n), rel=0.2)
    # too few samples for an error
    mean, error, blocks = block_average([1.0, 2.0, 3.0])
    assert mean == 2.0 and math.isnan(error) and blocks == 3


def _ar1(rng, n: int, phi: float = 0.9) -> np.ndarray:
    """Correlated unit-variance noise (AR(1), integrated correlation time 19)."""
    noise = rng.standard_normal(n)
    x = np.empty(n)
    x[0] = noise[0]
    for i in range(1, n):
        x[i] = phi * x[i - 1] + math.sqrt(1 - phi**2) * noise[i]
    return x


def _thermostat_rows(o_offset: np.ndarray, seed: int = 0) -> list:
    """Records of a thermostatted run: H at 300 K, O at 300 K + ``o_offset``."""
    rng = np.random.default_rng(seed)
    n = len(o_offset)
    hydrogen = 300.0 + 5.0 * _ar1(rng, n)
    oxygen = 300.0 + 5.0 * _ar1(rng, n) + o_offset
    return [
        {
            "time_fs": 2.0 * i,
            "temperature_K": (2 * h + o) / 3,
            "temperature_H_K": h,
            "temperature_O_K": o,
        }
        for i, (h, o) in enumerate(zip(hydrogen, oxygen, strict=True))
    ]


def test_a_split_still_growing_is_reported_as_not_stationary():
    # the PET-NC water run: a split that builds up over the run
    rows = _thermostat_rows(np.linspace(0.0, 60.0, 2000))
    check = equipartition(rows, 300.0)
    assert check["resolved"] is True and check["stationary"] is False
    change = check["splits"]["H-O"]["change"]
    # the analysed half ramps from 30 to 60 K: its halves differ by ~15 K
    assert change["value"] == pytest.approx(-15.0, abs=4 * change["error"])
    assert abs(change["value"]) > 4 * change["error"]
    warnings = diagnose(rows, {}, "direct", "svr", 300.0)["warnings"]
    kinds = [w["kind"] for w in warnings]
    assert "not_stationary" in kinds and "equipartition" in kinds
    message = warnings[kinds.index("not_stationary")]["message"]
    assert f"H-O split changed by {change['value']:+.1f} +- " in message
    assert "run longer" in message and "mtt-nc read RUN --from" in message
    # a constant split of the same mean is resolved, and stationary
    rows = _thermostat_rows(np.full(2000, 45.0))
    check = equipartition(rows, 300.0)
    assert check["resolved"] is True and check["stationary"] is True
    warnings = diagnose(rows, {}, "direct", "svr", 300.0)["warnings"]
    kinds = [w["kind"] for w in warnings]
    assert "equipartition" in kinds and "not_stationary" not in kinds
    # too few records: no verdict either way
    assert equipartition(rows[:40], 300.0)["stationary"] is None


def _slow_temperature_rows(rng, n: int, tau_fs: float, interval_fs: float = 2.0):
    """Records of a weakly thermostatted run: a temperature around 300 K that
    relaxes in ``tau_fs`` (an exactly sampled Ornstein-Uhlenbeck process, 10 K wide)
    plus fast noise, both species alike."""
    from scipy.signal import lfilter

    phi = math.exp(-interval_fs / tau_fs)
    slow = lfilter([math.sqrt(1 - phi**2)], [1.0, -phi], rng.standard_normal(n))
    slow += rng.standard_normal() * phi ** np.arange(n)  # a stationary start
    temperature = 300.0 + 10.0 * slow + 15.0 * rng.standard_normal(n)
    return [
        {
            "time_fs": interval_fs * i,
            "temperature_K": t,
            "temperature_H_K": t + 3.0 * rng.standard_normal(),
            "temperature_O_K": t + 3.0 * rng.standard_normal(),
        }
        for i, t in enumerate(temperature)
    ]


def test_mean_temperature_errors_allow_for_the_thermostat_time():
    # 10 ps runs under a Langevin thermostat of tau 1 ps, the last 5 ps analysed:
    # blocks of ~0.5 ps cannot show the 1 ps correlation; the spread of the mean
    # over independent runs is the error bar's truth
    rng = np.random.default_rng(1)
    runs = [_slow_temperature_rows(rng, 5000, 1000.0) for _ in range(60)]
    plain = [equipartition(rows, 300.0) for rows in runs]
    widened = [
        equipartition(rows, 300.0, correlation_fs=1000.0, degrees_of_freedom=576)
        for rows in runs
    ]
    spread = np.std([c["temperature"]["mean"] for c in plain], ddof=1)
    plain_error = np.mean([c["temperature"]["error"] for c in plain])
    widened_error = np.mean([c["temperature"]["error"] for c in widened])
    assert plain_error < 0.75 * spread  # too sure without the thermostat's time
    assert 0.8 * spread < widened_error < 2.0 * spread
    factor = widened[0]["temperature"]["error_widened_by"]
    assert factor > 1.2 and plain[0]["temperature"]["error_widened_by"] == 1.0
    species = widened[0]["species"]["H"]
    assert species["error_widened_by"] > 1.2
    # the split cancels what both species share: its error is left as it was
    assert widened[0]["splits"]["H-O"] == plain[0]["splits"]["H-O"]
    # diagnose takes it from the thermostat: Langevin tau, SVR 2 tau
    assert correlation_time_fs("langevin", 1000.0) == 1000.0
    assert correlation_time_fs("svr", 10.0) == 20.0
    assert correlation_time_fs("nve", 10.0) is None
    assert correlation_time_fs("svr", None) is None

    def target_warnings(rows, tau):
        found = diagnose(
            rows,
            {},
            "conservative",
            "langevin",
            300.0,
            tau_fs=tau,
            degrees_of_freedom=576,
        )
        return [w for w in found["warnings"] if w["kind"] == "thermostat_target"]

    false_alarms = {
        tau: sum(len(target_warnings(rows, tau)) for rows in runs)
        for tau in (None, 1000.0)
    }
    assert false_alarms[1000.0] <= 1 < false_alarms[None]
    # a strong SVR thermostat (tau 10 fs) keeps blocks far longer than 20 fs
    check = equipartition(runs[0], 300.0, correlation_fs=20.0, degrees_of_freedom=576)
    assert check["temperature"]["error_widened_by"] == 1.0
    # a real miss is still a miss, and the message says the error was widened
    hot = [dict(r, temperature_K=r["temperature_K"] + 40.0) for r in runs[0]]
    message = target_warnings(hot, 1000.0)
    assert message and "error widened" in message[0]["message"]
    # a run that heats is a trend, not slow noise: the widening stops at what
    # equilibrium fluctuations of 576 degrees of freedom give (10 K here)
    heating = [
        dict(r, temperature_K=r["temperature_K"] + 0.02 * r["time_fs"]) for r in runs[0]
    ]
    check = equipartition(
        heating, 300.0, correlation_fs=1000.0, degrees_of_freedom=576
    )["temperature"]
    assert check["error"] == pytest.approx(10.0, rel=0.1)
    assert 1.0 < check["error_widened_by"] < factor
    assert target_warnings(heating, 1000.0)


# -- NVE: drift warnings ---------------------------------------------------------------
def _nve(*run):
    """:func:`run_nve`: its summary and warnings."""
    summary, diagnosis = run_nve(*run)
    return summary, diagnosis["warnings"]


@pytest.fixture(scope="module")
def strong(tmp_path_factory) -> str:
    """A model whose direct head is -dE/dr plus a strong rotational force."""
    folder = tmp_path_factory.mktemp("strong")
    return export_pair_model(str(folder / "strong.pt"), nonconservative_strength=STRONG)


@pytest.fixture(scope="module")
def nve_start(relaxed_ethanol):
    atoms = molecules_in_box(relaxed_ethanol)
    maxwell_boltzmann(atoms, 300.0, seed=0)
    return atoms


def test_conservative_nve_never_warns(models, nve_start):
    for timestep in (0.5, 2.0):
        summary, warnings = _nve(
            models["nc"], nve_start, "conservative", timestep, 1, 40
        )
        assert warnings == [], (timestep, summary["drift_meV_per_atom_per_ps"])


def test_direct_nve_drift_warns_with_the_way_out(models, nve_start):
    summary, warnings = _nve(models["nc"], nve_start, "direct", 2.0, 2, 40)
    assert [w["kind"] for w in warnings] == ["energy_drift"]
    assert "use --forces mts" in warnings[0]["message"]
    # MTS at a good stride conserves the energy of the same model
    summary, warnings = _nve(models["nc"], nve_start, "mts", 2.0, 2, 40)
    assert warnings == []


def test_mts_outer_step_too_long_warns(strong, nve_start):
    summary, warnings = _nve(strong, nve_start, "mts", 2.0, 2, 40)
    assert [w["kind"] for w in warnings] == ["energy_drift"]
    assert "--stride auto" in warnings[0]["message"]


# -- finding (3): relaxations at a tight threshold -------------------------------------
def test_lbfgs_tight_threshold_fails_with_rotational_force(relaxed_ethanol, tmp_path):
    weak = export_pair_model(str(tmp_path / "weak.pt"), nonconservative_strength=WEAK)
    structures = tmp_path / "ethanol.xyz"
    ase.io.write(structures, relaxed_ethanol)
    common = ["--optimizers", "LBFGS", "--sigma", "0.05", "--steps", "150"]
    # loose: both heads converge
    code, stdout, _ = _run(
        ["relax", weak, structures, "-o", tmp_path / "loose", "--fmax", "1e-3", *common]
    )
    assert code == 0
    summary = json.loads((tmp_path / "loose" / "summary.json").read_text())
    assert summary["fraction_converged"]["direct"]["LBFGS"] == 1.0
    assert "why the others stopped" not in stdout
    # tight (the paper's 1e-5 eV/A): the conservative force only
    out = tmp_path / "tight"
    code, stdout, _ = _run(
        ["relax", weak, structures, "-o", out, "--fmax", "1e-5", *common]
    )
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["fraction_converged"]["conservative"]["LBFGS"] == 1.0
    assert summary["fraction_converged"]["direct"]["LBFGS"] == 0.0
    reasons = summary["stop_reasons"]
    assert reasons["conservative"]["LBFGS"] == {"converged": 1}
    assert reasons["direct"]["LBFGS"] == {"force_stalled": 1}
    rows = (out / "relax_results.csv").read_text().splitlines()
    assert "stop_reason" in rows[0].split(",")
    assert "why the others stopped" in stdout
    assert "1 force_stalled" in stdout


# -- the stride finder -----------------------------------------------------------------
SCAN = dict(inner_timestep_fs=1.0, strides=(1, 2, 4, 8), segment_fs=40.0)


def test_stride_finder_takes_the_largest_stride_of_a_conservative_head(
    models, nve_start
):
    scan = find_stride(models["c"], nve_start, **SCAN)
    assert scan.stride == 8 and scan.outer_timestep_fs == 8.0
    assert [r.status for r in scan.rows] == ["reference"] + ["accepted"] * 3
    assert "chosen stride 8" in scan.table()


def test_stride_finder_rejects_long_steps_of_a_strong_rotational_force(
    models, strong, nve_start
):
    scan = find_stride(strong, nve_start, **SCAN)
    assert scan.stride == 1
    assert scan.rows[-1].status == "drift"
    assert abs(scan.rows[-1].drift_meV_per_atom_per_ps) > (
        scan.allowed_drift_meV_per_atom_per_ps
    )
    # a fast/slow pair: the strong model's direct head drives the inner steps of
    # the conservative model
    pair = find_stride(models["c"], nve_start, fast=strong, **SCAN)
    assert pair.stride == 1


def test_md_stride_auto(models, ethanol_box_file, tmp_path):
    out = tmp_path / "auto"
    code, stdout, _ = _run(
        ["md", models["c"], ethanol_box_file, "-o", out, "--forces", "mts"]
        + ["--stride", "auto", "--timestep", "8", "--inner-timestep", "1"]
        + ["--max-stride", "4", "--scan-time", "40", "--steps", "5", "--no-chemiscope"]
    )
    assert code == 0
    assert "stride scan" in stdout and "chosen stride 4" in stdout
    summary = json.loads((out / "summary.json").read_text())
    scan = summary["stride_scan"]
    assert scan["stride"] == 4 and [r["stride"] for r in scan["rows"]] == [1, 2, 4]
    assert summary["settings"]["stride"] == 4
    assert summary["settings"]["timestep_fs"] == 4.0
    assert summary["inner_timestep_fs"] == 1.0
    # the requested duration (5 x 8 fs) is kept
    assert summary["outer_steps_done"] == 10
    # call counts are the run's (a shared hybrid model at M = 4 for 10 outer steps:
    # 1 + 10 backward and 1 + 40 forward passes); the scan's are in stride_scan:
    # segments of 40 fs at strides 1, 2, 4 = 1 + 40, 1 + 20, 1 + 10 outer steps
    assert summary["model_backward_passes"] == 1 + 10
    assert summary["model_forward_passes"] == 1 + 10 * 4
    assert scan["model_backward_passes"] == 41 + 21 + 11
    assert "the scan's own model calls" in stdout


def test_md_stride_auto_bad_input(models, ethanol_box_file, tmp_path):
    out = tmp_path / "bad"
    code, _, stderr = _run(
        ["md", models["nc"], ethanol_box_file, "-o", out]
        + ["--forces", "direct", "--stride", "auto"]
    )
    assert code == 2
    assert "--stride auto" in stderr and "--forces mts" in stderr
    assert not out.exists()
    code, _, stderr = _run(
        ["md", models["nc"], ethanol_box_file, "-o", out, "--stride", "auto"]
        + ["--inner-timestep", "-1"]
    )
    assert code == 2 and "--inner-timestep" in stderr
    assert not out.exists()

"""Table 7 of the paper protocol: a direct head's success rate is read against the
conservative one with the 95% interval of the difference, and called resolved only
when that interval excludes zero."""

import numpy as np
import pytest

from metatrain_nc.compare.tables import TABLE_7, comparisons, relaxation_findings
from metatrain_nc.dynamics.relax import difference_interval, success_interval
from metatrain_nc.errors import UserInputError
from metatrain_nc.reports.render import columns_table


def test_difference_interval_matches_newcombe():
    # Newcombe, Stat. Med. 17, 873 (1998), Table II, example (a), method 10
    difference, low, high = difference_interval(56, 70, 48, 80)
    assert difference == pytest.approx(0.2)
    assert low == pytest.approx(0.0524, abs=1e-4)
    assert high == pytest.approx(0.3339, abs=1e-4)
    # boundaries: inside [-1, 1], not empty at rates of 0 and 1
    difference, low, high = difference_interval(0, 10, 0, 20)
    assert difference == 0 and low < 0 < high
    difference, low, high = difference_interval(10, 10, 0, 10)
    assert difference == 1 and 0 < low < high == 1
    with pytest.raises(UserInputError):
        difference_interval(3, 2, 1, 2)


def test_difference_interval_coverage():
    """About 95% of intervals from binomial draws cover the true difference."""
    rng = np.random.default_rng(0)
    p_a, p_b, n_a, n_b = 0.75, 0.55, 20, 20
    draws = 4000
    covered = 0
    pairs = zip(
        rng.binomial(n_a, p_a, draws), rng.binomial(n_b, p_b, draws), strict=True
    )
    for a, b in pairs:
        _, low, high = difference_interval(int(a), n_a, int(b), n_b)
        covered += low <= p_a - p_b <= high
    assert 0.92 <= covered / draws <= 0.99


def _set(model, kind, heads):
    summary = {}
    for head, per in heads.items():
        summary[head] = {}
        for optimizer, (successes, trials) in per.items():
            rate, low, high = success_interval(successes, trials)
            summary[head][optimizer] = {
                "successes": successes,
                "trials": trials,
                "rate": rate,
                "interval_95": [low, high],
                "stop_reasons": {
                    "converged": successes,
                    "step_limit": trials - successes,
                },
                "mean_steps": 100.0,
            }
    records = [
        {
            "forces": head,
            "optimizer": optimizer,
            "converged": i < successes,
            # the energy's fmax at the end of each relaxation
            "conservative_fmax_final": 1e-6
            if head == "conservative"
            else 0.1 * (i + 1),
        }
        for head, per in heads.items()
        for optimizer, (successes, trials) in per.items()
        for i in range(trials)
    ]
    return {
        "model": model,
        "kind": kind,
        "records": records,
        "fmax_eV_per_A": 1e-5,
        "dtype": "float64",
        "summary": summary,
        "round_off_floor_eV_per_A": {h: 1e-15 for h in heads},
        "floor_above_threshold": {h: False for h in heads},
    }


def test_direct_rates_read_against_conservative():
    sets = [
        _set("C", "gas", {"conservative": {"LBFGS": (19, 20), "FIRE": (16, 20)}}),
        _set("NC", "gas", {"direct": {"LBFGS": (2, 20), "FIRE": (15, 20)}}),
        _set(
            "M",
            "gas",
            {
                "conservative": {"LBFGS": (18, 20), "FIRE": (18, 20)},
                "direct": {"LBFGS": (17, 20), "FIRE": (18, 20)},
            },
        ),
    ]
    [(_, headers, table)] = columns_table(TABLE_7, comparisons(sets))
    rows = {(r[0], r[1], r[3]): r for r in table}
    column = headers.index("direct - conservative (points) [95% CI]")
    assert all(len(r) == len(headers) for r in rows.values())
    # a model without a conservative head is read against the first one that has it
    assert rows[("NC", "direct", "LBFGS")][column].startswith("-85 [")
    nc_lbfgs = rows[("NC", "direct", "LBFGS")][column]
    assert nc_lbfgs.endswith("vs C conservative, resolved")
    assert rows[("NC", "direct", "FIRE")][column].endswith("within error")
    # a hybrid model's direct head against its own conservative head
    assert "vs M conservative, within error" in rows[("M", "direct", "LBFGS")][column]
    assert rows[("C", "conservative", "LBFGS")][column] == "-"
    # where a hybrid model's direct head converged, its energy is not stationary:
    # median of 0.1 .. 1.7 over the 17 converged relaxations = 0.9
    where = headers.index("conservative fmax where converged (median, eV/Å)")
    assert rows[("M", "direct", "LBFGS")][where] == "0.9"
    assert rows[("M", "direct", "FIRE")][where] == "0.95"
    # no trained conservative head (pet_nc), or a conservative row: nothing to show
    assert rows[("NC", "direct", "LBFGS")][where] == "-"
    assert rows[("M", "conservative", "LBFGS")][where] == "-"
    text = " ".join(relaxation_findings(sets))
    assert "NC direct 10% against C conservative 95%" in text
    assert "-85 [" in text and "resolved" in text
    assert "M direct 85% against M conservative 90%" in text

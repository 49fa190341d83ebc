"""The chemiscope dataset loads in the real chemiscope viewer (headless Chromium).

Needs the Debian package ``chromium``; skipped (saying so) only when it is absent.
"""

import pytest

from metatrain_nc.antisymmetry import evaluate

from .chemiscope_viewer import chromium_executable, load_in_viewer

pytestmark = pytest.mark.skipif(
    chromium_executable() is None,
    reason="chromium is not installed (Debian package 'chromium')",
)


@pytest.mark.parametrize("stochastic", [False, True])
def test_dataset_loads_in_viewer(
    pair_nc, ethanol, water_cluster_periodic, tmp_path, stochastic
):
    frames = [ethanol] if stochastic else [ethanol, ethanol.copy()]
    report = evaluate(frames, pair_nc, stochastic=stochastic, probes=4)
    out = report.write(tmp_path / "out")
    status = load_in_viewer(tmp_path / "out" / "chemiscope.json.gz", tmp_path)
    assert status == "OK", f"{out}: {status}"


def test_viewer_check_detects_broken_dataset(pair_nc, ethanol, tmp_path):
    """The check is not vacuous: a wrong-size property makes the viewer fail."""
    import gzip
    import json

    report = evaluate([ethanol], pair_nc)
    report.write(tmp_path / "out")
    path = tmp_path / "out" / "chemiscope.json.gz"
    with gzip.open(path, "rt") as stream:
        data = json.load(stream)
    data["properties"]["lambda_i"]["values"] = [0.1, 0.2]
    with gzip.open(path, "wt") as stream:
        json.dump(data, stream)
    assert load_in_viewer(path, tmp_path).startswith("ERROR")

"""Command-line options from declarative tables (metatrain_nc.cli_options)."""

import argparse

from metatrain_nc.cli_options import add_options, option, option_values, switch

OPTIONS = (
    option("structures", help="positional: no settings field"),
    option("--timestep", default=2.0, field="timestep_fs"),
    option("--steps", default=10),
    option("--label", default=None),
    switch("--no-progress", "no bar", field=False),
)


def test_types_fields_and_values():
    parser = argparse.ArgumentParser()
    add_options(parser, OPTIONS)
    args = parser.parse_args(["s.xyz", "--timestep", "1", "--steps", "3"])
    assert args.timestep == 1.0 and isinstance(args.timestep, float)
    assert args.steps == 3 and isinstance(args.steps, int)
    assert option_values(args, OPTIONS) == {
        "timestep_fs": 1.0,
        "steps": 3,
        "label": None,
    }
    assert option_values(args, OPTIONS, skip_none=True) == {
        "timestep_fs": 1.0,
        "steps": 3,
    }
    assert option("-o", "--output-dir").dest == "output_dir"
    assert option("--no-x", dest="x", action="store_false").dest == "x"
